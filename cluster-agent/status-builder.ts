/**
 * Computes the status of every FederatedNetwork and ClusterPeering from what the agent
 * knows: desired state, peer map, what the gateway applied and its latest health check.
 * Pure, so tables test it. Condition reasons are CamelCase and messages say what to do.
 */
import type { PeerMap } from '../broker/records.js';
import { CONDITION_TYPES, type ConditionInput } from './conditions.js';
import type { DesiredState } from './desired-state.js';
import type { GatewayReport, HealthReport } from '../gateway/client.js';
import type { BuildGatewayConfigResult } from './gateway-config.js';
import { pathMtuConditions, tunnelDetail } from './health-report.js';
import { maxNetworkMtu } from '../gateway/mtu.js';
import type { TunnelDetail } from './status-sink.js';
import type { NetworkStatusInput, PeeringStatusInput } from './status-writer.js';

export interface StatusInputs {
  readonly clusterId: string;
  readonly desired: DesiredState;
  readonly peerMap: PeerMap | undefined;
  /** Why the newest peer map was refused (peerMap is then the last good one). */
  readonly peerMapError?: string;
  /** The desired version has been accepted by the broker. */
  readonly published: boolean;
  readonly build: BuildGatewayConfigResult | undefined;
  /** This cluster's underlay MTU: what it can carry, for the MtuAgreed condition. */
  readonly underlayMtu?: number;
  /** The outcome of applying the current config. */
  readonly applied:
    | { readonly ok: true; readonly report: GatewayReport }
    | { readonly ok: false; readonly error: string }
    | undefined;
  readonly health: HealthReport | undefined;
  readonly now: Date;
}

export interface Statuses {
  readonly networks: ReadonlyMap<string, NetworkStatusInput>;
  readonly peerings: ReadonlyMap<string, { status: PeeringStatusInput; tunnel?: TunnelDetail }>;
}

const N = CONDITION_TYPES.FederatedNetwork;
const P = CONDITION_TYPES.ClusterPeering;
type Cond = ConditionInput;
const cond = (type: string, ok: boolean | 'unknown', reason: string, message: string): Cond => ({
  type,
  status: ok === 'unknown' ? 'Unknown' : ok ? 'True' : 'False',
  reason,
  message,
});

/**
 * A condition reason from the broker (untrusted text): kept when it has the form
 * Kubernetes requires of one (metav1.Condition: CamelCase, ≤ 1024), else "Withheld".
 */
const safeReason = (r: string): string =>
  r.length <= 1024 && /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/.test(r) ? r : 'Withheld';

/** Go-style duration for the CRD's `rtt` field, e.g. 1.234ms. */
export function formatRtt(ms: number): string {
  return ms < 1 ? `${Math.round(ms * 1000)}us` : `${Number(ms.toFixed(3))}ms`;
}

/**
 * Present only while the newest peer map is refused. Not part of Ready: the data plane
 * still runs the last good map; this says it is not the newest.
 */
const peerMapValid = (i: StatusInputs): Cond[] =>
  i.peerMapError === undefined
    ? []
    : [cond(CONDITION_TYPES.PeerMapValid, false, 'PeerMapRefused', i.peerMapError)];

/** The summary condition: True when every other one is, else the first that is not. */
function ready(conditions: readonly Cond[], okReason: string, okMessage: string): Cond {
  const bad = conditions.find((c) => c.status !== 'True');
  return bad
    ? cond('Ready', false, bad.reason, bad.message)
    : cond('Ready', true, okReason, okMessage);
}

