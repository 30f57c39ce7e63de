/**
 * Runs the loop guard and the broadcast bound (loop-guard.ts) next to a Gateway: every
 * check it keeps the `inet l2fed_l2` table in step with the applied config, sends one
 * beacon per network, reads which beacons came back, and blocks or unblocks networks.
 * The table's one dynamic part is its `blocked` set; the rest follows the config: a
 * changed path (peer, network, bound) rewrites that path's chains and map entries only
 * (one nft transaction), and only a new tunnel, port or rule version replaces the table.
 * A restarted monitor adopts the blocks it finds, so a restart does not reopen a loop.
 *
 * Reads (issue 18): a check reads the whole table only when the namespace's nftables
 * generation moved since its last whole read (a transaction: its own, or anyone's);
 * otherwise only the counter sets, whose size is the paths that dropped something.
 * Without the probe helper (no generation) every check reads the whole table.
 */
import type { CommandRunner } from '../lib/runner.js';
import { CommandError } from '../lib/errors.js';
import { ParseError } from './errors.js';
import type { GatewayConfig } from './config.js';
import { requireNft } from './firewall-nft.js';
import type { Gateway } from './gateway.js';
import { PythonLoopBeacon, type LoopBeaconSender } from './loop-beacon.js';
import {
  L2_GUARD_FAMILY,
  L2_GUARD_TABLE,
  blockScript,
  blockedPaths,
  decideLoops,
  l2GuardChange,
  l2GuardChangeScript,
  l2GuardMarker,
  l2GuardRemoveScript,
  l2GuardScript,
  parseL2Guard,
  parseL2GuardCounters,
  COUNTER_SETS,
  pathKey,
  type L2GuardSpec,
  type LoopNetwork,
  type LoopReport,
  type NetworkLoopReport,
  type NetworkLoopState,
  type ObservedL2Guard,
} from './loop-guard.js';
import type { GatewayMetrics } from './metrics.js';

export type { LoopReport, NetworkLoopReport, PathReport } from './loop-guard.js';
import { vxlanName } from './model.js';

export interface LoopMonitorOptions {
  /** Only its applied config is read. */
  readonly gateway: Pick<Gateway, 'config'>;
  readonly runner: CommandRunner;
  readonly metrics?: GatewayMetrics;
  /** Between checks; default 2 s. A loop is cut within about one interval. */
  readonly intervalMs?: number;
  /** Quiet checks before a block lifts; default DEFAULT_HOLD_TICKS. */
  readonly holdTicks?: number;
  /** How long a beacon gets to come back, ms; default 300. */
  readonly settleMs?: number;
  /** Default: python3 (loop-beacon.ts). */
  readonly beacon?: LoopBeaconSender;
  /** Absolute path of nft; default: found in the system directories (requireNft). */
  readonly nft?: string;
}

/** What the guard table should hold for a config. Pure. */
export function l2GuardSpec(config: GatewayConfig): L2GuardSpec {
  const address = new Map(config.peers.map((p) => [p.name, p.transitAddress]));
  return {
    wgIfname: config.wireguard.ifname,
    vxlanPort: config.vxlanPort,
    paths: config.networks.flatMap((n) =>
      n.peers.flatMap((peer) => {
        const a = address.get(peer);
        const limit = n.bumLimit ?? config.bumLimit;
        return a ? [{ address: a, vni: n.vni, ...limit }] : [];
      }),
    ),
  };
}

function loopNetworks(config: GatewayConfig): LoopNetwork[] {
  const address = new Map(config.peers.map((p) => [p.name, p.transitAddress]));
  return config.networks.map((n) => ({
    name: n.name,
    vni: n.vni,
    peers: n.peers.flatMap((name) => {
      const a = address.get(name);
      return a ? [{ name, address: a }] : [];
    }),
  }));
}

export class LoopMonitor {
  private timer: NodeJS.Timeout | undefined;
  private watch: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private state = new Map<string, NetworkLoopState>();
  private adopted = false;
  /** The last read of the table (undefined inside: it was missing), for the next check. */
  private last: { netns: string | undefined; table: ObservedL2Guard | undefined } | undefined;
  /** The nftables generation just before the last whole read, when the helper gave one. */
  private generation: { netns: string | undefined; gen: number } | undefined;
  private nft: string | undefined;
  private readonly beacon: LoopBeaconSender;
  latest: LoopReport | undefined;

