/**
 * Gathers health: WireGuard peer state and VXLAN counters from the data plane, plus an
 * in-tunnel echo to every peer's transit address. One check at a time; start() runs
 * checks on a jittered interval until stop(). Subscribers (gRPC WatchHealth) get every
 * report. A check starts no process while the probe helper runs (issue 18): the tunnel
 * read goes to wireguard-go's control socket, the counters, echoes and probe frames
 * through one long-lived helper (prober.ts) started once.
 * Each check also drives endpoint fail-over (endpoint-failover.ts): the one change a
 * check may make is moving a peer whose tunnel does not work to its next endpoint.
 * Between checks, peers with several endpoints get a small liveness echo every 250 ms
 * (probeLiveness, through the same helper, no process) so a dead path is left within
 * ~2 s of breaking (issue 15), not a health interval plus WireGuard's 15 s later.
 */
import type { CommandRunner } from '../lib/runner.js';
import type { GatewayConfig } from './config.js';
import {
  DEFAULT_FAILOVER_POLICY,
  deadPathFor,
  decideFailover,
  endpointSource,
  failoverSettled,
  type EchoRun,
  type FailoverPolicy,
  type FailoverState,
} from './endpoint-failover.js';
import type { Gateway } from './gateway.js';
import {
  judgeNetwork,
  judgePathMtu,
  judgePeer,
  pathTooSmall,
  searchLargest,
  type Counters,
  type HealthReport,
  type NetworkHealth,
  type NetworkNeed,
  type PathMtu,
  type PeerHealth,
  type PeerStatus,
  type ProbeResult,
} from './health.js';
import { PythonL2Prober, type L2Prober } from './l2-probe.js';
import {
  HelperProber,
  jitteredDelay,
  pingOnce,
  readLinkStats,
  type EchoRequest,
  type LinkStats,
} from './prober.js';
import { withLoop } from './loop-guard.js';
import {
  DEFAULT_PROBE_REFRESH_PEERS,
  peersToProbe,
  type LastProbe,
  type ProbeCandidate,
} from './probe-schedule.js';
import type { GatewayMetrics } from './metrics.js';
import { vxlanName, type ObservedPeer } from './model.js';
import { SMALL_PROBE_PACKET, tunnelPacketFor } from './mtu.js';

/** The inner packet size (bytes) a peer's networks need: the largest MTU + VXLAN; 0 = none. */
function neededPacket(needs: readonly NetworkNeed[]): number {
  let needed = 0;
  for (const n of needs) if (n.mtu > 0) needed = Math.max(needed, tunnelPacketFor(n.mtu));
  return needed;
}

/** What a check needs per peer from the networks: cached until they or their MTUs change. */
interface Needs {
  readonly networks: GatewayConfig['networks'];
  readonly report: unknown;
  /** Effective MTU (bytes) by network name, from the gateway's last report. */
  readonly mtus: ReadonlyMap<string, number>;
  /** Per peer name: its networks and the inner packet size (bytes) they need. */
  readonly byPeer: ReadonlyMap<string, { readonly needs: NetworkNeed[]; needed: number }>;
}

/** A probe of one peer in this check: its result and the path MTU found (bytes). */
interface Probed {
  readonly probe: ProbeResult;
  readonly measured: number | undefined;
}

/** What a check keeps of a peer's last probe (updated in place when probed again). */
type KeptProbe = { -readonly [K in keyof LastProbe]: LastProbe[K] } & {
  probe: ProbeResult;
  pathMtu: PathMtu | undefined;
  /** Unix s (not rounded) of the check that probed it. */
  atSeconds: number;
};

/** A network's health before its probe error is known, and what its probe frames do. */
interface NetworkCheck {
  readonly health: Omit<NetworkHealth, 'probeError'>;
  /** Send a probe frame on it (device up, peers to reach). */
  readonly probe: boolean;
  /** Frames one probe puts on the device (one per peer: head-end replication). */
  readonly copies: number;
}

const NO_NEEDS: readonly NetworkNeed[] = Object.freeze([]);
/** A peer probed only in turn whose probe failed (a wedged helper): its kept result stands. */
const notProbed = (): undefined => undefined;
/** The probe of a peer never probed (cannot be reported: a new peer is always probed). */
const NOT_PROBED: ProbeResult = Object.freeze({
  sent: 0,
  received: 0,
  loss: 1,
  rttMs: undefined,
});

const newCandidate = (): { -readonly [K in keyof ProbeCandidate]: ProbeCandidate[K] } => ({
  name: '',
  publicKey: '',
  rxBytes: undefined,
  latestHandshake: 0,
  needed: 0,
  switched: false,
  endpoint: '',
  transitAddress: '',
  liveAnswered: undefined,
});

/**
 * The tunnel's peers by public key, written into `m` (the same keys each check, so no
 * new table: a Map of 100 peers per check was ~10 KiB of a check's garbage). Rebuilt
 * when a peer left (the sizes differ).
 */
