/**
 * The agent's own config file (YAML): who this cluster is, how to reach NATS and the
 * gateway, what to advertise, and how local segments map. Identity and credentials come
 * from here (or the files it names), never from code. Validated strictly: unknown keys
 * are errors, so a typo never silently falls back to a default.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { credentialSchema, type Credential } from '../broker/auth-config.js';
import { DEFAULT_VXLAN_PORT, DEFAULT_WIREGUARD_PORT } from '../gateway/config.js';
import { isVxlanDeviceName } from '../gateway/names.js';
import { AgentConfigError } from './errors.js';
import { dnsLabel, ifName } from './schema-common.js';
import { VLAN } from './constants.js';

const absolutePath = (what: string) =>
  z.string().startsWith('/', `${what} must be an absolute path`);

const segmentTarget = z.strictObject({
  bridge: ifName,
  vlan: z.int().min(VLAN.min).max(VLAN.max).optional(),
});

export const agentConfigSchema = z.strictObject({
  /** This cluster's id in the federation (DNS-1123 label); also the gateway identity. */
  clusterId: dnsLabel,
  nats: z.strictObject({
    servers: z.array(z.string().min(1)).min(1, 'give at least one NATS server URL'),
    /** Credentials JSON as written by `broker/main.ts gen-auth` (clusters/<id>.creds.json). */
    credentials: absolutePath('nats.credentials').optional(),
    /** CA file to verify the NATS server certificate (enables TLS). */
    tlsCa: absolutePath('nats.tlsCa').optional(),
    /** Per-request timeout. */
    requestTimeoutMs: z.int().min(100).max(120_000).default(5000),
  }),
  gateway: z.strictObject({
    /** The gateway's gRPC API (l2fed.gateway.v1): unix:/path (preferred) or loopback host:port. */
    address: z
      .string()
      .regex(
        /^(unix:\/\S+|[^\s:]+:\d{1,5})$/,
        'gateway.address must be unix:/absolute/path.sock or host:port',
      ),
    /** Network namespace of the data plane, when the gateway runs it in one (lab). */
    netns: z.string().min(1).optional(),
    /** How often the agent reads the gateway's health (GetState). */
    healthPollMs: z.int().min(100).default(5000),
    applyTimeoutMs: z.int().min(1000).default(60_000),
  }),
  /** Gateway endpoints other clusters dial (host:port, 1-8), sent to the broker. */
  advertise: z.strictObject({
    endpoints: z.array(z.string().min(3)).min(1).max(8),
  }),
  wireguard: z.strictObject({
    ifname: z
      .string()
      .regex(/^l2f[a-z0-9-]{1,12}$/, 'ifname must start with "l2f", ≤ 15 chars')
      .refine(
        (n) => !isVxlanDeviceName(n),
        'ifname must not be "l2fv" followed by digits (the VXLAN devices are l2fv<VNI>); pick another, e.g. l2fwg0',
      ),
    /**
     * UDP port of the tunnel; default DEFAULT_WIREGUARD_PORT (17820: not 51820, which the
     * CNI's WireGuard may hold). Must match the port of advertise.endpoints (or what a
     * NAT in front forwards to it); clusters may use different ports.
     */
    listenPort: z.int().min(1).max(65_535).default(DEFAULT_WIREGUARD_PORT),
    /** Where the gateway keeps the private key; the agent never reads it. */
    privateKeyFile: absolutePath('wireguard.privateKeyFile'),
  }),
  /**
   * Prefix length of the broker's transit pool (broker `transitPool`, default
   * 100.64.0.0/16): the gateway routes the whole transit subnet into the tunnel.
   */
  transitPrefixLength: z.int().min(8).max(30).default(16),
  /**
   * Transit address used only for the very first apply, before the broker has allocated
   * one: the gateway must be programmed once to create the key and report its public key.
   * RFC 7600's IPv4 dummy address by default; replaced by the real one right after.
   */
  bootstrapTransitAddress: z.cidrv4().default('192.0.0.8/32'),
  underlayMtu: z.int().min(1410).max(65_535).default(1500),
  /**
   * UDP port of the gateway's VXLAN devices; unset = the gateway's DEFAULT_VXLAN_PORT
   * (4797, no CNI's). Must be the same in every cluster of the federation and unused by
   * the CNI (Calico's and Antrea's VXLAN use 4789, Flannel's and Cilium's 8472).
   */
  vxlanPort: z.int().min(1).max(65_535).optional(),
  /**
   * Broadcast/multicast frames per second (and burst) per network per peer and direction
   * that the gateway lets through (docs/gateway.md, Loops and storms); default 1000/200.
   */
  bumLimit: z
    .strictObject({
      packetsPerSecond: z.int().min(1).max(1_000_000),
      burst: z.int().min(1).max(1_000_000),
    })
    .optional(),
  segments: z
    .strictObject({
      /**
       * L2S-M networks by name → the OVS bridge (and VLAN) that carries them here. A
       * FederatedNetwork with an l2smNetwork not listed is not programmed (reason
       * L2smNetworkNotMapped); l2fed does not talk to the L2S-M API.
       */
      l2sm: z.record(dnsLabel, segmentTarget).default({}),
    })
    .default({ l2sm: {} }),
  /** Holds the peer-map cache (0700). */
  cacheDir: absolutePath('cacheDir'),
  /**
   * Folder/lab mode: one status JSON per object here, plus `agent.json`. With the
   * Kubernetes source (status in the CRDs) only `agent.json`, the agent's own summary.
   */
  statusDir: absolutePath('statusDir').optional(),
  source: z.union([
    z.strictObject({ folder: absolutePath('source.folder') }),
    z.strictObject({
      kubernetes: z.strictObject({ kubeconfig: absolutePath('kubeconfig').optional() }),
    }),
  ]),
  /** Re-run the whole loop (and re-send exports/peerings) this often after a change. */
  resyncMs: z.int().min(1000).default(60_000),
  /** While resyncs find nothing to repair, their interval doubles up to this (default 16 × resyncMs). */
  resyncMaxMs: z.int().min(1000).optional(),
  /** Rotate the gateway's WireGuard key this often (hours); absent = only on request. */
  keyRotationHours: z.number().min(1, 'keyRotationHours: at least 1').max(8760).optional(),
  backoff: z
    .strictObject({ initialMs: z.int().min(10), maxMs: z.int().min(10) })
    .default({ initialMs: 500, maxMs: 30_000 }),
  /**
   * Prometheus metrics (cluster-agent/metrics.ts) on GET /metrics; absent = not served.
   * Port 9465: in the member pod (host network) the gateway's metrics have 9464.
   */
  metrics: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.int().min(0).max(65_535).default(9465),
    })
    .optional(),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