  constructor(private readonly o: LoopMonitorOptions) {
    this.beacon = o.beacon ?? new PythonLoopBeacon(o.runner);
    this.nft = o.nft;
  }

  /** The loop state of a network by name (undefined before the first check). */
  network(name: string): NetworkLoopReport | undefined {
    return this.latest?.networks.find((n) => n.name === name);
  }

  /**
   * The whole table; remembers the generation read just before it (see reread), once
   * the table is read and parsed: a read that fails leaves none, so the next is whole.
   */
  private async read(netns: string | undefined): Promise<ObservedL2Guard | undefined> {
    this.generation = undefined;
    // Before the listing: a transaction in between makes the next reread whole again.
    const gen = await this.beacon.generation?.(netns);
    const argv = [this.nft!, '-j', 'list', 'table', L2_GUARD_FAMILY, L2_GUARD_TABLE];
    // Through the probe helper when it can (no process per check), else nft itself.
    const r =
      (await this.beacon.list?.(L2_GUARD_FAMILY, L2_GUARD_TABLE, netns)) ??
      (await this.o.runner.run(argv, { netns, allowFailure: true }));
    let table: ObservedL2Guard | undefined;
    if (r.exitCode === 0) table = parseL2Guard(r.stdout);
    else if (r.exitCode !== 1 || !/No such file or directory/.test(r.stderr)) {
      throw new CommandError(argv, r.exitCode, r.stderr, false, { netns });
    }
    if (gen !== undefined) this.generation = { netns, gen };
    return table;
  }

  /**
   * The table again after `have` (a whole read, or a reread of one): only the counter
   * sets when nothing was committed in the namespace since that whole read (the same
   * generation), so the rest is still as read; else the whole table.
   */
  private async reread(
    netns: string | undefined,
    have: ObservedL2Guard | undefined,
  ): Promise<ObservedL2Guard | undefined> {
    const g = this.generation;
    if (have && g && g.netns === netns && (await this.beacon.generation?.(netns)) === g.gen) {
      const sets = Object.values(COUNTER_SETS);
      const r = await this.beacon.list?.(L2_GUARD_FAMILY, L2_GUARD_TABLE, netns, sets);
      try {
        if (r?.exitCode === 0) return { ...have, counters: parseL2GuardCounters(r.stdout) };
      } catch {
        // Unreadable counters: the whole table says what is there (or why not).
      }
    }
    return this.read(netns);
  }

  private nftScript(netns: string | undefined, script: string) {
    return this.o.runner.run([this.nft!, '-f', '-'], { netns, mutates: true, input: script });
  }

  /**
   * One check: table in step, beacons out, blocks decided and applied. undefined until
   * the gateway has applied a config.
   * @throws MissingNftError without nft; CommandError when nft fails
   */
  async check(): Promise<LoopReport | undefined> {
    try {
      return await this.checkOnce();
    } catch (err) {
      // What was read may not be what is there now: the next check reads it all afresh.
      this.last = undefined;
      this.generation = undefined;
      throw err;
    }
  }