function byPublicKey(
  m: Map<string, ObservedPeer>,
  peers: readonly ObservedPeer[] | undefined,
): Map<string, ObservedPeer> {
  const list = peers ?? [];
  for (const p of list) m.set(p.publicKey, p);
  if (m.size !== list.length) {
    m.clear();
    for (const p of list) m.set(p.publicKey, p);
  }
  return m;
}

/** The silence that marks a network not-receiving, unless configured: ≥ 3 checks. */
export function defaultSilenceLimitMs(intervalMs: number): number {
  return Math.max(3 * intervalMs, 30_000);
}

/** Echo packets per probed peer per check unless probeCount says otherwise. */
export const DEFAULT_PROBE_COUNT = 3;

export interface HealthMonitorOptions {
  readonly gateway: Gateway;
  readonly runner: CommandRunner;
  readonly metrics?: GatewayMetrics;
  /** Probe packets per peer per check; default DEFAULT_PROBE_COUNT. */
  readonly probeCount?: number;
  /** Default 10 s. Also the bound on how long a dead peer can go unnoticed. */
  readonly intervalMs?: number;
  /** Unix seconds now; tests pin it. */
  readonly now?: () => number;
  /**
   * Endpoint fail-over for peers with several endpoints: the policy (defaults:
   * DEFAULT_FAILOVER_POLICY) or false to turn it off.
   */
  readonly failover?: Partial<FailoverPolicy> | false;
  /**
   * Sends the per-network probe frames (default: the probe helper, else a python3 run per
   * check); false turns probing off.
   */
  readonly prober?: L2Prober | false;
  /**
   * A network whose receive counter stays still this long while a peer's tunnel is up is
   * not-receiving. Peers probe once per their own check, so this must cover a few of the
   * slowest peer's intervals. Default defaultSilenceLimitMs(intervalMs).
   */
  readonly silenceLimitMs?: number;
  /**
   * The long-lived probe helper for echoes and frames (default: one started through
   * runner.spawn); false = one `ping` per echo and a python3 run per check (the cost
   * before issue 18). Without runner.spawn, or while the helper cannot run, the same.
   */
  readonly helper?: HelperProber | false;
  /** Fraction of the interval the next check may come early (default 0.25): spreads
   * gateways' checks so they do not probe in lockstep; never later than the interval. */
  readonly jitter?: number;
  /** Loop state per network (loop-monitor.ts): a loop makes an ok network degraded. */
  readonly loops?: { network(name: string): { readonly reason: string } | undefined };
  /**
   * Milliseconds between liveness echoes (fast endpoint fail-over) to peers with several
   * endpoints; default 250; false turns them off (then only the health check's slow rules
   * move a peer). They need the probe helper: with `helper: false`, or while it cannot
   * run, there are none.
   */
  readonly livenessIntervalMs?: number | false;
  /**
   * Peers the tunnel vouches for (last probe up, fresh handshake, WireGuard received from
   * them since the last check) that are still probed in each check, longest ago first
   * (probe-schedule.ts); every other peer is probed every check. Default
   * DEFAULT_PROBE_REFRESH_PEERS (8): up to 8 peers, every peer every check. Each peer's
   * RTT, loss and path MTU are then at most ceil(peers / this) checks old.
   */
  readonly probeRefreshPeers?: number;
}

/** Seconds a liveness echo waits for its answer at least (more for a slow path: 4 × RTT). */
const LIVENESS_WAIT_S = 0.5;

/** Liveness echoes of one peer, counted since the last switch or key change. */
interface EchoTrack {
  /** Our public key and the peer's: a key change starts counting afresh. */
  readonly keys: string;
  /** Unix s: echoes sent before this are ignored (sent before a switch or an answer). */
  after: number;
  answered: boolean;
  lost: number;
  lostSince: number;
}