function networkStatus(name: string, i: StatusInputs): NetworkStatusInput {
  const vni = i.peerMap?.networks.find((n) => n.name === name)?.vni;
  const allocated =
    vni !== undefined
      ? cond(N.Allocated, true, 'VniAllocated', `the broker allocated VNI ${vni}`)
      : i.published
        ? cond(N.Allocated, false, 'NotAllocated', 'waiting for the broker to allocate a VNI')
        : cond(
            N.Allocated,
            false,
            'BrokerUnreachable',
            'exports not published yet: the broker is unreachable; the agent retries (check nats.servers and credentials)',
          );
  const skip = i.build?.ok ? i.build.skipped.find((s) => s.network === name) : undefined;
  const reported = i.applied?.ok
    ? i.applied.report.networks.find((n) => n.name === name)
    : undefined;
  // What the gateway was told (local consent applied), not the raw peer map.
  const carriedTo = [
    ...((i.build?.ok ? i.build.config.networks?.find((n) => n.name === name)?.peers : []) ?? []),
  ].sort();
  let programmed: Cond;
  if (skip) programmed = cond(N.Programmed, false, skip.reason, skip.message);
  else if (i.build && !i.build.ok) {
    programmed = cond(N.Programmed, false, 'ConfigRefused', i.build.message);
  } else if (i.applied && !i.applied.ok) {
    programmed = cond(N.Programmed, false, 'ApplyFailed', i.applied.error);
  } else if (reported) {
    programmed = cond(
      N.Programmed,
      true,
      'Applied',
      `device ${reported.device}, MTU ${reported.mtu}, carried to: ${carriedTo.join(', ') || 'no peer yet'}`,
    );
  } else programmed = cond(N.Programmed, 'unknown', 'Pending', 'not applied to the gateway yet');
  const conditions = [allocated, programmed, ...mtuAgreed(name, i)];
  const h = i.health?.networks.find((n) => n.name === name);
  if (reported && h && (h.status === 'down' || h.status === 'not-receiving')) {
    conditions.push(
      cond(
        'DataPath',
        false,
        'DataPathUnhealthy',
        `${h.status}: ${h.reason}; check the peers' gateways`,
      ),
    );
  }
  return {
    ...(vni === undefined ? {} : { vni }),
    ...(reported
      ? {
          effectiveMTU: reported.mtu,
          ...(agreedSetBy(name, i, reported.mtu) ?? {}),
          members: [i.clusterId, ...carriedTo].sort(),
        }
      : {}),
    conditions: [
      ...conditions.filter((c) => c.type !== 'DataPath'),
      ...peerMapValid(i),
      ready(conditions, 'Ready', `carried to: ${carriedTo.join(', ') || 'no peer yet'}`),
    ],
  };
}

/** `mtuSetBy` when the gateway runs the network at the broker's agreed MTU. */
function agreedSetBy(name: string, i: StatusInputs, applied: number) {
  const agreed = i.peerMap?.networks.find((n) => n.name === name)?.mtu;
  return agreed?.value === applied ? { mtuSetBy: agreed.setBy } : undefined;
}

/**
 * The network's agreed MTU (issue 12) and who set it: True `Agreed` when this cluster's
 * own ask gives the same MTU, True `LoweredByMember` naming the member that lowered it,
 * False `MtuTooLarge` when this cluster cannot carry it. Absent without an agreement (an
 * older broker, or no member sent an ask).
 */
function mtuAgreed(name: string, i: StatusInputs): Cond[] {
  const agreed = i.peerMap?.networks.find((n) => n.name === name)?.mtu;
  if (!agreed) return [];
  const v = agreed.value;
  const skip = i.build?.ok ? i.build.skipped.find((s) => s.network === name) : undefined;
  if (skip?.reason === 'MtuTooLarge') return [cond(N.MtuAgreed, false, skip.reason, skip.message)];
  const spec = i.desired.networks.find((n) => n.metadata.name === name)?.spec.mtu;
  const capacity = i.underlayMtu === undefined ? undefined : maxNetworkMtu(i.underlayMtu);
  const requested = spec === undefined || spec === 'auto' ? undefined : spec;
  const own = Math.min(requested ?? Infinity, capacity ?? Infinity);
  const silent = agreed.silent?.length
    ? `; ${agreed.silent.join(', ')} sent no MTU ask (older agent): check that they carry ${v}`
    : '';
  const by =
    agreed.limit === 'requested'
      ? `${agreed.setBy}, which requests ${v}`
      : `${agreed.setBy}, whose underlay carries ${v}`;
  if (agreed.setBy === i.clusterId || own === v || own === Infinity) {
    return [
      cond(N.MtuAgreed, true, 'Agreed', `network MTU ${v} on every member (set by ${by})${silent}`),
    ];
  }
  return [
    cond(
      N.MtuAgreed,
      true,
      'LoweredByMember',
      `network MTU ${v} on every member, set by ${by}; this cluster alone would use ${own}, so pods here get ${v} too and full-size frames cross in both directions${silent}`,
    ),
  ];
}

