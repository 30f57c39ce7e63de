/**
 * In-tunnel echo probes and per-network probe frames without a process per peer (issue
 * 18): one long-lived helper per gateway (prober-helper.ts, python3 in the data-plane
 * namespace), started once through CommandRunner.spawn and reused by every check. Where
 * it cannot run (no spawn on the runner, python3 missing, no CAP_NET_RAW) callers fall
 * back to one `ping` per echo (pingOnce) and a python3 run per check (l2-probe.ts).
 */
import { createInterface } from 'node:readline';
import type { CommandRunner, SpawnedProcess } from '../lib/runner.js';
import { parsePing, type ProbeResult } from './health.js';
import type { L2Prober, ProbeSendResult } from './l2-probe.js';
import { echoOverhead } from './mtu.js';
import { HELPER_SCRIPT } from './prober-helper.js';

/** One echo probe: `count` packets 0.2 s apart, answers awaited up to 1 s after the last. */
export interface EchoRequest {
  readonly address: string;
  readonly count: number;
  /** IP packet size in bytes, sent don't-fragment; undefined = ping's default, DF not forced. */
  readonly size?: number | undefined;
  /** Seconds to wait for answers after the last packet; default 1. */
  readonly waitS?: number;
}

/** Sends echo probes into the tunnel. */
export interface Pinger {
  echo(req: EchoRequest, netns: string | undefined): Promise<ProbeResult>;
}

const INTERVAL_S = 0.2;
const WAIT_S = 1;
/** ping's default payload (56 B): an 84 B IPv4 packet. */
const DEFAULT_DATA = 56;

