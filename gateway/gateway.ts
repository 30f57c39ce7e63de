/**
 * The gateway: one declarative entry point, apply(config). It validates the whole desired
 * config, reads the actual state, plans the difference as data and runs only those steps.
 * Applying the same config again runs no mutating command. A new Gateway object over an
 * existing data plane (after a crash or restart) adopts it: the plan is empty, so nothing
 * is torn down and established tunnels keep flowing.
 */
import { access } from 'node:fs/promises';
import type { CommandRunner } from '../lib/runner.js';
import { parseGatewayConfig, type GatewayConfig, type SegmentConfig } from './config.js';
import { SupervisedLauncher, type DaemonLauncher } from './daemons.js';
import { REJECT_AFTER_TIME_SECONDS, endpointToKeep, handshakeWorks } from './endpoint-failover.js';
import { ConfigError } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import type { Host } from './host.js';
import { NftFirewall, requireNft } from './firewall-nft.js';
import { derivePublicKey, ensurePrivateKey, rotatePrivateKey, type KeyPair } from './keys.js';
import { IpLinks } from './links-ip.js';
import { desiredState, type ObservedDataplane } from './model.js';
import { describeStep, planSteps, type Step } from './plan.js';
import { executePlan, observe, type Backends } from './backends.js';
import { handshakesDue, type HandshakeDue } from './handshake-watch.js';
import { promoteStandby, promotionSteps, standbyKeys } from './standby-keys.js';
import { LinuxBridgeSegment } from './segment-linux-bridge.js';
import { OvsSegment, type OvsInterfaceSettings } from './segment-ovs.js';
import { detectTunnelKind, type TunnelKind, type WgDump } from './tunnel.js';
import { KernelTunnel } from './tunnel-kernel.js';
import { WireguardGoTunnel } from './tunnel-wireguard-go.js';

const DEFAULT_OVSDB = '/var/run/openvswitch/db.sock';

async function ovsAvailable(dbSocket: string | undefined): Promise<boolean> {
  if (dbSocket) return true; // configured explicitly: errors should surface, not hide
  try {
    await access(DEFAULT_OVSDB);
    return true;
  } catch {
    return false;
  }
}

export interface GatewayOptions {
  readonly runner: CommandRunner;
  /** Keeps wireguard-go alive across Gateway objects; default: one per Gateway. */
  readonly launcher?: DaemonLauncher;
  /** OVSDB socket for the OVS segment backend; default: ovs-vsctl's default. */
  readonly ovsDbSocket?: string;
  /** Interface type/options of the VXLAN ports on OVS (e.g. AF_XDP); default: system. */
  readonly ovsInterface?: OvsInterfaceSettings;
  /** Force a tunnel backend instead of detecting one. */
  readonly tunnelKind?: Exclude<TunnelKind, 'fake'>;
  /** Replace every backend (unit tests pass fakes here). */
  readonly backends?: (host: Host) => Backends;
  /** Records reconcile duration, steps and errors. */
  readonly metrics?: GatewayMetrics;
  /** How the real backends find `nft`; default: the system dirs (findSystemTool). Tests. */
  readonly findTool?: (tool: string) => Promise<string | undefined>;
  /**
   * After a key change or a new peer, how often (ms) to check that the handshake it needs
   * completed, and for how long (ms) before leaving it to WireGuard's own retries (see
   * handshake-watch.ts); false turns the check off. Default every 1000 ms for 15000 ms.
   */
  readonly handshakeWatch?: { readonly intervalMs: number; readonly forMs: number } | false;
  /**
   * While a peer's next key is held as a standby entry, how often (ms) to check whether
   * it handshaked, to promote it (standby-keys.ts); false turns it off. Default 50 ms
   * where the tunnel answers cheaply (wireguard-go's control socket, no process), else
   * 200 ms: the peer's traffic is dropped from its switch until the promotion.
   */
  readonly standbyWatchMs?: number | false;
  /** Unix seconds now, for handshake ages (a roamed endpoint is kept while proven). Tests. */
  readonly now?: () => number;
}