function peeringStatus(
  remote: string,
  i: StatusInputs,
): { status: PeeringStatusInput; tunnel?: TunnelDetail } {
  const entry = i.peerMap?.peers.find((p) => p.cluster === remote);
  if (!entry) {
    // Consent is mutual but the broker leaves the peer out (e.g. VXLAN ports differ).
    const withheld = i.peerMap?.withheld?.find((w) => w.cluster === remote);
    const mutual = withheld
      ? cond(P.Mutual, false, safeReason(withheld.reason), withheld.message)
      : !i.peerMap
        ? cond(
            P.Mutual,
            'unknown',
            'PeerMapUnknown',
            'no peer map yet: the broker has not answered and there is no cache',
          )
        : !i.published
          ? cond(
              P.Mutual,
              'unknown',
              'Publishing',
              'publishing this peering to the broker; retrying while it is unreachable',
            )
          : cond(
              P.Mutual,
              false,
              'RemoteNotDeclared',
              `${remote} has no ClusterPeering for ${i.clusterId} (or is not registered); ask its operators to add one`,
            );
    const tunnel = cond(
      P.TunnelHealthy,
      'unknown',
      'NoTunnel',
      'no tunnel until the peering is mutual',
    );
    return {
      status: {
        active: false,
        reason: mutual.reason,
        conditions: [
          mutual,
          tunnel,
          ...peerMapValid(i),
          cond('Ready', false, mutual.reason, mutual.message),
        ],
      },
    };
  }
  const problems = i.build?.ok ? i.build.peerProblems.filter((p) => p.peer === remote) : [];
  const dropped = problems.find((p) => p.network === undefined);
  // The peer map may list a peer the gateway config left out: no tunnel, and why.
  const configured = problems.length
    ? [
        cond(
          P.Configured,
          false,
          (dropped ?? problems[0]!).reason,
          problems.map((p) => p.message).join('; '),
        ),
      ]
    : [];
  if (dropped) {
    const mutual = cond(P.Mutual, true, 'BothDeclared', `${remote} declares a peering back`);
    const tunnel = cond(
      P.TunnelHealthy,
      'unknown',
      'NoTunnel',
      `no tunnel: ${remote} is left out of the gateway config (${dropped.reason})`,
    );
    return {
      status: {
        active: false,
        reason: dropped.reason,
        conditions: [
          mutual,
          ...configured,
          tunnel,
          ...peerMapValid(i),
          cond('Ready', false, dropped.reason, dropped.message),
        ],
      },
    };
  }
  const networks = entry.networks
    .map((n) => n.name)
    .filter((n) => !problems.some((p) => p.network === n))
    .sort();
  const t = tunnelDetail(i.health, remote);
  const endpoint = entry.endpoints[0] ?? '?';
  const pathMtu = pathMtuConditions(i.health, remote);
  const tunnel =
    t.state === 'degraded' && pathMtu.length > 0
      ? cond(P.TunnelHealthy, false, 'PathMTUTooSmall', pathMtu[0]!.message)
      : t.state === 'up'
        ? cond(
            P.TunnelHealthy,
            true,
            'HandshakeAndProbeOk',
            `recent handshake, probe RTT ${t.rttMs ?? '?'} ms`,
          )
        : t.state === 'unknown'
          ? cond(
              P.TunnelHealthy,
              'unknown',
              'NotCheckedYet',
              'waiting for the gateway health check',
            )
          : cond(
              P.TunnelHealthy,
              false,
              t.state === 'down' && t.lastHandshakeAgeSec === undefined
                ? 'NoHandshake'
                : 'PeerNotAnswering',
              `tunnel to ${remote} is ${t.state}: ${t.reason ?? 'no reason given'}; check that ${remote}'s gateway runs and ${endpoint} is reachable over UDP`,
            );
  const mutual = cond(P.Mutual, true, 'BothDeclared', `${remote} declares a peering back`);
  const reason =
    networks.length === 0
      ? 'NoCommonNetwork'
      : t.state === 'up'
        ? 'Established'
        : t.state === 'unknown'
          ? 'Connecting'
          : 'Degraded';
  const common =
    networks.length === 0
      ? [
          cond(
            'Networks',
            false,
            'NoCommonNetwork',
            `no network is offered and exported by both ${i.clusterId} and ${remote}; list a common one in both peerings`,
          ),
        ]
      : [];
  const age = t.lastHandshakeAgeSec;
  return {
    status: {
      active: true,
      reason,
      activeNetworks: networks,
      ...(t.rttMs === undefined ? {} : { rtt: formatRtt(t.rttMs) }),
      ...(age === undefined
        ? {}
        : {
            lastHandshake: new Date(i.now.getTime() - age * 1000)
              .toISOString()
              .replace(/\.\d{3}Z$/, 'Z'),
          }),
      conditions: [
        mutual,
        ...configured,
        tunnel,
        ...pathMtu,
        ...peerMapValid(i),
        ready(
          [mutual, ...configured, tunnel, ...common],
          'Established',
          `carrying ${networks.join(', ')}`,
        ),
      ],
    },
    tunnel: t,
  };
}

/** Status of every desired object. Pure. */
export function buildStatuses(i: StatusInputs): Statuses {
  return {
    networks: new Map(
      i.desired.networks.map((n) => [n.metadata.name, networkStatus(n.metadata.name, i)]),
    ),
    peerings: new Map(
      i.desired.peerings.map((p) => [p.metadata.name, peeringStatus(p.spec.remoteCluster, i)]),
    ),
  };
}