/** One `ping` process per echo: the fallback, and what every check did before issue 18. */
export async function pingOnce(
  runner: CommandRunner,
  req: EchoRequest,
  netns: string | undefined,
): Promise<ProbeResult> {
  const { address, size, count } = req;
  const df = size === undefined ? [] : ['-M', 'do', '-s', String(size - echoOverhead(address))];
  const wait = String(Math.max(1, Math.ceil(req.waitS ?? WAIT_S)));
  const argv = ['ping', '-q', '-n', '-c', String(count), '-i', String(INTERVAL_S), '-W', wait];
  const r = await runner.run([...argv, ...df, address], {
    netns,
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return parsePing(r.stdout);
}

interface Running {
  readonly proc: SpawnedProcess;
  readonly netns: string | undefined;
  readonly waiting: Map<number, (m: Record<string, unknown>) => void>;
  alive: boolean;
}

/** How long a helper that could not start is left alone before the next try. */
const RETRY_MS = 60_000;

/**
 * How long a starting helper may take to say it is ready before it is given up (ms).
 * Long on purpose: giving up means one `ping` process per peer per check (the fallback),
 * and a helper is late only when the machine is overloaded, so an early give-up fed the
 * overload: a 32-cluster lab at load ~100 had 10 of 32 gateways on the fallback, 115
 * `ping` processes alive, and its gateways missing their 10 s API deadlines (issue 18).
 * A helper that cannot run at all (no python3, raw sockets refused) says so at once.
 */
export const HELPER_HELLO_TIMEOUT_MS = 60_000;

/**
 * The long-lived helper: echo probes (Pinger) and probe frames (L2Prober) over one
 * process. ready(netns) starts it (once; again after it died, or for another namespace)
 * and says whether it runs; echo/send reject when it does not. close() ends it.
 */
export class HelperProber implements Pinger, L2Prober {
  private running: Running | undefined;
  private starting: Promise<Running | undefined> | undefined;
  /** The process being started, so close() need not wait for its hello. */
  private spawned: SpawnedProcess | undefined;
  private retryAt = 0;
  private nextId = 1;
  /** Why the helper is not running, when it could not start ('' while it runs). */
  lastError = '';

  constructor(private readonly runner: CommandRunner) {}

  /** True when the helper runs (started now if needed) in `netns`. */
  async ready(netns: string | undefined): Promise<boolean> {
    return (await this.ensure(netns)) !== undefined;
  }

  private async ensure(netns: string | undefined): Promise<Running | undefined> {
    if (this.running?.alive && this.running.netns === netns) return this.running;
    if (this.starting) return this.starting;
    if (this.running) this.stopRunning();
    if (!this.runner.spawn || Date.now() < this.retryAt) return undefined;
    this.starting = this.start(netns).finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async start(netns: string | undefined): Promise<Running | undefined> {
    let proc: SpawnedProcess;
    try {
      proc = this.runner.spawn!(['python3', '-u', '-c', HELPER_SCRIPT], { netns });
    } catch (err) {
      return this.failed(String(err));
    }
    this.spawned = proc;
    const r: Running = { proc, netns, waiting: new Map(), alive: true };
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + String(d)).slice(-2000)));
    let onReady!: (m: Record<string, unknown> | undefined) => void;
    const first = new Promise<Record<string, unknown> | undefined>((res) => (onReady = res));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if ('ready' in m) return onReady(m);
      const id = Number(m.id);
      const w = r.waiting.get(id);
      r.waiting.delete(id);
      w?.(m);
    });
    void proc.exited.then((code) => {
      r.alive = false;
      onReady(undefined);
      const why = { error: `probe helper exited (${code}): ${stderr.trim().split('\n').at(-1)}` };
      for (const w of r.waiting.values()) w(why);
      r.waiting.clear();
    });
    const timer = setTimeout(() => onReady(undefined), HELPER_HELLO_TIMEOUT_MS);
    const hello = await first;
    clearTimeout(timer);
    this.spawned = undefined;
    if (hello?.ready !== true) {
      proc.kill();
      const why = typeof hello?.error === 'string' ? hello.error : stderr || 'no answer';
      return this.failed(why);
    }
    this.lastError = '';
    this.running = r;
    return r;
  }

  private failed(why: string): undefined {
    this.retryAt = Date.now() + RETRY_MS;
    this.lastError = /ENOENT|No such file/.test(why)
      ? 'python3 is not installed (apt-get install --no-install-recommends python3)'
      : `probe helper: ${why.trim().split('\n')[0]}`;
    return undefined;
  }

  private async request(
    netns: string | undefined,
    body: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const r = await this.ensure(netns);
    if (!r) throw new Error(this.lastError || 'probe helper not running');
    const id = this.nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        r.waiting.delete(id);
        reject(new Error(`probe helper: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      r.waiting.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    r.proc.stdin.write(JSON.stringify({ id, ...body }) + '\n');
    const m = await reply;
    if (typeof m.error === 'string') throw new Error(m.error);
    return m;
  }

  /**
   * One echo probe. Calls made in the same turn of the event loop (a check's peers) go to
   * the helper as one batch, sent in rounds: its work per wake-up does not grow with peers.
   */
  echo(req: EchoRequest, netns: string | undefined): Promise<ProbeResult> {
    return new Promise((resolve, reject) => {
      this.echoes.push({ req, netns, resolve, reject });
      if (this.echoes.length === 1) setImmediate(() => this.flushEchoes());
    });
  }

  private readonly echoes: {
    req: EchoRequest;
    netns: string | undefined;
    resolve: (r: ProbeResult) => void;
    reject: (e: unknown) => void;
  }[] = [];

  private flushEchoes(): void {
    const groups = new Map<string, typeof this.echoes>();
    for (const e of this.echoes.splice(0)) {
      const k = `${e.netns ?? ''} ${e.req.count} ${e.req.waitS ?? WAIT_S}`;
      const g = groups.get(k);
      if (g) g.push(e);
      else groups.set(k, [e]);
    }
    for (const group of groups.values()) void this.echoBatch(group);
  }

  private async echoBatch(group: typeof this.echoes): Promise<void> {
    try {
      const m = await this.request(
        group[0]!.netns,
        {
          op: 'echo',
          count: group[0]!.req.count,
          interval: INTERVAL_S,
          wait: group[0]!.req.waitS ?? WAIT_S,
          // [addr, data, df]: arrays keep the per-peer bytes each way small (helper protocol).
          probes: group.map(({ req }) =>
            req.size === undefined
              ? [req.address, DEFAULT_DATA, 0]
              : [req.address, Math.max(0, req.size - echoOverhead(req.address)), 1],
          ),
        },
        10_000,
      );
      const results = m.results as [sent: number, received: number, rtt: number | null][];
      group.forEach(({ resolve }, i) => {
        const [sent = 0, received = 0, rtt] = results[i] ?? [];
        resolve({
          sent,
          received,
          loss: sent === 0 ? 1 : (sent - received) / sent,
          rttMs: typeof rtt === 'number' ? Math.round(rtt * 1000) / 1000 : undefined,
        });
      });
    } catch (err) {
      for (const { reject } of group) reject(err);
    }
  }

  /** The per-network probe frames (L2Prober). */
  send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    return this.sendFrames('frames', identity, devices, netns);
  }

  /** The loop beacons (loop-beacon.ts format), one per device. */
  beacons(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    return this.sendFrames('beacons', identity, devices, netns);
  }

  private async sendFrames(
    op: 'frames' | 'beacons',
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    if (devices.length === 0) return { sent: new Set(), failed: new Map() };
    let m;
    try {
      m = await this.request(netns, { op, identity, devices }, 5000);
    } catch (err) {
      return { sent: new Set(), failed: new Map(), unavailable: String((err as Error).message) };
    }
    const sent = new Set(m.sent as string[]);
    const failed = new Map(Object.entries((m.failed ?? {}) as Record<string, string>));
    for (const d of devices) if (!sent.has(d) && !failed.has(d)) failed.set(d, 'no result');
    return { sent, failed };
  }

  /**
   * Every device of the namespace with its IFF_UP flag and packet counters, in the shape
   * `ip -s -j link show` gives (LinkStats). Rejects when the helper does not run.
   */
  async links(netns: string | undefined): Promise<LinkStats[]> {
    const m = await this.request(netns, { op: 'links' }, 5000);
    const links = m.links as {
      ifname: string;
      up: boolean;
      rx: number;
      tx: number;
      txd?: number;
    }[];
    // One shape for every entry (dropped may be undefined): a check reads these in a hot
    // loop, and two shapes made V8 throw away and recompile it (issue 18).
    return links.map((l) => ({
      ifname: l.ifname,
      flags: l.up ? UP_FLAGS : NO_FLAGS,
      stats64: { rx: { packets: l.rx }, tx: { packets: l.tx, dropped: l.txd } },
    }));
  }

  /**
   * `nft -j list table FAMILY NAME` in the helper's namespace through libnftables (a
   * fresh context per call, so counters are read anew, as the nft command does); with
   * `sets`, `list set FAMILY NAME SET` of each instead, one JSON document per line.
   * Rejects when the helper does not run or cannot load libnftables.
   */
  async nftList(
    family: string,
    table: string,
    netns: string | undefined,
    sets?: readonly string[],
  ): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const req = sets?.length
      ? { op: 'nft-list', family, table, sets }
      : { op: 'nft-list', family, table };
    const m = await this.request(netns, req, 5000);
    return { exitCode: Number(m.exitCode), stdout: String(m.stdout), stderr: String(m.stderr) };
  }

  /**
   * The namespace's nftables ruleset generation (NFT_MSG_GETGEN): it changes with every
   * committed nft transaction in the namespace, and only then. Rejects when the helper
   * does not run or the kernel refuses.
   */
  async nftGeneration(netns: string | undefined): Promise<number> {
    const m = await this.request(netns, { op: 'nft-gen' }, 5000);
    if (typeof m.gen !== 'number') throw new Error('probe helper: no generation in its answer');
    return m.gen;
  }

  private stopRunning(): void {
    this.running?.proc.kill();
    this.running = undefined;
  }

  /** Ends the helper and waits for it to exit. Idempotent. */
  async close(): Promise<void> {
    // A helper still starting is ended, not waited for (its hello may be a minute away).
    this.spawned?.kill();
    await this.starting;
    const r = this.running;
    this.stopRunning();
    if (!r) return;
    // The child is unref'd: a timer keeps Node alive while it exits (bounded).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([r.proc.exited, new Promise((res) => (timer = setTimeout(res, 5000)))]);
    clearTimeout(timer);
  }
}

const UP_FLAGS: readonly string[] = Object.freeze(['UP']);
const NO_FLAGS: readonly string[] = Object.freeze([]);

/** A device's state and packet counters, as `ip -s -j link show` prints them (the fields used). */
export interface LinkStats {
  readonly ifname: string;
  readonly flags?: readonly string[];
  readonly stats64?: {
    readonly rx: { packets: number };
    /** dropped: frames the kernel dropped on transmit (through the helper: VXLAN devices only). */
    readonly tx: { packets: number; dropped?: number };
  };
}

/**
 * All devices' counters: through the running helper (no process), else one
 * `ip -s -j link show` (also when the helper fails mid-read).
 */
export async function readLinkStats(
  runner: CommandRunner,
  helper: HelperProber | undefined,
  netns: string | undefined,
): Promise<LinkStats[]> {
  if (helper) {
    try {
      return await helper.links(netns);
    } catch {
      // fall through: one process for this check
    }
  }
  const r = await runner.run(['ip', '-s', '-j', 'link', 'show'], { netns });
  return JSON.parse(r.stdout || '[]') as LinkStats[];
}

/** The delay before the next check: interval × (1 − jitter × random), so never longer. */
export function jitteredDelay(intervalMs: number, random: number, jitter = 0.25): number {
  return Math.round(intervalMs * (1 - jitter * Math.min(1, Math.max(0, random))));
}
