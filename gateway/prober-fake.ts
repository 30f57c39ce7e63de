/**
 * A fake of the long-lived probe helper (prober.ts) for unit tests: a runner whose
 * spawn() starts an in-process stand-in speaking the helper's line protocol. Echoes
 * answer by `answer(address, packetBytes, df)`; every request is recorded.
 */
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline';
import { FakeRunner } from '../lib/runner-fake.js';
import type { RunOptions, SpawnedProcess } from '../lib/runner.js';
import { echoOverhead } from './mtu.js';

export class FakeProbeHelper {
  /** Echo requests seen, as "address packetBytes[ DF]" (the same shape path-MTU tests use). */
  readonly echoes: string[] = [];
  /** Echo batches seen (one request line each). */
  batches = 0;
  /** Per echo batch: bytes of its request line and its number of probes (the pipe's cost). */
  readonly echoLines: { bytes: number; probes: number }[] = [];
  /** Frame requests seen: the devices of each. */
  readonly frames: string[][] = [];
  /** Processes started. */
  started = 0;
  answer: (address: string, bytes: number, df: boolean) => boolean = () => true;
  /** When set, echo requests get this error (a helper failing after it started). */
  failEchoes: string | undefined;
  /** What the 'links' op reports (the helper reads /sys/class/net in its namespace). */
  links: { ifname: string; up: boolean; rx: number; tx: number; txd?: number }[] = [];
  /** 'links' requests seen. */
  linkReads = 0;
  /** When set, the helper reports this and exits instead of becoming ready. */
  refuse: string | undefined;
  /** When set, the helper says it is ready only after this many ms (a loaded machine). */
  helloDelayMs: number | undefined;

  spawn(): SpawnedProcess {
    this.started++;
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let end!: (code: number | null) => void;
    const exited = new Promise<number | null>((r) => (end = r));
    const finish = (code: number | null) => {
      stdout.end();
      stderr.end();
      end(code);
    };
    const say = (m: unknown) => stdout.write(JSON.stringify(m) + '\n');
    if (this.refuse !== undefined) {
      say({ ready: false, error: this.refuse });
      setImmediate(() => finish(1));
    } else if (this.helloDelayMs !== undefined) {
      const timer = setTimeout(() => say({ ready: true }), this.helloDelayMs);
      void exited.then(() => clearTimeout(timer));
    } else say({ ready: true });
    createInterface({ input: stdin }).on('line', (line) => {
      const m = JSON.parse(line) as Record<string, unknown>;
      if (m.op === 'echo' && this.failEchoes !== undefined) {
        say({ id: m.id, error: this.failEchoes });
      } else if (m.op === 'echo') {
        this.batches++;
        this.echoLines.push({
          bytes: Buffer.byteLength(line),
          probes: (m.probes as unknown[]).length,
        });
        const probes = m.probes as [addr: string, data: number, df: 0 | 1][];
        const results = probes.map(([addr, data, df]) => {
          const bytes = data + echoOverhead(addr);
          this.echoes.push(`${addr} ${bytes}${df ? ' DF' : ''}`);
          const n = this.answer(addr, bytes, df === 1) ? Number(m.count) : 0;
          return [m.count, n, n ? 2 : null];
        });
        say({ id: m.id, results });
      } else if (m.op === 'links') {
        this.linkReads++;
        say({ id: m.id, links: this.links });
      } else if (m.op === 'frames') {
        const devices = m.devices as string[];
        this.frames.push(devices);
        say({ id: m.id, sent: devices, failed: {} });
      } else {
        say({ id: m.id, error: 'unknown op' }); // as the real helper answers
      }
    });
    stdin.on('finish', () => finish(0));
    return {
      pid: undefined,
      stdin,
      stdout,
      stderr,
      exited,
      kill: () => {
        stdin.end();
      },
    };
  }
}

/** A FakeRunner that can spawn the fake helper; spawns are recorded in `calls`. */
export class SpawningFakeRunner extends FakeRunner {
  constructor(readonly helper = new FakeProbeHelper()) {
    super();
  }

  spawn(argv: readonly string[], options: Pick<RunOptions, 'netns' | 'env'> = {}): SpawnedProcess {
    this.calls.push({ argv: [...argv], netns: options.netns, mutates: false });
    return this.helper.spawn();
  }
}