const DEFAULT_HANDSHAKE_WATCH = { intervalMs: 1000, forMs: 15_000 };

/** What the gateway reports after an apply: identity, backends and effective MTUs. */
export interface GatewayReport {
  readonly identity: string;
  readonly publicKey: string;
  readonly tunnel: { readonly kind: TunnelKind; readonly ifname: string; readonly mtu: number };
  readonly networks: readonly {
    readonly name: string;
    readonly vni: number;
    readonly device: string;
    readonly mtu: number;
    readonly segment: SegmentConfig;
    readonly peers: readonly string[];
  }[];
}

export interface ApplyResult {
  /** The steps that ran; empty when the data plane already matched. */
  readonly steps: readonly Step[];
  readonly durationMs: number;
  readonly report: GatewayReport;
}

/** A plan for dry-run: the steps and their printable form. Runs no mutating command. */
export interface PlanResult {
  readonly steps: readonly Step[];
  readonly lines: readonly string[];
}

/**
 * One gateway. Methods are serialised internally, so concurrent calls are safe and run
 * one after another in call order.
 */
export class Gateway {
  private backends: Backends | undefined;
  private netns: string | undefined;
  private keys: KeyPair | undefined;
  /** The key the tunnel uses as of the last apply (keepKey may hold it behind `keys`). */
  private active: Pick<KeyPair, 'privateKey' | 'publicKey'> | undefined;
  private last: GatewayConfig | undefined;
  private lastReportValue: GatewayReport | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly launcher: DaemonLauncher;
  /** Peers whose handshake this gateway retries, by public key (handshake-watch.ts). */
  private readonly watched = new Map<
    string,
    HandshakeDue & { readonly until: number; readonly endpoint?: string }
  >();
  private watchTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: GatewayOptions) {
    this.launcher = options.launcher ?? new SupervisedLauncher();
  }

  /** The tunnel backend in use, once the first apply or plan has chosen it. */
  get tunnelKind(): TunnelKind | undefined {
    return this.backends?.tunnel.kind;
  }

  /** The report of the last successful apply, if any. */
  get lastReport(): GatewayReport | undefined {
    return this.lastReportValue;
  }

  /**
   * The public key of a rotated private key the tunnel does not use yet (RotateKey
   * happened, the next apply switches); undefined otherwise.
   */
  get pendingPublicKey(): string | undefined {
    const active = this.lastReportValue?.publicKey;
    return active && this.keys && this.keys.publicKey !== active ? this.keys.publicKey : undefined;
  }

  /** The last applied config, if any. */
  get config(): GatewayConfig | undefined {
    return this.last;
  }

  private now(): number {
    return this.options.now?.() ?? Math.floor(Date.now() / 1000);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async prepare(input: unknown): Promise<{ config: GatewayConfig; backends: Backends }> {
    const config = parseGatewayConfig(input); // throws before any command runs
    if (this.backends && config.netns !== this.netns) {
      throw new ConfigError([
        { path: 'netns', message: `cannot move a running gateway (was ${this.netns ?? 'root'})` },
      ]);
    }
    if (!this.backends) {
      const host: Host = { runner: this.options.runner, netns: config.netns };
      this.netns = config.netns;
      this.backends = this.options.backends?.(host) ?? (await this.realBackends(host));
    }
    this.keys = await ensurePrivateKey(this.options.runner, config.wireguard.privateKeyFile);
    return { config, backends: this.backends };
  }

  private async realBackends(host: Host): Promise<Backends> {
    // Before any command runs: no VXLAN device without its guard.
    const nft = await requireNft(this.options.findTool);
    const kind = this.options.tunnelKind ?? (await detectTunnelKind());
    return {
      firewall: new NftFirewall(host, nft),
      tunnel:
        kind === 'kernel' ? new KernelTunnel(host) : new WireguardGoTunnel(host, this.launcher),
      links: new IpLinks(host),
      segments: {
        'linux-bridge': new LinuxBridgeSegment(host),
        // Only where OVS runs: without it, OVS networks fail as a missing segment.
        ...((await ovsAvailable(this.options.ovsDbSocket))
          ? {
              ovs: new OvsSegment(host, {
                dbSocket: this.options.ovsDbSocket,
                interface: this.options.ovsInterface,
              }),
            }
          : {}),
      },
    };
  }

  /**
   * Dry-run: validates, reads the state and returns the plan without running it. Runs no
   * mutating command; it does create the key file on a first start (the plan needs it).
   * @throws ConfigError, PreconditionError
   */
  plan(input: unknown): Promise<PlanResult> {
    return this.serial(async () => {
      const { config: asked, backends } = await this.prepare(input);
      const observed = await observe(backends, asked.wireguard.ifname, asked.wireguard.listenPort);
      const config = promoteStandby(asked, observed.tunnel); // an applied promotion stays
      const key = await this.tunnelKey(config, observed.tunnel);
      const steps = planSteps(desiredState(config, key.privateKey), observed, this.now());
      return { steps, lines: steps.map(describeStep) };
    });
  }

  /**
   * Makes the data plane match `input`. Idempotent: a second call with the same config
   * runs no mutating command. Removing a peer or network removes exactly its state.
   * @throws ConfigError (nothing ran), PreconditionError (nothing ran), ApplyError.
   */
  apply(input: unknown): Promise<ApplyResult> {
    return this.serial(async () => {
      const started = Date.now();
      let steps: Step[] = [];
      try {
        const { config: asked, backends } = await this.prepare(input);
        const observed = await observe(
          backends,
          asked.wireguard.ifname,
          asked.wireguard.listenPort,
        );
        const config = promoteStandby(asked, observed.tunnel); // an applied promotion stays
        const key = await this.tunnelKey(config, observed.tunnel);
        steps = planSteps(desiredState(config, key.privateKey), observed, this.now());
        await executePlan(backends, steps);
        this.last = config;
        this.active = key;
        this.lastReportValue = this.report(config);
        this.watchHandshakes(
          handshakesDue(
            steps,
            observed.tunnel,
            desiredState(config, key.privateKey).tunnel.peers,
            key.publicKey,
          ),
        );
        this.watchStandby();
        const durationMs = Date.now() - started;
        this.options.metrics?.observeApply(durationMs / 1000, steps.length);
        return { steps, durationMs, report: this.lastReportValue };
      } catch (err) {
        this.options.metrics?.observeApply((Date.now() - started) / 1000, 0, err);
        throw err;
      }
    });
  }

  /**
   * The key the tunnel is to use: the key file's, unless the config keeps the tunnel's
   * current key (keepKey) and the tunnel has another one.
   */
  private async tunnelKey(
    config: GatewayConfig,
    tunnel: { readonly privateKey: string | undefined } | undefined,
  ): Promise<Pick<KeyPair, 'privateKey' | 'publicKey'>> {
    const file = this.keys!;
    const inUse = tunnel?.privateKey;
    if (!config.wireguard.keepKey || !inUse || inUse === file.privateKey) return file;
    if (this.active?.privateKey === inUse) return this.active;
    return { privateKey: inUse, publicKey: await derivePublicKey(this.options.runner, inUse) };
  }

  /** Reads the current state of the data plane (no changes). */
  observe(): Promise<ObservedDataplane | undefined> {
    return this.serial(async () =>
      this.backends && this.last ? observe(this.backends, this.last.wireguard.ifname) : undefined,
    );
  }

  /**
   * The WireGuard state alone (one read; no links, FDB, firewall or segment reads as in
   * observe()): what a health check needs. undefined before the first apply; `wg`
   * undefined when the device is missing.
   */
  observeTunnel(): Promise<{ readonly wg: WgDump | undefined } | undefined> {
    return this.serial(async () =>
      this.backends && this.last
        ? { wg: await this.backends.tunnel.read(this.last.wireguard.ifname) }
        : undefined,
    );
  }

  /**
   * Endpoint fail-over: points the peer at another of its configured endpoints (one
   * `wg set … endpoint`). Serialised with apply; does nothing and returns false when the
   * peer or the endpoint is no longer in the applied config or the peer is missing from
   * the tunnel (so it never creates a peer). A later apply keeps the endpoint, since it
   * is one of the listed ones. `renew`: when the peer holds no session (no handshake
   * within 180 s), renew the entry on the new endpoint instead (remove + add, as the
   * handshake watch does), so WireGuard initiates at once rather than at its next 5 s
   * retry; a peer that does hold one is only moved, keeping its keys.
   */
  setPeerEndpoint(
    publicKey: string,
    endpoint: string,
    opts: { readonly renew?: boolean } = {},
  ): Promise<boolean> {
    return this.serial(async () => {
      const b = this.backends;
      const config = this.last;
      const peer = config?.peers.find((p) => p.publicKey === publicKey);
      if (!b || !config || !peer?.endpoints.includes(endpoint)) return false;
      const ifname = config.wireguard.ifname;
      const wg = await b.tunnel.read(ifname);
      const have = wg?.peers.find((p) => p.publicKey === publicKey);
      if (!have) return false;
      const want = opts.renew
        ? desiredState(config, this.keys!.privateKey).tunnel.peers.find(
            (p) => p.publicKey === publicKey,
          )
        : undefined;
      if (want && !handshakeWorks(this.now(), have.latestHandshake, REJECT_AFTER_TIME_SECONDS)) {
        await b.tunnel.renewPeer(ifname, { ...want, endpoint });
      } else {
        await b.tunnel.setPeerEndpoint(ifname, publicKey, endpoint);
      }
      return true;
    });
  }

  private watchHandshakes(due: readonly HandshakeDue[]): void {
    const o = this.options.handshakeWatch ?? DEFAULT_HANDSHAKE_WATCH;
    if (!o || due.length === 0) return;
    for (const d of due) this.watched.set(d.publicKey, { ...d, until: Date.now() + o.forMs });
    if (this.watchTimer) return;
    const tick = () => {
      void this.checkHandshakes().finally(() => {
        this.watchTimer =
          this.watched.size > 0 ? setTimeout(tick, o.intervalMs).unref() : undefined;
      });
    };
    this.watchTimer = setTimeout(tick, o.intervalMs).unref();
  }

  private standbyTimer: NodeJS.Timeout | undefined;

  /** Polls while the applied config holds standby keys (standby-keys.ts). */
  private watchStandby(): void {
    const cheap = this.backends?.tunnel.handshakes !== undefined;
    const every = this.options.standbyWatchMs ?? (cheap ? 50 : 200);
    if (every === false || this.standbyTimer || standbyKeys(this.last).length === 0) return;
    const tick = () => {
      void this.promoteHandshaked()
        .catch(() => undefined) // a failing tunnel is the next apply's business
        .finally(() => {
          this.standbyTimer =
            standbyKeys(this.last).length > 0 ? setTimeout(tick, every).unref() : undefined;
        });
    };
    this.standbyTimer = setTimeout(tick, every).unref();
  }

  /**
   * Promotes every standby key that handshaked: the peer switched to it, and its old key
   * is dead. Touches only those peers' entries; the promoted config is the applied one.
   * The poll reads outside the queue (a read, and the queue may hold a slow health
   * observe); only a due promotion waits its turn (re-reading if an apply came first).
   */
  private async promoteHandshaked(): Promise<void> {
    const b = this.backends;
    const polled = this.last;
    if (!b || !polled || standbyKeys(polled).length === 0) return;
    // The control socket where there is one: a poll then starts no process.
    const fast = await b.tunnel.handshakes?.(polled.wireguard.ifname);
    const seen = fast ? undefined : await b.tunnel.read(polled.wireguard.ifname);
    if (promoteStandby(polled, fast ? { peers: fast } : seen) === polled) return;
    await this.serial(async () => {
      const before = this.last;
      if (!before || standbyKeys(before).length === 0) return;
      // Only an apply changes entries' keys or allowed IPs, and an apply sets `last`.
      const wg = before === polled && seen ? seen : await b.tunnel.read(before.wireguard.ifname);
      const after = promoteStandby(before, wg);
      if (after === before || !wg) return;
      const wanted = desiredState(after, this.keys!.privateKey).tunnel.peers;
      await executePlan(b, promotionSteps(before.wireguard.ifname, before, after, wanted, wg));
      this.last = after;
      this.lastReportValue = this.report(after);
    });
  }

  /**
   * One check of the watched peers: done once a handshake newer than the change
   * completed, or the peer left the config, or the watch ran out; else the peer entry is
   * renewed so WireGuard initiates at once. Errors end the watch (a failing tunnel is the
   * next apply's business).
   */
  private checkHandshakes(): Promise<void> {
    return this.serial(async () => {
      const b = this.backends;
      const config = this.last;
      const wg =
        b && config
          ? await b.tunnel.read(config.wireguard.ifname).catch(() => undefined)
          : undefined;
      if (!b || !config || !wg) {
        this.watched.clear();
        return;
      }
      const ifname = config.wireguard.ifname;
      const wanted = desiredState(config, this.keys!.privateKey).tunnel.peers;
      const now = Date.now();
      for (const [key, w] of this.watched) {
        const want = wanted.find((p) => p.publicKey === key);
        const have = wg.peers.find((p) => p.publicKey === key);
        if (!want || !have || have.latestHandshake > w.before || now >= w.until) {
          this.watched.delete(key);
          continue;
        }
        // Keep an endpoint fail-over or roaming chose, as the planner does; a renewed
        // entry has no handshake left to prove a roamed one, so the last choice holds.
        const endpoint =
          endpointToKeep(want.endpoints, have, this.now()) ?? w.endpoint ?? want.endpoint;
        try {
          await b.tunnel.renewPeer(ifname, { ...want, endpoint });
          this.watched.set(key, { ...w, before: 0, endpoint }); // the new entry has no handshake yet
        } catch {
          this.watched.delete(key);
        }
      }
    });
  }

  private report(config: GatewayConfig): GatewayReport {
    const key = this.active ?? this.keys!;
    const desired = desiredState(config, key.privateKey);
    return {
      identity: config.identity,
      publicKey: key.publicKey,
      tunnel: {
        kind: this.backends!.tunnel.kind,
        ifname: desired.tunnel.ifname,
        mtu: desired.tunnel.mtu,
      },
      networks: config.networks.map((n, i) => ({
        name: n.name,
        vni: n.vni,
        device: desired.vxlans[i]!.name,
        mtu: desired.vxlans[i]!.mtu,
        segment: n.segment,
        peers: n.peers,
      })),
    };
  }

  /**
   * Generates a new private key in the configured key file and returns the new public
   * key. The tunnel switches at the next apply; peers must get the new public key (via
   * the broker) at about the same time, since WireGuard knows a peer only by its key.
   * @throws ConfigError when nothing has been applied yet (no key file is known).
   */
  rotateKey(): Promise<{ publicKey: string }> {
    return this.serial(async () => {
      const file = this.last?.wireguard.privateKeyFile;
      if (!file) {
        throw new ConfigError([
          { path: 'wireguard.privateKeyFile', message: 'apply a config first' },
        ]);
      }
      this.keys = await rotatePrivateKey(this.options.runner, file);
      return { publicKey: this.keys.publicKey };
    });
  }

  /**
   * Removes everything this gateway owns: its VXLAN devices (unplugged from their
   * segments), the tunnel, and last the VXLAN guard (once no VXLAN device is left).
   * Leaves bridges and the key file. Idempotent.
   */
  teardown(): Promise<void> {
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    clearTimeout(this.standbyTimer);
    this.standbyTimer = undefined;
    this.watched.clear();
    return this.serial(async () => {
      const b = this.backends;
      const ifname = this.last?.wireguard.ifname;
      if (!b || !ifname) return;
      const observed = await observe(b, ifname);
      const steps: Step[] = [
        ...observed.segments.attachments.map((a): Step => ({
          kind: 'segment-detach',
          port: a.port,
          segment: a.segment,
        })),
        ...observed.vxlans.map((v): Step => ({ kind: 'vxlan-delete', name: v.name })),
      ];
      await executePlan(b, steps);
      await b.tunnel.destroy(ifname);
      if (observed.firewall) await b.firewall.remove();
    });
  }
}
