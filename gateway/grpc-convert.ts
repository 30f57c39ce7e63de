/**
 * Conversions between gateway.v1 messages and the gateway's own types. Pure. Proto3
 * zero values mean "unset" where the proto says so (netns "", underlay_mtu 0, mtu 0);
 * everything else is passed through for parseGatewayConfig to judge, so the API and the
 * library reject exactly the same configs with the same field-named errors.
 */
import type * as pb from '../proto/gen/l2fed/gateway/v1/gateway.js';
import type { GatewayConfigInput } from './config.js';
import type { GatewayReport } from './gateway.js';
import type { HealthReport } from './health.js';

/**
 * The gateway.v1 revision this gateway implements (ApplyResponse.api_revision). proto3
 * drops fields a server does not know without a word, so the agent reads this to know
 * whether `wireguard.keep_key` and peers' `next_public_key` were acted on. 0 (absent) =
 * an older gateway that ignored both; 1 = both honoured. Raise it with every field whose
 * loss an agent must not mistake for success.
 */
export const GATEWAY_API_REVISION = 1;

/** Unset = the default; zeros are passed on for the validation to refuse by name. */
function bumLimitFrom(b: pb.BumLimit | undefined): unknown {
  return b && { packetsPerSecond: b.packetsPerSecond, burst: b.burst };
}

function segmentFrom(s: pb.Segment | undefined): unknown {
  if (s?.ovs) {
    return s.ovs.vlan === undefined
      ? { type: 'ovs', bridge: s.ovs.bridge }
      : { type: 'ovs', bridge: s.ovs.bridge, vlan: s.ovs.vlan };
  }
  if (s?.linuxBridge) return { type: 'linux-bridge', bridge: s.linuxBridge.bridge };
  return undefined; // rejected by validation as "segment is required"
}

/** A gateway.v1 config as the input parseGatewayConfig validates. */
export function configFromProto(c: pb.GatewayConfig | undefined): unknown {
  if (!c) return undefined;
  const input = {
    identity: c.identity,
    ...(c.netns ? { netns: c.netns } : {}),
    wireguard: c.wireguard && {
      ifname: c.wireguard.ifname,
      listenPort: c.wireguard.listenPort,
      privateKeyFile: c.wireguard.privateKeyFile,
      ...(c.wireguard.keepKey ? { keepKey: true } : {}),
    },
    transitAddress: c.transitAddress,
    ...(c.underlayMtu ? { underlayMtu: c.underlayMtu } : {}),
    ...(c.vxlanPort ? { vxlanPort: c.vxlanPort } : {}),
    ...(c.bumLimit ? { bumLimit: bumLimitFrom(c.bumLimit) } : {}),
    peers: c.peers.map((p) => ({
      name: p.name,
      publicKey: p.publicKey,
      endpoints: p.endpoints,
      transitAddress: p.transitAddress,
      ...(p.persistentKeepalive !== undefined
        ? { persistentKeepalive: p.persistentKeepalive }
        : {}),
      ...(p.nextPublicKey ? { nextPublicKey: p.nextPublicKey } : {}),
    })),
    networks: c.networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      segment: segmentFrom(n.segment),
      mtu: n.mtu === 0 ? 'auto' : n.mtu,
      peers: n.peers,
      ...(n.bumLimit ? { bumLimit: bumLimitFrom(n.bumLimit) } : {}),
    })),
  };
  return input;
}

/** The reverse, for clients (the agent) that hold a GatewayConfigInput. */
export function configToProto(c: GatewayConfigInput): pb.GatewayConfig {
  return {
    identity: c.identity,
    netns: c.netns ?? '',
    wireguard: { ...c.wireguard, keepKey: c.wireguard.keepKey ?? false },
    transitAddress: c.transitAddress,
    underlayMtu: c.underlayMtu ?? 0,
    vxlanPort: c.vxlanPort ?? 0,
    bumLimit: c.bumLimit && { ...c.bumLimit },
    peers: (c.peers ?? []).map((p) => ({
      name: p.name,
      publicKey: p.publicKey,
      endpoints: p.endpoints,
      transitAddress: p.transitAddress,
      persistentKeepalive: p.persistentKeepalive,
      nextPublicKey: p.nextPublicKey ?? '',
    })),
    networks: (c.networks ?? []).map((n) => ({
      name: n.name,
      vni: n.vni,
      segment:
        n.segment.type === 'ovs'
          ? { ovs: { bridge: n.segment.bridge, vlan: n.segment.vlan } }
          : { linuxBridge: { bridge: n.segment.bridge } },
      mtu: n.mtu === undefined || n.mtu === 'auto' ? 0 : n.mtu,
      peers: n.peers ?? [],
      bumLimit: n.bumLimit && { ...n.bumLimit },
    })),
  };
}

export function reportToProto(r: GatewayReport): pb.GatewayReport {
  return {
    identity: r.identity,
    publicKey: r.publicKey,
    tunnelKind: r.tunnel.kind,
    tunnelIfname: r.tunnel.ifname,
    tunnelMtu: r.tunnel.mtu,
    networks: r.networks.map((n) => ({ name: n.name, vni: n.vni, device: n.device, mtu: n.mtu })),
  };
}

export function healthToProto(h: HealthReport): pb.HealthReport {
  return {
    at: h.at,
    tunnelKind: h.tunnel.kind,
    tunnelIfname: h.tunnel.ifname,
    tunnelUp: h.tunnel.up,
    peers: h.peers.map((p) => ({
      name: p.name,
      publicKey: p.publicKey,
      endpoint: p.endpoint ?? '',
      endpointSource: p.endpointSource,
      endpointFailovers: p.endpointFailovers,
      handshakeAgeSeconds: p.handshakeAgeSeconds,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      probeSent: p.probe.sent,
      probeReceived: p.probe.received,
      probeLoss: p.probe.loss,
      rttMs: p.probe.rttMs,
      probeAgeSeconds: p.probeAgeSeconds,
      status: p.status,
      reason: p.reason,
      pathMtu: p.pathMtu?.measured,
      pathMtuNeeded: p.pathMtu?.needed ?? 0,
      pathMtuShortNetworks: [...(p.pathMtu?.cannotCarry ?? [])],
    })),
    networks: h.networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      device: n.device,
      mtu: n.mtu,
      rxPackets: n.rxPackets,
      txPackets: n.txPackets,
      status: n.status,
      reason: n.reason,
      silentSeconds: n.silentSeconds,
      probeError: n.probeError,
    })),
  };
}