export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  /** The last check asked for: the next one starts after it. */
  private checking: Promise<unknown> = Promise.resolve();
  private before = new Map<string, Counters>();
  /** Per VXLAN device: when its receive counter last moved (unix s), for the silence check. */
  private readonly lastRx = new Map<string, number>();
  /** Per VXLAN device: its tx_dropped at the last check (when the read gives it). */
  private readonly txDropped = new Map<string, number>();
  /** Per VXLAN device: frames our last probe put on it (to tell tenant tx from probes). */
  private readonly probeTx = new Map<string, number>();
  private readonly prober: L2Prober | undefined;
  private readonly helper: HelperProber | undefined;
  /** Fail-over state per peer name. */
  private readonly failover = new Map<string, FailoverState>();
  /** Peers whose last in-tunnel probe got no answer (fail-over input). */
  private readonly probeFailed = new Set<string>();
  /** Path-MTU probing per peer name: did it answer last time, and the last size found. */
  private readonly paths = new Map<string, { answered: boolean; measured?: number }>();
  /** Per peer name: its last probe's result and what it was judged on (probe-schedule.ts). */
  private readonly lastProbe = new Map<string, KeptProbe>();
  /** Per peer name: its status in the last check (for the networks' judgement). */
  private readonly status = new Map<string, PeerStatus>();
  /** The probe schedule's input, one object per peer in config order, reused. */
  private readonly candidates: ReturnType<typeof newCandidate>[] = [];
  private needs: Needs | undefined;
  /** The tunnel's peers by public key as the running check read them (reused). */
  private readonly wgPeers = new Map<string, ObservedPeer>();
  /** Per peer name: WireGuard's received bytes at the last check (updated in place). */
  private readonly lastPeerRx = new Map<
    string,
    { publicKey: string; rxBytes: number | undefined }
  >();
  private checks = 0;
  private rtts:
    | { report: HealthReport | undefined; byName: ReadonlyMap<string, number | undefined> }
    | undefined;
  /** Peer name by public key, for the peer list pruned for. */
  private nameByKey = new Map<string, string>();
  /** The peer list per-peer state was last pruned for (pruned again when it changes). */
  private prunedFor: GatewayConfig['peers'] | undefined;
  private readonly listeners = new Set<(h: HealthReport) => void>();
  /** Liveness echo counts per peer name (fast fail-over). */
  private readonly echoes = new Map<string, EchoTrack>();
  /** Fail-over decisions run one at a time (the check and the liveness rounds). */
  private deciding: Promise<unknown> = Promise.resolve();
  /** Switches made so far, and the count at each peer's last one: a decision from a
   * tunnel read older than a peer's last switch skips that peer (it would take the old
   * endpoint for a roam). */
  private switches = 0;
  private readonly lastSwitch = new Map<string, number>();
  private liveTimer: NodeJS.Timeout | undefined;
  private readonly liveRounds = new Set<Promise<void>>();
  latest: HealthReport | undefined;

  constructor(private readonly o: HealthMonitorOptions) {
    this.prober = o.prober === false ? undefined : o.prober;
    this.helper = o.helper === false ? undefined : (o.helper ?? new HelperProber(o.runner));
  }

  /** Calls fn with every new report; returns the unsubscribe function. */
  subscribe(fn: (h: HealthReport) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * One check now. undefined until the gateway has applied a config. Reads only, except
   * for an endpoint fail-over (one `wg set … endpoint`) of a peer whose tunnel does not
   * work.
   */
  check(): Promise<HealthReport | undefined> {
    // One at a time: a check keeps per-peer state on the monitor across its awaits (the
    // tunnel's peers by key, the statuses its networks are judged on), and tests call
    // check() while start()'s timer runs.
    const run = this.checking.then(() => this.checkNow());
    this.checking = run.catch(() => undefined);
    return run;
  }

  private async checkNow(): Promise<HealthReport | undefined> {
    const config = this.o.gateway.config;
    const seen = this.switches;
    const tunnel = await this.o.gateway.observeTunnel();
    if (!config || !tunnel) return undefined;
    // Only here: a liveness round between a check's reads must not drop state it uses.
    if (this.prunedFor !== config.peers) this.prune(config.peers);
    const netns = config.netns;
    const exact = this.clock();
    const now = Math.floor(exact);
    const ifname = config.wireguard.ifname;
    const wgPeers = byPublicKey(this.wgPeers, tunnel.wg?.peers);
    const helperUp = (await this.helper?.ready(netns)) ?? false;
    const switched = await this.failOver(() => ({ seen, wgPeers }), config.peers, exact);
    const needs = this.needsNow(config.networks);
    const check = ++this.checks;
    const toProbe = peersToProbe(
      this.candidatesNow(config.peers, wgPeers, needs, switched),
      this.lastProbe,
      this.lastPeerRx,
      now,
      this.o.probeRefreshPeers ?? DEFAULT_PROBE_REFRESH_PEERS,
    );
    const probed = await this.probeChosen(config.peers, toProbe, needs, netns, helperUp);
    const peers = this.peerReports(config.peers, {
      wgPeers,
      probed,
      needs,
      switched,
      now,
      exact,
      check,
    });
    await this.recordReceived(wgPeers);

    // Through the helper when it runs: a check then starts no process at all.
    const stats = await readLinkStats(this.o.runner, helperUp ? this.helper : undefined, netns);
    const links = new Map<string, LinkStats>();
    for (const l of stats) links.set(l.ifname, l);
    const networks = this.networkReports(config.networks, links, peers, now, needs.mtus);
    const l2 =
      this.o.prober === false
        ? undefined
        : (this.prober ?? (helperUp ? this.helper : new PythonL2Prober(this.o.runner)));
    const probeErrors = await this.sendProbes(l2, config.identity, netns, networks);

    const report: HealthReport = {
      at: new Date(now * 1000).toISOString(),
      identity: config.identity,
      tunnel: {
        kind: this.o.gateway.tunnelKind ?? 'unknown',
        ifname,
        up: (links.get(ifname)?.flags ?? []).includes('UP'),
      },
      peers,
      networks: networks.map((n): NetworkHealth => ({
        ...n.health,
        probeError: probeErrors.get(n.health.device) ?? '',
      })),
    };
    this.latest = report;
    this.o.metrics?.observeHealth(report);
    for (const fn of this.listeners) fn(report);
    return report;
  }

  /**
   * What each peer's networks need (their MTUs, and the inner packet size), rebuilt only
   * when the networks or the gateway's last report (the MTUs) change: not per check.
   */
  private needsNow(networks: GatewayConfig['networks']): Needs {
    const report = this.o.gateway.lastReport;
    const c = this.needs;
    if (c && c.networks === networks && c.report === report) return c;
    const mtus = new Map((report?.networks ?? []).map((x) => [x.name, x.mtu]));
    const byPeer = new Map<string, { needs: NetworkNeed[]; needed: number }>();
    for (const n of networks) {
      const need = { name: n.name, mtu: mtus.get(n.name) ?? 0 };
      for (const peer of n.peers) {
        const e = byPeer.get(peer);
        if (e) e.needs.push(need);
        else byPeer.set(peer, { needs: [need], needed: 0 });
      }
    }
    for (const e of byPeer.values()) e.needed = neededPacket(e.needs);
    this.needs = { networks, report, mtus, byPeer };
    return this.needs;
  }

  /** The probe schedule's view of every peer now, updated in place (one object per peer). */
  private candidatesNow(
    peers: GatewayConfig['peers'],
    wgPeers: ReadonlyMap<string, ObservedPeer>,
    needs: Needs,
    switched: ReadonlyMap<string, string>,
  ): readonly ProbeCandidate[] {
    const list = this.candidates;
    list.length = Math.min(list.length, peers.length);
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      const wg = wgPeers.get(p.publicKey);
      const moved = switched.get(p.name);
      const c = list[i] ?? (list[i] = newCandidate());
      c.name = p.name;
      c.publicKey = p.publicKey;
      c.rxBytes = wg?.rxBytes;
      c.latestHandshake = wg?.latestHandshake ?? 0;
      c.needed = needs.byPeer.get(p.name)?.needed ?? 0;
      c.switched = moved !== undefined;
      c.endpoint = moved ?? wg?.endpoint ?? '';
      c.transitAddress = p.transitAddress;
      c.liveAnswered = this.echoes.get(p.name)?.answered;
    }
    return this.candidates;
  }

  /**
   * Probes the peers `toProbe` names, all at once; the others are not touched (no promise
   * each: at 100 peers the per-peer async frames were most of a check's garbage). A
   * helper that fails mid-check (died, wedged) costs a peer that must be probed a `ping`,
   * not the check; a peer probed only in turn keeps its last result instead (undefined
   * here), so a wedged helper on a loaded machine does not become a `ping` per peer.
   */
  private async probeChosen(
    peers: GatewayConfig['peers'],
    toProbe: ReadonlyMap<string, 'must' | 'refresh'>,
    needs: Needs,
    netns: string | undefined,
    helperUp: boolean,
  ): Promise<Map<string, Probed | undefined>> {
    const echo = (req: EchoRequest) =>
      helperUp
        ? this.helper!.echo(req, netns).catch(() => pingOnce(this.o.runner, req, netns))
        : pingOnce(this.o.runner, req, netns);
    const echoInTurn = (req: EchoRequest) =>
      helperUp ? this.helper!.echo(req, netns) : pingOnce(this.o.runner, req, netns);
    // Names and runs side by side: no closure per probed peer (V8 recompiled them).
    const names: string[] = [];
    const runs: Promise<Probed | undefined>[] = [];
    for (const p of peers) {
      const kind = toProbe.get(p.name);
      if (kind === undefined) continue;
      const needed = needs.byPeer.get(p.name)?.needed ?? 0;
      names.push(p.name);
      runs.push(
        kind === 'must'
          ? this.probePeer(p.name, p.transitAddress, needed, echo)
          : this.probePeer(p.name, p.transitAddress, needed, echoInTurn).catch(notProbed),
      );
    }
    const results = await Promise.all(runs);
    const out = new Map<string, Probed | undefined>();
    for (let i = 0; i < names.length; i++) out.set(names[i]!, results[i]);
    return out;
  }

  /**
   * Every peer's entry of the report, in config order: a peer probed in this check is
   * judged on that probe (and remembered), one not probed on its kept result. The kept
   * results are updated in place, and each peer's status is noted for networkReports.
   */
  private peerReports(
    peers: GatewayConfig['peers'],
    c: {
      readonly wgPeers: ReadonlyMap<string, ObservedPeer>;
      readonly probed: ReadonlyMap<string, Probed | undefined>;
      readonly needs: Needs;
      readonly switched: ReadonlyMap<string, string>;
      readonly now: number;
      readonly exact: number;
      readonly check: number;
    },
  ): PeerHealth[] {
    const out: PeerHealth[] = new Array<PeerHealth>(peers.length);
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      const wg = c.wgPeers.get(p.publicKey);
      const age =
        wg && wg.latestHandshake > 0 ? Math.max(0, c.now - wg.latestHandshake) : undefined;
      const endpoint = c.switched.get(p.name) ?? wg?.endpoint;
      const fresh = c.probed.get(p.name);
      let last = this.lastProbe.get(p.name);
      let judged: { readonly status: PeerStatus; readonly reason: string } | undefined;
      if (fresh || !last) {
        // (!last cannot happen: a peer never probed is always chosen.)
        const need = c.needs.byPeer.get(p.name);
        const probe = fresh?.probe ?? NOT_PROBED;
        const pathMtu = judgePathMtu(need?.needs ?? NO_NEEDS, fresh?.measured);
        if (probe.sent > 0 && probe.received === 0) this.probeFailed.add(p.name);
        else this.probeFailed.delete(p.name);
        // The path argument matters only when the path is short: no object per peer else.
        judged = judgePeer(
          age,
          probe,
          pathTooSmall(pathMtu) ? { peer: p.name, mtu: pathMtu } : undefined,
        );
        const up = judged.status === 'up';
        const kept = last ?? {
          publicKey: p.publicKey,
          needed: 0,
          endpoint: '',
          transitAddress: p.transitAddress,
          check: c.check,
          up,
          probe,
          pathMtu,
          atSeconds: c.exact,
        };
        kept.publicKey = p.publicKey;
        kept.needed = need?.needed ?? 0;
        kept.endpoint = endpoint ?? '';
        kept.transitAddress = p.transitAddress;
        kept.check = c.check;
        kept.up = up;
        kept.probe = probe;
        kept.pathMtu = pathMtu;
        kept.atSeconds = c.exact;
        if (!last) this.lastProbe.set(p.name, kept);
        last = kept;
      }
      // A kept result was up with a fresh handshake (probe-schedule.ts): judged anew all
      // the same, so the report never says more than its inputs.
      judged ??= judgePeer(
        age,
        last.probe,
        pathTooSmall(last.pathMtu) ? { peer: p.name, mtu: last.pathMtu } : undefined,
      );
      this.status.set(p.name, judged.status);
      out[i] = {
        name: p.name,
        publicKey: p.publicKey,
        endpoint,
        endpointSource: endpointSource(p.endpoints, endpoint),
        endpointFailovers: this.failover.get(p.name)?.failovers ?? 0,
        handshakeAgeSeconds: age,
        rxBytes: wg?.rxBytes ?? 0,
        txBytes: wg?.txBytes ?? 0,
        probe: last.probe,
        // Never 0 when kept, even under a pinned clock: 0 means "measured in this check".
        probeAgeSeconds: fresh
          ? 0
          : Math.max(0.001, Math.round((c.exact - last.atSeconds) * 1000) / 1000),
        pathMtu: last.pathMtu,
        status: judged.status,
        reason: judged.reason,
      };
    }
    return out;
  }

  /**
   * The receive counters the next check compares with, read now that this check's echoes
   * are answered: their replies are not the peer's own traffic (else a peer that died
   * right after answering would look alive once more). One more control-socket read; the
   * first read's counters (`first`) when this one fails. Updated in place.
   */
  private async recordReceived(first: ReadonlyMap<string, ObservedPeer>): Promise<void> {
    const after = (await this.o.gateway.observeTunnel().catch(() => undefined))?.wg;
    for (const rx of this.lastPeerRx.values()) rx.rxBytes = undefined;
    for (const x of after?.peers ?? first.values()) {
      const name = this.nameByKey.get(x.publicKey);
      if (name === undefined) continue;
      const rx = this.lastPeerRx.get(name);
      if (rx) {
        rx.publicKey = x.publicKey;
        rx.rxBytes = x.rxBytes;
      } else this.lastPeerRx.set(name, { publicKey: x.publicKey, rxBytes: x.rxBytes });
    }
  }

  /**
   * Each network's health from its device's counters and its peers' statuses (noted by
   * peerReports), in config order; forgets the counters of devices no longer configured.
   */
  private networkReports(
    networks: GatewayConfig['networks'],
    links: ReadonlyMap<string, LinkStats>,
    peers: readonly PeerHealth[],
    now: number,
    mtus: ReadonlyMap<string, number>,
  ): NetworkCheck[] {
    const silenceLimit =
      this.o.prober !== false
        ? (this.o.silenceLimitMs ?? defaultSilenceLimitMs(this.o.intervalMs ?? 10_000)) / 1000
        : undefined;
    // Usually no peer's path is short: then nothing is allocated per peer here.
    let short: { name: string; measured: number }[] | undefined;
    for (const p of peers) {
      if (pathTooSmall(p.pathMtu))
        (short ??= []).push({ name: p.name, measured: p.pathMtu.measured });
    }
    const out: NetworkCheck[] = [];
    for (const n of networks) {
      const device = vxlanName(n.vni);
      const l = links.get(device);
      const counters = {
        rxPackets: l?.stats64?.rx.packets ?? 0,
        txPackets: l?.stats64?.tx.packets ?? 0,
      };
      const before = this.before.get(device);
      // tx_dropped since the last check; none on the first read or after a re-create.
      const droppedNow = l?.stats64?.tx.dropped;
      const droppedBefore = this.txDropped.get(device);
      const txDropped =
        droppedNow !== undefined && droppedBefore !== undefined
          ? Math.max(0, droppedNow - droppedBefore)
          : 0;
      if (droppedNow === undefined) this.txDropped.delete(device);
      else this.txDropped.set(device, droppedNow);
      const peerStates: PeerStatus[] = new Array<PeerStatus>(n.peers.length);
      let anyPeerUp = false;
      for (let i = 0; i < n.peers.length; i++) {
        const s = this.status.get(n.peers[i]!) ?? 'down';
        peerStates[i] = s;
        if (s !== 'down') anyPeerUp = true;
      }
      // Silence counts only while some peer is reachable, and restarts when the counter
      // moves or goes backwards (device re-created).
      if (!anyPeerUp || !before || counters.rxPackets !== before.rxPackets) {
        this.lastRx.set(device, now);
      }
      const silentSeconds = now - (this.lastRx.get(device) ?? now);
      const deviceUp = (l?.flags ?? []).includes('UP');
      const mtu = mtus.get(n.name) ?? 0;
      const needed = tunnelPacketFor(mtu);
      // In config order (the reason lists them in this order).
      const shortPaths = (short ?? []).flatMap((p) =>
        n.peers.includes(p.name) && p.measured < needed
          ? [{ peer: p.name, measured: p.measured, needed }]
          : [],
      );
      const judged = withLoop(
        judgeNetwork({
          deviceUp,
          peers: peerStates,
          now: counters,
          before,
          probeTx: this.probeTx.get(device) ?? 0,
          silentSeconds,
          silenceLimitSeconds: silenceLimit,
          shortPaths,
          txDropped,
        }),
        this.o.loops?.network(n.name),
      );
      this.before.set(device, counters);
      out.push({
        health: {
          name: n.name,
          vni: n.vni,
          device,
          mtu,
          rxPackets: counters.rxPackets,
          txPackets: counters.txPackets,
          status: judged.status,
          reason: judged.reason,
          silentSeconds,
        },
        probe: deviceUp && n.peers.length > 0,
        copies: n.peers.length,
      });
    }
    // Only when a device may be gone (more remembered than configured): a Set per check
    // for nothing otherwise, and O(networks²) never.
    if (Math.max(this.before.size, this.lastRx.size, this.txDropped.size) > out.length) {
      const devices = new Set(out.map((x) => x.health.device));
      for (const m of [this.before, this.lastRx, this.txDropped]) {
        for (const d of m.keys()) if (!devices.has(d)) m.delete(d);
      }
    }
    return out;
  }

  /**
   * The in-tunnel probe of one peer, and its path MTU (bytes, inner IP packet; undefined
   * when not measured). One echo per check while nothing changes: don't-fragment at the
   * size the peer's largest network needs, which also gives RTT and loss — or, while the
   * peer does not answer, a small one (as before path-MTU probing). Only when the needed
   * size fails and a small probe passes is the largest passing size searched for (a few
   * 2-packet echoes, starting from the last answer). A peer answering nothing is down,
   * not an MTU fault.
   */
  private async probePeer(
    name: string,
    address: string,
    /** Inner IP packet bytes the peer's networks need (neededPacket; 0: none). */
    needed: number,
    echo: (req: EchoRequest) => Promise<ProbeResult>,
  ): Promise<{ probe: ProbeResult; measured: number | undefined }> {
    const count = this.o.probeCount ?? DEFAULT_PROBE_COUNT;
    if (needed === 0) {
      return { probe: await echo({ address, size: undefined, count }), measured: undefined };
    }
    const last = this.paths.get(name);
    let small: ProbeResult;
    if (last?.answered === false) {
      small = await echo({ address, size: undefined, count });
      if (small.received === 0) return this.pathSilent(name, last, small);
      const big = await echo({ address, size: needed, count });
      if (big.received > 0) return this.pathAnswered(name, last, big, needed);
    } else {
      const big = await echo({ address, size: needed, count });
      if (big.received > 0) return this.pathAnswered(name, last, big, needed);
      small = await echo({ address, size: undefined, count });
      if (small.received === 0) return this.pathSilent(name, last, small);
    }
    // Up to `needed` itself: if it passes after all (e.g. the first packets waited for a
    // handshake), the search ends there and no fault is reported.
    const measured = await searchLargest(
      SMALL_PROBE_PACKET,
      needed,
      async (size) => (await echo({ address, size, count: 2 })).received > 0,
      last?.measured,
    );
    return this.pathAnswered(name, last, small, measured);
  }

  /** The peer answered: its path state, updated in place when there is one (no churn). */
  private pathAnswered(
    name: string,
    last: { answered: boolean; measured?: number } | undefined,
    probe: ProbeResult,
    measured: number,
  ): { probe: ProbeResult; measured: number } {
    if (last) {
      last.answered = true;
      last.measured = measured;
    } else this.paths.set(name, { answered: true, measured });
    return { probe, measured };
  }

  /** The peer answered nothing: not measured; the last size found is kept as the hint. */
  private pathSilent(
    name: string,
    last: { answered: boolean; measured?: number } | undefined,
    probe: ProbeResult,
  ): { probe: ProbeResult; measured: undefined } {
    if (last) last.answered = false;
    else this.paths.set(name, { answered: false, measured: undefined });
    return { probe, measured: undefined };
  }

  /**
   * Sends this check's probe frames (after the counters were read, so they show in the
   * next check's delta) and remembers how many frames each put on its device. Returns
   * why a device got no probe, by device.
   */
  private async sendProbes(
    prober: L2Prober | undefined,
    identity: string,
    netns: string | undefined,
    networks: readonly { health: { device: string }; probe: boolean; copies: number }[],
  ): Promise<Map<string, string>> {
    this.probeTx.clear();
    const errors = new Map<string, string>();
    if (!prober) return errors;
    const targets = networks.filter((n) => n.probe);
    const r = await prober.send(
      identity,
      targets.map((n) => n.health.device),
      netns,
    );
    for (const n of targets) {
      const d = n.health.device;
      if (r.sent.has(d)) this.probeTx.set(d, n.copies);
      else errors.set(d, r.unavailable ?? r.failed.get(d) ?? 'not sent');
    }
    return errors;
  }

  /**
   * Endpoint fail-over for every peer, from the state read at the start of this check
   * (the probes of earlier checks are the traffic that makes WireGuard try handshakes).
   * Returns the endpoints switched to, by peer name. A failed switch is not stored, so
   * the next check tries it again.
   */
  private failOver(
    read: () =>
      | { seen: number; wgPeers: ReadonlyMap<string, ObservedPeer> }
      | Promise<{ seen: number; wgPeers: ReadonlyMap<string, ObservedPeer> } | undefined>
      | undefined,
    peers: GatewayConfig['peers'],
    now: number,
    only?: ReadonlySet<string>,
  ): Promise<Map<string, string>> {
    const run = this.deciding.then(async () => {
      const r = await read();
      return r ? this.failOverNow(peers, r.wgPeers, now, r.seen, only) : new Map<string, string>();
    });
    this.deciding = run.catch(() => undefined);
    return run;
  }

  private async failOverNow(
    peers: GatewayConfig['peers'],
    wgPeers: ReadonlyMap<string, ObservedPeer>,
    now: number,
    seen: number,
    only: ReadonlySet<string> | undefined,
  ): Promise<Map<string, string>> {
    const switched = new Map<string, string>();
    if (this.o.failover === false) return switched;
    const policy = this.policy();
    for (const p of peers) {
      if (only && !only.has(p.name)) continue;
      if ((this.lastSwitch.get(p.name) ?? 0) > seen) continue; // read before its last switch
      const wg = wgPeers.get(p.publicKey);
      if (!wg) continue; // not in the tunnel (yet): the next apply adds it
      // One endpoint, in use: nothing to decide (most peers, every check).
      const prev = this.failover.get(p.name);
      if (failoverSettled(prev, p.endpoints, wg.endpoint)) continue;
      const d = decideFailover(
        prev,
        {
          now,
          endpoints: p.endpoints,
          current: wg.endpoint,
          latestHandshake: wg.latestHandshake,
          probeFailed: this.probeFailed.has(p.name),
          echoes: this.echoRun(p.name),
        },
        policy,
      );
      if (d.switchTo !== undefined) {
        const done = await this.o.gateway
          .setPeerEndpoint(p.publicKey, d.switchTo, { renew: d.renew })
          .catch(() => false);
        if (!done) continue;
        switched.set(p.name, d.switchTo);
        this.lastSwitch.set(p.name, ++this.switches);
        this.o.metrics?.observeFailover(p.name);
        // The new endpoint is judged by echoes sent from now on only.
        const track = this.echoes.get(p.name);
        if (track) Object.assign(track, { after: this.clock(), answered: false, lost: 0 });
      }
      this.failover.set(p.name, d.state);
    }
    return switched;
  }

  /** Forgets the per-peer state of peers no longer in `peers` (the config's list). */
  private prune(peers: GatewayConfig['peers']): void {
    this.prunedFor = peers;
    this.nameByKey = new Map(peers.map((p) => [p.publicKey, p.name]));
    const names = new Set(peers.map((p) => p.name));
    const perPeer = [this.failover, this.paths, this.echoes, this.lastSwitch, this.lastProbe];
    for (const m of [...perPeer, this.status]) {
      for (const name of m.keys()) if (!names.has(name)) m.delete(name);
    }
    for (const name of this.lastPeerRx.keys()) if (!names.has(name)) this.lastPeerRx.delete(name);
    for (const name of this.probeFailed) if (!names.has(name)) this.probeFailed.delete(name);
  }

  /**
   * RTT (ms) by peer name from the latest report, built once per report: a liveness round
   * looked each peer up in the report's list, O(peers²) four times a second.
   */
  private rttsOfLatest(): ReadonlyMap<string, number | undefined> {
    let r = this.rtts;
    if (!r || r.report !== this.latest) {
      r = {
        report: this.latest,
        byName: new Map((this.latest?.peers ?? []).map((x) => [x.name, x.probe.rttMs])),
      };
      this.rtts = r;
    }
    return r.byName;
  }

  /** Unix seconds now, not rounded (the liveness echoes need sub-second times). */
  private clock(): number {
    return (this.o.now ?? (() => Date.now() / 1000))();
  }

  private policy(): FailoverPolicy {
    return { ...DEFAULT_FAILOVER_POLICY, ...(this.o.failover || {}) };
  }

  /** The fast rule's input for a peer; undefined while it has no liveness echoes. */
  private echoRun(name: string): EchoRun | undefined {
    const t = this.echoes.get(name);
    return t && { answered: t.answered, lost: t.lost, lostSince: t.lostSince };
  }

  /**
   * One round of liveness echoes: one small in-tunnel echo to each peer with several
   * endpoints (through the probe helper; a round of many peers is one request), then
   * the fail-over decision for every peer whose echoes all went unanswered long enough
   * (endpoint-failover.ts, fast rule); only then is the tunnel read (one `wg show`).
   * Resolves once the answers are in (up to 0.5 s, or 4 × the peer's RTT) and any switch
   * is made. start() runs one every livenessIntervalMs without waiting for the last;
   * tests call it with a pinned clock. Does nothing without the helper.
   */
  async probeLiveness(): Promise<void> {
    const config = this.o.gateway.config;
    if (!config || this.o.failover === false || this.o.livenessIntervalMs === false) return;
    const peers = config.peers.filter((p) => p.endpoints.length >= 2);
    if (peers.length === 0 || !this.helper || !(await this.helper.ready(config.netns))) return;
    const policy = this.policy();
    const ours = this.o.gateway.lastReport?.publicKey ?? '';
    const sent = this.clock();
    const rtts = this.rttsOfLatest();
    const results = await Promise.all(
      peers.map(async (p) => {
        const rtt = rtts.get(p.name) ?? 0;
        const waitS = Math.min(policy.deadPathSeconds, Math.max(LIVENESS_WAIT_S, (4 * rtt) / 1000));
        const r = await this.helper!.echo(
          { address: p.transitAddress, count: 1, waitS },
          config.netns,
        ).catch(() => undefined);
        return { p, answered: r === undefined ? undefined : r.received > 0 };
      }),
    );
    const due = new Set<string>();
    for (const { p, answered } of results) {
      if (answered === undefined) continue; // the helper failed: no evidence either way
      const keys = `${ours} ${p.publicKey}`;
      let t = this.echoes.get(p.name);
      if (!t || t.keys !== keys) {
        // A key change (rotation) drops sessions on purpose: count from it.
        t = { keys, after: sent, answered: false, lost: 0, lostSince: sent };
        this.echoes.set(p.name, t);
      }
      if (sent < t.after) continue; // sent before a switch or a later answer
      if (answered) {
        Object.assign(t, { after: sent, answered: true, lost: 0 });
        // The path works: the back-off ends now, not at the next health check (the
        // fast rule's own reset, decideFailover with an answered run).
        const f = this.failover.get(p.name);
        if (f && f.attempts > 0) this.failover.set(p.name, { ...f, since: sent, attempts: 0 });
        continue;
      }
      if (t.lost === 0) t.lostSince = sent;
      t.lost += 1;
      t.answered = false;
      const attempts = this.failover.get(p.name)?.attempts ?? 0;
      if (
        t.lost >= policy.deadPathEchoes &&
        this.clock() - t.lostSince >= deadPathFor(attempts, p.endpoints.length, policy)
      ) {
        due.add(p.name);
      }
    }
    if (due.size === 0) return;
    // Read in the decision's turn: a round that waited behind another's switch sees it.
    const read = async () => {
      const seen = this.switches;
      const tunnel = await this.o.gateway.observeTunnel().catch(() => undefined);
      return tunnel?.wg
        ? // A map of its own, not the check's reused one (a check may be between reads).
          { seen, wgPeers: byPublicKey(new Map(), tunnel.wg.peers) }
        : undefined;
    };
    await this.failOver(read, config.peers, this.clock(), due);
  }

  /** Starts periodic checks. Idempotent. A failed check is retried on the next tick. */
  start(): void {
    if (this.timer) return;
    const every = this.o.livenessIntervalMs ?? 250;
    if (every !== false && this.o.failover !== false) {
      this.liveTimer = setInterval(() => {
        const round = this.probeLiveness().catch(() => undefined);
        this.liveRounds.add(round);
        void round.finally(() => this.liveRounds.delete(round));
      }, every);
    }
    const tick = () => {
      this.running = this.check()
        .catch(() => undefined)
        .finally(() => {
          const delay = jitteredDelay(this.o.intervalMs ?? 10_000, Math.random(), this.o.jitter);
          if (this.timer) this.timer = setTimeout(tick, delay);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops periodic checks, waits for a running one, ends the probe helper. Idempotent. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.liveTimer);
    this.liveTimer = undefined;
    await this.running;
    await this.checking;
    await Promise.all(this.liveRounds);
    await this.helper?.close();
  }
}
