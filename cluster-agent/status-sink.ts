/**
 * Where the agent writes status. With the Kubernetes source: the CRDs' status
 * subresources (status-sink-kube.ts). In folder/lab mode: one JSON file per object in a
 * status dir (`federatednetwork.<name>.json`, `clusterpeering.<name>.json`) plus
 * `agent.json`, the agent's own summary, so `l2fed` and tests can read them (with the
 * Kubernetes source, `agent.json` only, when a statusDir is set). Files are replaced
 * atomically (temp + rename), so a reader never sees half a file.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { API_GROUP_VERSION, type CustomKind } from './constants.js';
import { mergeConditions } from './conditions.js';
import type { Condition } from './schema-common.js';
import type { NetworkStatusInput, PeeringStatusInput } from './status-writer.js';

/** Per-peer tunnel details beyond the CRD status (file sink only; for people and tests). */
export interface TunnelDetail {
  readonly state: 'up' | 'degraded' | 'down' | 'unknown';
  readonly reason?: string;
  readonly rttMs?: number;
  readonly lossPct?: number;
  readonly lastHandshakeAgeSec?: number;
}

/** The agent's own state, for `agent.json`. */
export interface AgentSummary {
  readonly clusterId: string;
  readonly broker: {
    readonly connected: boolean;
    readonly registered: boolean;
    readonly transitAddress?: string;
    readonly publishedVersion?: string;
    readonly lastError?: string;
  };
  readonly gateway: {
    readonly publicKey?: string;
    /** A rotated key being published; the tunnel switches once every peer holds it. */
    readonly pendingPublicKey?: string;
    /** Where that rotation waits, e.g. "rotation waiting for: bristol (…)". */
    readonly rotation?: string;
    readonly lastApply?: { readonly at: string; readonly steps: number };
    readonly lastError?: string;
    /** The gateway is older than this agent in a way that matters: what is off, the fix. */
    readonly outdated?: string;
  };
  /** Where the peer map in force came from. */
  readonly peerMapFrom: 'broker' | 'cache' | 'none';
  readonly desiredVersion?: string;
  /** The manifest/source error in force (the last good state stays applied). */
  readonly sourceError?: string;
  /** Why the broker's newest peer map was refused (the last good map stays in force). */
  readonly peerMapError?: string;
  /** Peers left out of the gateway config, or networks not carried to one, and why. */
  readonly peerProblems?: readonly {
    readonly peer: string;
    readonly reason: string;
    readonly network?: string;
    readonly message: string;
  }[];
}

/** Status output. Calls for different objects may run concurrently. */
export interface StatusSink {
  /** Idempotent; a write equal to the current status changes nothing (Kubernetes). */
  writeNetwork(name: string, status: NetworkStatusInput): Promise<void>;
  writePeering(name: string, status: PeeringStatusInput, tunnel?: TunnelDetail): Promise<void>;
  /** Drops status of objects of `kind` not in `keep` (file sink; objects own it in Kubernetes). */
  prune(kind: CustomKind, keep: readonly string[]): Promise<void>;
  writeAgent(summary: AgentSummary): Promise<void>;
}

/** File name of an object's status in a status dir. */
export function statusFileName(kind: CustomKind, name: string): string {
  return `${kind.toLowerCase()}.${name}.json`;
}

export const AGENT_STATUS_FILE = 'agent.json';

interface StatusFile {
  apiVersion: string;
  kind: CustomKind;
  metadata: { name: string };
  status: Record<string, unknown> & { conditions?: Condition[] };
  tunnel?: TunnelDetail;
  updatedAt: string;
}

/** Status files in a directory (folder and lab mode). */
export class FileStatusSink implements StatusSink {
  constructor(
    readonly dir: string,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  writeNetwork(name: string, status: NetworkStatusInput): Promise<void> {
    return this.write('FederatedNetwork', name, status);
  }

  writePeering(name: string, status: PeeringStatusInput, tunnel?: TunnelDetail): Promise<void> {
    return this.write('ClusterPeering', name, status, tunnel);
  }

  async prune(kind: CustomKind, keep: readonly string[]): Promise<void> {
    const prefix = `${kind.toLowerCase()}.`;
    const wanted = new Set(keep.map((n) => statusFileName(kind, n)));
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch {
      return;
    }
    await Promise.all(
      files
        .filter((f) => f.startsWith(prefix) && f.endsWith('.json') && !wanted.has(f))
        .map((f) => rm(join(this.dir, f), { force: true })),
    );
  }

  async writeAgent(summary: AgentSummary): Promise<void> {
    await this.atomicWrite(AGENT_STATUS_FILE, { ...summary, updatedAt: this.now() });
  }

  private async write(
    kind: CustomKind,
    name: string,
    input: NetworkStatusInput | PeeringStatusInput,
    tunnel?: TunnelDetail,
  ): Promise<void> {
    const file = statusFileName(kind, name);
    const prev = await readStatusFile(join(this.dir, file));
    const conditions = mergeConditions(
      prev?.status.conditions,
      input.conditions,
      undefined,
      this.clock(),
    );
    const body: StatusFile = {
      apiVersion: API_GROUP_VERSION,
      kind,
      metadata: { name },
      status: { ...input, conditions },
      ...(tunnel ? { tunnel } : {}),
      updatedAt: this.now(),
    };
    await this.atomicWrite(file, body);
  }

  private now(): string {
    return this.clock().toISOString();
  }

  private async atomicWrite(file: string, body: unknown): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${file}.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o644 });
    await rename(tmp, join(this.dir, file));
  }
}

/** Reads one status file; undefined when absent or unreadable. */
export async function readStatusFile(path: string): Promise<StatusFile | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as StatusFile;
  } catch {
    return undefined;
  }
}
