/**
 * The agent's memory across restarts: the last peer map the broker sent and the last
 * gateway config that applied, in one JSON file under cacheDir. With it the agent can
 * program the gateway at start even while the broker is unreachable.
 *
 * Writes are atomic (temp file in the same directory, fsync, rename), mode 0600 in a
 * 0700 directory: a crash leaves the old file or the new one, never half of one. The file
 * holds no secret (public keys and addresses only), but it does describe the federation.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { PeerMap } from '../broker/records.js';
import { parseGatewayConfig, type GatewayConfigInput } from '../gateway/config.js';
import { CacheWriteError } from './errors.js';
import { checkPeerMap } from './peer-map-schema.js';

export const CACHE_FILE = 'agent-cache.json';
const FORMAT = 1;

/** What the cache remembers. */
export interface CachedState {
  readonly peerMap: PeerMap | undefined;
  /** The last config the gateway accepted (validated again by the gateway on use). */
  readonly gatewayConfig: GatewayConfigInput | undefined;
  /** The public key the broker holds for this cluster; a rotation must start from it. */
  readonly registeredKey?: string | undefined;
  /** ISO time of the save. */
  readonly savedAt: string;
}

export type CacheLoad =
  | { readonly type: 'hit'; readonly state: CachedState }
  | { readonly type: 'miss' }
  /** Present but unusable (corrupt, other cluster, old format): start as without one. */
  | { readonly type: 'invalid'; readonly reason: string };

const fileSchema = z.object({
  format: z.literal(FORMAT),
  clusterId: z.string(),
  savedAt: z.string(),
  // Checked below with the same rules as a map from the broker (peer-map-schema.ts).
  peerMap: z.unknown().optional(),
  gatewayConfig: z.record(z.string(), z.unknown()).optional(),
  registeredKey: z.string().optional(),
});

/**
 * One cache file per agent. Not safe for two agents on one dir; calls of one agent are
 * serialised internally (the last save wins, in call order).
 */
export class PeerMapCache {
  readonly file: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    readonly clusterId: string,
  ) {
    this.file = join(dir, CACHE_FILE);
  }

  /** Reads the cache. Never throws: a bad file is reported as 'invalid'. */
  async load(): Promise<CacheLoad> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { type: 'miss' };
      return { type: 'invalid', reason: `cannot read ${this.file}: ${(err as Error).message}` };
    }
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch (err) {
      return { type: 'invalid', reason: `${this.file} is not a valid cache: ${String(err)}` };
    }
    if (parsed.clusterId !== this.clusterId) {
      return {
        type: 'invalid',
        reason: `${this.file} belongs to cluster ${parsed.clusterId}, not ${this.clusterId}`,
      };
    }
    // The file is as untrusted as the broker: a map or config the agent would refuse
    // from the broker is refused here too, and the agent starts as without a cache.
    let peerMap: PeerMap | undefined;
    if (parsed.peerMap !== undefined) {
      const r = checkPeerMap(parsed.peerMap, this.clusterId);
      if (!r.ok) {
        const why = r.issues
          .map((i) => `${i.path === '(root)' ? 'peerMap' : `peerMap.${i.path}`}: ${i.message}`)
          .join('; ');
        return {
          type: 'invalid',
          reason: `${this.file} holds a peer map the agent refuses: ${why}`,
        };
      }
      peerMap = r.peerMap;
    }
    if (parsed.gatewayConfig !== undefined) {
      try {
        parseGatewayConfig(parsed.gatewayConfig);
      } catch (err) {
        return {
          type: 'invalid',
          reason: `${this.file} holds a gateway config the gateway would refuse (gatewayConfig): ${(err as Error).message}`,
        };
      }
    }
    return {
      type: 'hit',
      state: {
        peerMap,
        gatewayConfig: parsed.gatewayConfig as GatewayConfigInput | undefined,
        registeredKey: parsed.registeredKey,
        savedAt: parsed.savedAt,
      },
    };
  }

  /**
   * Replaces the cache atomically. Idempotent for equal input (the content is rewritten
   * with a new savedAt).
   * @throws CacheWriteError
   */
  save(state: Omit<CachedState, 'savedAt'>): Promise<void> {
    const run = () => this.write(state);
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async write(state: Omit<CachedState, 'savedAt'>): Promise<void> {
    const body = JSON.stringify(
      {
        format: FORMAT,
        clusterId: this.clusterId,
        savedAt: new Date().toISOString(),
        ...(state.peerMap ? { peerMap: state.peerMap } : {}),
        ...(state.gatewayConfig ? { gatewayConfig: state.gatewayConfig } : {}),
        ...(state.registeredKey ? { registeredKey: state.registeredKey } : {}),
      },
      null,
      2,
    );
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(body + '\n');
        await fh.sync(); // the rename must not publish a file whose data is not on disk
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new CacheWriteError(this.file, { cause: err });
    }
  }
}
