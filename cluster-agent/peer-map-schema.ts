/**
 * The agent's check of a peer map, wherever one enters: the broker link (NATS KV) and the
 * cache file. The broker, a compromised path or a corrupted entry may send anything, so
 * the map is treated as untrusted input: its shape is checked here (types, sizes, that it
 * is this cluster's map, that our own networks have unique names and VNIs in range) and a
 * map that fails is refused as a whole, naming the field; the agent then keeps its last
 * good map. Problems of one peer (a bad or duplicate key, a bad endpoint, a transit
 * address that clashes, a VNI that disagrees with ours) are not shape problems: they drop
 * only that peer, in buildGatewayConfig (gateway-config.ts).
 *
 * Unknown fields are dropped (a newer broker may add some), so what the agent keeps,
 * caches and compares is only what it checked.
 */
import { z } from 'zod';
import { isDns1123Label } from '../broker/names.js';
import type { PeerMap, WithheldPeer } from '../broker/records.js';
import { VNI_MAX, VNI_MIN } from '../gateway/config.js';
import { MIN_NETWORK_MTU } from '../gateway/mtu.js';
import { MTU_MAX } from '../broker/protocol.js';
import { formatPath } from './problems.js';

/** Bounds far above any real federation; they keep a hostile map from costing much. */
export const PEER_MAP_LIMITS = {
  peers: 4096,
  networks: 4096,
  endpointsPerPeer: 64,
  stringLength: 256,
} as const;

const text = z.string().max(PEER_MAP_LIMITS.stringLength);

const networkRef = z.object({
  name: text,
  vni: z.int('vni must be an integer'),
});

const mtuRange = `must be an integer from ${MIN_NETWORK_MTU} to ${MTU_MAX}`;
const clusterName = text.refine(isDns1123Label, 'cluster id must be a DNS-1123 label');

/** The network's agreed MTU (broker/network-mtu.ts); absent from older brokers. */
const agreedMtu = z.object({
  value: z
    .int(`the agreed MTU ${mtuRange}`)
    .min(MIN_NETWORK_MTU, `the agreed MTU ${mtuRange}`)
    .max(MTU_MAX, `the agreed MTU ${mtuRange}`),
  setBy: clusterName,
  limit: z.enum(['requested', 'capacity']),
  silent: z.array(clusterName).max(PEER_MAP_LIMITS.peers).optional(),
});

const ownNetwork = z.object({
  name: text.refine(isDns1123Label, 'network name must be a DNS-1123 label'),
  vni: z
    .int('vni must be an integer')
    .min(VNI_MIN, `vni out of range: must be ${VNI_MIN}..${VNI_MAX}`)
    .max(VNI_MAX, `vni out of range: must be ${VNI_MIN}..${VNI_MAX}`),
  mtu: agreedMtu.optional(),
});

const peerEntry = z.object({
  cluster: text,
  endpoints: z.array(text).max(PEER_MAP_LIMITS.endpointsPerPeer),
  publicKey: text,
  /** Checked per peer in buildGatewayConfig (a bad one only holds that peer's rotation). */
  nextPublicKey: text.optional(),
  transitAddress: text,
  networks: z.array(networkRef).max(PEER_MAP_LIMITS.networks),
});

/** Longest withheld message kept (longer ones are cut, not refused). */
const WITHHELD_MESSAGE_MAX = 1024;

/**
 * The `withheld` entries the agent shows, from whatever came. Status only, so never a
 * reason to refuse the map (and with it peers, keys and removals): entries that are not
 * {cluster, reason, message} strings are dropped, a long message is cut, and at most
 * PEER_MAP_LIMITS.peers are read. A message names two cluster ids (up to 63 characters
 * each), so a bound like `text`'s would refuse maps of long-named clusters.
 */
function withheldOf(v: unknown): WithheldPeer[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: WithheldPeer[] = [];
  for (const e of v.slice(0, PEER_MAP_LIMITS.peers)) {
    const w = e as Partial<Record<'cluster' | 'reason' | 'message', unknown>> | null;
    if (typeof w !== 'object' || w === null) continue;
    const { cluster, reason, message } = w;
    if (typeof cluster !== 'string' || cluster.length > PEER_MAP_LIMITS.stringLength) continue;
    if (typeof reason !== 'string' || reason.length > PEER_MAP_LIMITS.stringLength) continue;
    if (typeof message !== 'string') continue;
    const cut =
      message.length > WITHHELD_MESSAGE_MAX
        ? `${message.slice(0, WITHHELD_MESSAGE_MAX - 1)}…`
        : message;
    out.push({ cluster, reason, message: cut });
  }
  return out.length ? out : undefined;
}

function schemaFor(clusterId: string) {
  return z
    .object(
      {
        cluster: text.refine((c) => c === clusterId, {
          error: (iss) =>
            `is ${JSON.stringify(iss.input)}, not this cluster (${clusterId}): the broker sent another cluster's map`,
        }),
        transitAddress: z.ipv4('transitAddress must be an IPv4 address without prefix length'),
        networks: z.array(ownNetwork).max(PEER_MAP_LIMITS.networks),
        peers: z.array(peerEntry).max(PEER_MAP_LIMITS.peers),
        /** This cluster's own rotation: its next key and the peers that hold it. */
        nextKey: z
          .object({
            publicKey: text,
            heldBy: z.array(text).max(PEER_MAP_LIMITS.peers),
          })
          .optional(),
        /** Declared peers the broker leaves out, and why: only shown in status. */
        withheld: z.unknown().transform(withheldOf).optional(),
      },
      'the peer map must be a JSON object {cluster, transitAddress, networks, peers}',
    )
    .superRefine((m, ctx) => {
      // Two names for one VNI (or one name twice) would bridge two networks together.
      for (const field of ['name', 'vni'] as const) {
        const first = new Map<string | number, number>();
        m.networks.forEach((n, i) => {
          const seen = first.get(n[field]);
          if (seen === undefined) first.set(n[field], i);
          else {
            ctx.addIssue({
              code: 'custom',
              path: ['networks', i, field],
              message: `duplicate ${field} ${n[field]} (also networks[${seen}])`,
            });
          }
        });
      }
    });
}

/** One reason a peer map was refused: the field (`peers[2].publicKey`) and what is wrong. */
export interface PeerMapIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * checkPeerMap's result: the checked map (unknown fields dropped), or why it was refused
 * as a whole (every issue with its field, and one line for status and logs).
 */
export type PeerMapCheck =
  | { readonly ok: true; readonly peerMap: PeerMap }
  | {
      readonly ok: false;
      readonly issues: readonly PeerMapIssue[];
      /** One line for people: the first few issues, each with its field. */
      readonly message: string;
    };

/**
 * Checks an untrusted peer map for cluster `clusterId`. Pure; never throws.
 * @returns the map (unknown fields dropped) or the issues, each naming its field.
 */
export function checkPeerMap(input: unknown, clusterId: string): PeerMapCheck {
  const r = schemaFor(clusterId).safeParse(input);
  if (r.success) return { ok: true, peerMap: r.data };
  const issues = r.error.issues.map((i) => ({
    path: formatPath(i.path) || '(root)',
    message: i.message,
  }));
  const shown = issues.slice(0, 3).map((i) => `${i.path}: ${i.message}`);
  const more = issues.length > shown.length ? ` (and ${issues.length - shown.length} more)` : '';
  return { ok: false, issues, message: shown.join('; ') + more };
}