  private async checkOnce(): Promise<LoopReport | undefined> {
    const config = this.o.gateway.config;
    if (!config) return undefined;
    this.nft ??= await requireNft();
    const netns = config.netns;
    const spec = l2GuardSpec(config);
    const networks = loopNetworks(config);
    // The previous check's last read is this one's "before": one nft read per check.
    let observed =
      this.last?.netns === netns && this.last ? this.last.table : await this.read(netns);
    if (!this.adopted && observed) {
      // A restart: keep the blocks in force (the loop may still be there).
      const held = new Set(observed.blocked.map(pathKey));
      for (const n of networks) {
        if (n.peers.some((p) => held.has(pathKey({ address: p.address, vni: n.vni })))) {
          this.state.set(n.name, { loopPeers: [], blocked: true, quietTicks: 0, reason: '' });
        }
      }
    }
    this.adopted = true;
    const holding = blockedPaths(networks, this.state);
    if (observed?.marker !== l2GuardMarker(spec)) {
      await this.nftScript(netns, l2GuardScript(spec, holding));
      observed = await this.read(netns);
    } else {
      const change = l2GuardChange(spec, observed);
      if (change) {
        // New paths of a blocked network are blocked in the same transaction; a removed
        // path's element goes with it.
        const put = new Set(change.put.map(pathKey));
        const gone = new Set(change.del.map(pathKey));
        const have = new Set(observed.blocked.map(pathKey));
        const blocked = {
          add: holding.filter((p) => put.has(pathKey(p)) && !have.has(pathKey(p))),
          del: observed.blocked.filter((p) => gone.has(pathKey(p))),
        };
        await this.nftScript(netns, l2GuardChangeScript(change, blocked));
        observed = await this.read(netns);
      }
    }
    const before = observed?.counters.repeats ?? new Map<string, number>();
    const targets = networks.filter((n) => n.peers.length > 0);
    const sent = await this.beacon.send(
      config.identity,
      targets.map((n) => vxlanName(n.vni)),
      netns,
    );
    await new Promise((r) => setTimeout(r, this.o.settleMs ?? 300));
    const fresh = await this.reread(netns, observed);
    this.last = { netns, table: fresh };
    const after = fresh ?? observed;
    const grew = new Set(
      [...(after?.counters.repeats ?? [])]
        .filter(([k, v]) => v > (before.get(k) ?? 0))
        .map(([k]) => k),
    );
    const beaconSent = new Set(
      targets.filter((n) => sent.sent.has(vxlanName(n.vni))).map((n) => n.name),
    );
    const next = decideLoops({
      identity: config.identity,
      networks,
      previous: this.state,
      repeatsGrew: grew,
      beaconSent,
      holdTicks: this.o.holdTicks,
    });
    const want = blockedPaths(networks, next);
    const have = after?.blocked ?? [];
    const wantKeys = new Set(want.map(pathKey));
    const haveKeys = new Set(have.map(pathKey));
    const add = want.filter((p) => !haveKeys.has(pathKey(p)));
    const del = have.filter((p) => !wantKeys.has(pathKey(p)));
    if (add.length || del.length) await this.nftScript(netns, blockScript(add, del));
    this.state = next;

    const c = after?.counters;
    const reported: NetworkLoopReport[] = networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      ...next.get(n.name)!,
      paths: n.peers.map((p) => {
        const k = pathKey({ address: p.address, vni: n.vni });
        return {
          peer: p.name,
          address: p.address,
          bumDroppedIn: c?.bumDroppedIn.get(k) ?? 0,
          bumDroppedOut: c?.bumDroppedOut.get(k) ?? 0,
          blockedDroppedIn: c?.blockedDroppedIn.get(k) ?? 0,
          blockedDroppedOut: c?.blockedDroppedOut.get(k) ?? 0,
        };
      }),
      beaconError:
        n.peers.length === 0 || beaconSent.has(n.name)
          ? ''
          : (sent.unavailable ?? sent.failed.get(vxlanName(n.vni)) ?? 'not sent'),
    }));
    const paths = reported.flatMap((n) => n.paths);
    const report: LoopReport = {
      at: new Date().toISOString(),
      networks: reported,
      blockedDroppedIn: paths.reduce((a, p) => a + p.blockedDroppedIn, 0),
      blockedDroppedOut: paths.reduce((a, p) => a + p.blockedDroppedOut, 0),
    };
    this.latest = report;
    this.o.metrics?.observeLoops(report);
    // Blind to loops: the table and blocks are in step, but say so in every check.
    if (c?.uncounted) throw new ParseError('nft -j list set', c.uncounted);
    return report;
  }

  /**
   * Starts periodic checks. Idempotent. A failed check is retried on the next tick. A
   * new applied config is checked within about 250 ms, so its bound is in place without
   * waiting for the next interval.
   */
  start(): void {
    if (this.timer) return;
    let busy = false;
    let seen: GatewayConfig | undefined;
    const tick = () => {
      busy = true;
      seen = this.o.gateway.config;
      this.running = this.check()
        .catch(() => undefined)
        .finally(() => {
          busy = false;
          if (this.timer) this.timer = setTimeout(tick, this.o.intervalMs ?? 2000);
        });
    };
    this.timer = setTimeout(tick, 0);
    this.watch = setInterval(() => {
      if (busy || !this.timer || this.o.gateway.config === seen) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(tick, 0);
    }, 250);
  }

  /** Stops periodic checks and waits for a running one; the table stays. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.watch);
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Removes the table (no error when absent), e.g. after Gateway.teardown(). */
  async remove(netns: string | undefined): Promise<void> {
    this.nft ??= await requireNft();
    await this.nftScript(netns, l2GuardRemoveScript());
    this.state.clear();
    this.last = undefined;
    this.generation = undefined;
  }
}