/** Validates a parsed config; throws AgentConfigError naming file and field. Pure. */
export function parseAgentConfig(raw: unknown, file = '(config)'): AgentConfig {
  const r = agentConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new AgentConfigError(file, problems);
  }
  if (r.data.source && 'folder' in r.data.source && r.data.statusDir === undefined) {
    throw new AgentConfigError(file, ['statusDir: required with source.folder']);
  }
  // The gateway refuses it too, but only once the agent programs it: say so at load.
  const vxlanPort = r.data.vxlanPort ?? DEFAULT_VXLAN_PORT;
  if (vxlanPort === r.data.wireguard.listenPort) {
    throw new AgentConfigError(file, [
      `vxlanPort: ${vxlanPort} is also wireguard.listenPort; the VXLAN devices and the tunnel each need their own UDP port`,
    ]);
  }
  return r.data;
}

/** Reads and validates the YAML file. */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(file, [`cannot read: ${(err as Error).message}`], { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new AgentConfigError(file, [`not valid YAML: ${(err as Error).message}`], {
      cause: err,
    });
  }
  return parseAgentConfig(raw, file);
}

/** Reads a gen-auth credentials file. */
export async function readCredentials(file: string): Promise<Credential> {
  try {
    return credentialSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (err) {
    throw new AgentConfigError(file, [`not a gen-auth credentials file: ${String(err)}`], {
      cause: err,
    });
  }
}
