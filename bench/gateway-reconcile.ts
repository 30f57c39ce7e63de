/**
 * Benchmark section `gateway-reconcile` (issue 15): what one gateway's apply costs at
 * 100 peers × 50 networks, over the real config check, planner and executor with the
 * fake backends (gateway/*-fake.ts), which record one entry per mutating backend call.
 * Each such call is exactly one command on a real host (`wg set`, `ip link`, `bridge fdb`,
 * `ovs-vsctl`, `nft -f -`), so the fake log's length is the mutating-command count.
 *
 * Measured: apply from empty (commands, time), each one-item change against that state
 * (commands, time as a ratio to the apply from empty), a no-op re-apply (must be 0), and
 * how the counts grow with the peer count (chart). The target (issue 15): a one-peer
 * change costs O(networks of that peer) commands, never O(peers × networks).
 *
 * Alone:  npx tsx bench/gateway-reconcile.ts [--quick]   (prints the section as JSON)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { GatewayConfigInput } from '../gateway/config.js';
import { parseGatewayConfig } from '../gateway/config.js';
import { FakeDataPlane } from '../gateway/dataplane-fake.js';
import { Gateway } from '../gateway/gateway.js';
import type { Step } from '../gateway/plan.js';
import type { Backends } from '../gateway/backends.js';
import { l2GuardMarker, l2GuardScript } from '../gateway/loop-guard.js';
import { FakeL2GuardNft } from '../gateway/loop-guard-fake.js';
import { LoopMonitor, l2GuardSpec } from '../gateway/loop-monitor.js';
import type { LoopBeaconSender } from '../gateway/loop-beacon.js';
import { FakeRunner } from '../lib/runner-fake.js';
import { keyRunner } from '../test/fixtures/gateway-over-fakes.js';
import { figure, stat, type BenchSection, type Chart, type Figure } from './result.js';

/**
 * SectionOptions of bench/sections.ts, restated: sections.ts imports this module, so
 * importing its type back would be a cycle (npm run deps).
 */
export interface SectionOptions {
  readonly quick: boolean;
  readonly log: (line: string) => void;
  /** Prefix of the temp dirs this section makes (the runner checks for leftovers). */
  readonly prefix?: string;
}

/** The federation one gateway sees. Peer i carries network j when (i + j) % stride = 0. */
export interface Shape {
  readonly peers: number;
  readonly networks: number;
  /** Every stride-th network per peer: each peer carries networks / stride of them. */
  readonly stride: number;
}

export const FULL: Shape = { peers: 100, networks: 50, stride: 5 };

/** A valid, distinct WireGuard public key per index (32 bytes, base64). */
export function peerKey(i: number, salt = 0): string {
  const b = Buffer.alloc(32, salt);
  b.writeUInt32BE(i + 1, 0);
  return b.toString('base64');
}

/** The transit address of peer i inside 198.19.0.0/16 (own address .0.1). */
function transit(i: number): string {
  return `198.19.${Math.floor((i + 2) / 250)}.${((i + 2) % 250) + 1}`;
}

export function peerName(i: number): string {
  return `p${i}`;
}

/** Networks peer i carries (indices). */
export function networksOf(shape: Shape, i: number): number[] {
  return Array.from({ length: shape.networks }, (_, j) => j).filter(
    (j) => (i + j) % shape.stride === 0,
  );
}

/** The gateway config for `shape`; networks on Linux bridges br-n<j> (VNI 1000 + j). */
export function federation(keyFile: string, shape: Shape): GatewayConfigInput {
  return {
    identity: 'hub',
    wireguard: { ifname: 'l2fb', listenPort: 51820, privateKeyFile: keyFile },
    transitAddress: '198.19.0.1/16',
    peers: Array.from({ length: shape.peers }, (_, i) => ({
      name: peerName(i),
      publicKey: peerKey(i),
      endpoints: [`198.18.${Math.floor(i / 250)}.${(i % 250) + 2}:51820`],
      transitAddress: transit(i),
    })),
    networks: Array.from({ length: shape.networks }, (_, j) => ({
      name: `n${j}`,
      vni: 1000 + j,
      segment: { type: 'linux-bridge' as const, bridge: `br-n${j}` },
      peers: Array.from({ length: shape.peers }, (_, i) => i)
        .filter((i) => (i + j) % shape.stride === 0)
        .map(peerName),
    })),
  };
}

type Config = ReturnType<typeof federation>;
type Peer = NonNullable<Config['peers']>[number];
type Network = NonNullable<Config['networks']>[number];

const clone = (c: Config): Config => structuredClone(c);
const mapPeer = (c: Config, i: number, f: (p: Peer) => Peer): Config => ({
  ...c,
  peers: c.peers!.map((p, k) => (k === i ? f(p) : p)),
});
const mapNetwork = (c: Config, j: number, f: (n: Network) => Network): Config => ({
  ...c,
  networks: c.networks!.map((n, k) => (k === j ? f(n) : n)),
});

/**
 * One change to a converged gateway. `steps` applies it in order (each an apply; only
 * the last one is measured, the ones before set the stage); `expected` is the mutating
 * command count the target allows, as a function of the shape.
 */
export interface Change {
  readonly id: string;
  readonly label: string;
  /** Configs applied one after another from the converged base; the last is measured. */
  readonly configs: (base: Config, shape: Shape) => Config[];
  /** Called between the stage and the measured apply (e.g. a handshake on a standby key). */
  readonly between?: (plane: FakeDataPlane, shape: Shape) => void;
  /** The most mutating commands the change may cost (the O(networks of that peer) bound). */
  readonly bound: (shape: Shape) => number;
}

/** The peer that changes: peer 0, which carries networksOf(shape, 0). */
const P = 0;
const k = (s: Shape) => networksOf(s, P).length;

export const CHANGES: readonly Change[] = [
  {
    id: 'peer-endpoint',
    label: "one peer's endpoint changes",
    configs: (c) => [mapPeer(c, P, (p) => ({ ...p, endpoints: ['198.18.200.200:51820'] }))],
    bound: () => 1, // wg set peer
  },
  {
    id: 'peer-key',
    label: "one peer's public key changes",
    configs: (c) => [mapPeer(c, P, (p) => ({ ...p, publicKey: peerKey(P, 7) }))],
    bound: () => 2, // wg set peer … remove, wg set peer (new key)
  },
  {
    id: 'peer-transit',
    label: "one peer's transit address changes",
    configs: (c) => [mapPeer(c, P, (p) => ({ ...p, transitAddress: '198.19.200.200' }))],
    // wg set peer, guard, per network of the peer: fdb append + fdb del
    bound: (s) => 2 + 2 * k(s),
  },
  {
    id: 'peer-added',
    label: 'one peer added (carrying its networks)',
    configs: (c, s) => {
      const i = s.peers; // a new index: same stride pattern as the others
      const name = peerName(i);
      return [
        {
          ...c,
          peers: [
            ...c.peers!,
            {
              name,
              publicKey: peerKey(i),
              endpoints: ['198.18.201.1:51820'],
              transitAddress: transit(i),
            },
          ],
          networks: c.networks!.map((n, j) =>
            (i + j) % s.stride === 0 ? { ...n, peers: [...n.peers!, name] } : n,
          ),
        },
      ];
    },
    bound: (s) => 2 + networksOf(s, s.peers).length, // wg set peer, guard, fdb appends
  },
  {
    id: 'peer-removed',
    label: 'one peer removed',
    configs: (c) => [
      {
        ...c,
        peers: c.peers!.filter((_, i) => i !== P),
        networks: c.networks!.map((n) => ({
          ...n,
          peers: n.peers!.filter((x) => x !== peerName(P)),
        })),
      },
    ],
    bound: (s) => 2 + k(s), // wg remove, guard, fdb dels
  },
  {
    id: 'peer-network-removed',
    label: 'one network of one peer removed',
    configs: (c, s) => [
      mapNetwork(c, networksOf(s, P)[0]!, (n) => ({
        ...n,
        peers: n.peers!.filter((x) => x !== peerName(P)),
      })),
    ],
    bound: () => 2, // guard, fdb del
  },
  {
    id: 'peer-network-added',
    label: 'one peer gets one more network',
    configs: (c) => [
      mapNetwork(c, 1, (n) =>
        n.peers!.includes(peerName(P)) ? n : { ...n, peers: [...n.peers!, peerName(P)] },
      ),
    ],
    bound: () => 2, // guard, fdb append
  },
  {
    id: 'peer-standby-key',
    label: "key rotation: one peer's next key held as a standby entry",
    configs: (c) => [mapPeer(c, P, (p) => ({ ...p, nextPublicKey: peerKey(P, 9) }))],
    bound: () => 1, // wg set peer (standby)
  },
  {
    id: 'peer-standby-promoted',
    label: "key rotation: one peer's standby key handshaked and is promoted",
    configs: (c) => {
      const held = mapPeer(c, P, (p) => ({ ...p, nextPublicKey: peerKey(P, 9) }));
      return [held, held];
    },
    between: (plane) => plane.tunnel.handshake('l2fb', peerKey(P, 9), NOW - 5),
    bound: () => 2, // wg set peer (the next key takes the allowed IPs), wg remove (old)
  },
  {
    id: 'network-mtu',
    label: "one network's MTU changes",
    configs: (c) => [mapNetwork(c, 0, (n) => ({ ...n, mtu: 1300 }))],
    bound: () => 1, // ip link set mtu
  },
  {
    id: 'network-bumlimit',
    label: "one network's bumLimit changes (apply only; the loop monitor re-writes inet l2fed_l2)",
    configs: (c) => [
      mapNetwork(c, 0, (n) => ({ ...n, bumLimit: { packetsPerSecond: 50, burst: 10 } })),
    ],
    bound: () => 0,
  },
  {
    id: 'no-op',
    label: 'no-op re-apply',
    configs: (c) => [clone(c)],
    bound: () => 0,
  },
];

/** Unix seconds the gateway is told it is (handshake ages). */
const NOW = 1_800_000_000;

/** Read calls of the backends (each one command on a real host: wg show, ip addr, …). */
const READS = new Set(['read', 'list', 'fdb', 'fdbAll']);

function counting(b: Backends, counter: { reads: number }): Backends {
  const wrap = <T extends object>(o: T): T =>
    new Proxy(o, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (READS.has(String(prop))) counter.reads++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  return {
    firewall: wrap(b.firewall),
    tunnel: wrap(b.tunnel),
    links: wrap(b.links),
    segments: Object.fromEntries(Object.entries(b.segments).map(([t, s]) => [t, s && wrap(s)])),
  };
}

/**
 * (peer, VNI) pairs the guard steps write to `inet l2fed`: the whole set when the table
 * is replaced, only the added and deleted pairs when just its elements change.
 */
export function guardElements(steps: readonly Step[]): number {
  return steps.reduce(
    (n, s) =>
      s.kind !== 'firewall-set'
        ? n
        : n + (s.elements ? s.elements.add.length + s.elements.del.length : s.vxlanFrom.length),
    0,
  );
}

/** A gateway over fakes with the shape's bridges; dispose() removes its key folder. */
export async function harness(shape: Shape, prefix = 'l2fed-bgr') {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const plane = new FakeDataPlane({
    linuxBridge: Array.from({ length: shape.networks }, (_, j) => `br-n${j}`),
  });
  const counter = { reads: 0 };
  const gw = new Gateway({
    runner: keyRunner(),
    backends: () => counting(plane.backends(), counter),
    handshakeWatch: false, // its later renewals are timers, not this apply's cost
    standbyWatchMs: false, // promotion is measured through apply (it re-reads handshakes)
    now: () => NOW,
  });
  const base = federation(join(dir, 'wg.key'), shape);
  /** Applies `config`: mutating commands (the fake log), reads, steps and wall time. */
  const apply = async (config: Config) => {
    plane.log.clear();
    counter.reads = 0;
    const t0 = performance.now();
    const r = await gw.apply(config);
    const ms = performance.now() - t0;
    return {
      mutating: plane.log.mutations.length,
      reads: counter.reads,
      steps: r.steps.map((s) => s.kind),
      guardElements: guardElements(r.steps),
      ms,
    };
  };
  return {
    plane,
    gw,
    base,
    apply,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

export type Measured = Awaited<ReturnType<Awaited<ReturnType<typeof harness>>['apply']>>;

/** Apply from empty, then `change` (its stage unmeasured), then a re-apply of the result. */
export async function measureChange(
  shape: Shape,
  change: Change,
  prefix?: string,
): Promise<{ fromEmpty: Measured; change: Measured; reapply: Measured }> {
  const h = await harness(shape, prefix);
  try {
    const fromEmpty = await h.apply(h.base);
    const configs = change.configs(h.base, shape);
    for (const c of configs.slice(0, -1)) await h.apply(c);
    change.between?.(h.plane, shape);
    const last = configs[configs.length - 1]!;
    const measured = await h.apply(last);
    const reapply = await h.apply(last);
    return { fromEmpty, change: measured, reapply };
  } finally {
    await h.dispose();
  }
}

/**
 * The whole `inet l2fed_l2` table for the shape (written when there is none, or the
 * tunnel, port or rule version changed). Pure: the script the monitor would send.
 */
export function l2GuardRewrite(shape: Shape): { rules: number; bytes: number; marker: number } {
  const config = parseGatewayConfig(federation('/k', shape));
  const spec = l2GuardSpec(config);
  const script = l2GuardScript(spec, []);
  return {
    rules: script.split('\n').filter((l) => l.startsWith('add rule ')).length,
    bytes: Buffer.byteLength(script),
    marker: l2GuardMarker(spec).length,
  };
}

/** Beacons that leave and never come back: no loop. */
const quietBeacon: LoopBeaconSender = {
  send: (_identity, devices) => Promise.resolve({ sent: new Set(devices), failed: new Map() }),
};

/** What the loop monitor writes to `inet l2fed_l2` for one check. */
export interface GuardWrite {
  /** `nft -f` commands. */
  readonly commands: number;
  /** Bytes of nft input, all commands together. */
  readonly bytes: number;
  /** Wall time of the check over the fake nft (parse, diff, script; no process). */
  readonly ms: number;
}

/**
 * A loop monitor over a fake nft (gateway/loop-guard-fake.ts), its gateway config set
 * by `check(config)`: what each check writes to `inet l2fed_l2`.
 */
export function guardRig(shape: Shape) {
  const runner = new FakeRunner();
  const nft = new FakeL2GuardNft(runner);
  const base = federation('/k', shape);
  const gateway = { config: parseGatewayConfig(base) };
  const monitor = new LoopMonitor({
    gateway,
    runner,
    beacon: quietBeacon,
    nft: nft.nft,
    settleMs: 0,
  });
  const check = async (config: Config): Promise<GuardWrite> => {
    gateway.config = parseGatewayConfig(config);
    const before = nft.bytes.length;
    const t0 = performance.now();
    await monitor.check();
    const ms = performance.now() - t0;
    const written = nft.bytes.slice(before);
    return { commands: written.length, bytes: written.reduce((a, b) => a + b, 0), ms };
  };
  return { base, check, nft };
}

/** Guarded paths (with their bound) in the base config or the change's, not both. */
export function changedGuardPaths(shape: Shape, change: Change): number {
  const base = federation('/k', shape);
  const paths = (c: Config) =>
    new Set(
      l2GuardSpec(parseGatewayConfig(c)).paths.map(
        (p) => `${p.address}/${p.vni}/${p.packetsPerSecond}/${p.burst}`,
      ),
    );
  const [a, b] = [paths(base), paths(change.configs(base, shape).at(-1)!)];
  return [...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length;
}

/**
 * The loop monitor's side of `change` (issue 15): converged on the shape's config, then
 * one check after each of the change's configs (the last one measured), then a check
 * with nothing changed (must write nothing).
 */
export async function measureGuardChange(
  shape: Shape,
  change: Change,
  rig = guardRig(shape),
): Promise<{ fromEmpty: GuardWrite; change: GuardWrite; again: GuardWrite }> {
  const fromEmpty = await rig.check(rig.base);
  let measured = fromEmpty;
  const configs = change.configs(rig.base, shape);
  for (const c of configs) measured = await rig.check(c);
  return { fromEmpty, change: measured, again: await rig.check(configs.at(-1)!) };
}

/**
 * The loop monitor cutting a loop on network 0 and lifting the block (one check each
 * way, holdTicks 1): what each writes (elements of the `blocked` set only).
 */
export async function measureGuardBlock(
  shape: Shape,
): Promise<{ block: GuardWrite; unblock: GuardWrite }> {
  const runner = new FakeRunner();
  const nft = new FakeL2GuardNft(runner);
  const config = parseGatewayConfig(federation('/k', shape));
  // The gateway's id 'zz' sorts above every peer's (p…): this side blocks.
  const path = l2GuardSpec(config).paths.find((p) => p.vni === 1000)!;
  let looping = false;
  const beacon: LoopBeaconSender = {
    send: (_identity, devices) => {
      if (looping) nft.count('repeat', `${path.address} ${path.vni}`);
      return Promise.resolve({ sent: new Set(devices), failed: new Map() });
    },
  };
  const monitor = new LoopMonitor({
    gateway: { config: { ...config, identity: 'zz' } },
    runner,
    beacon,
    nft: nft.nft,
    settleMs: 0,
    holdTicks: 1,
  });
  const check = async (): Promise<GuardWrite> => {
    const before = nft.bytes.length;
    const t0 = performance.now();
    await monitor.check();
    const ms = performance.now() - t0;
    const written = nft.bytes.slice(before);
    return { commands: written.length, bytes: written.reduce((a, b) => a + b, 0), ms };
  };
  await check();
  looping = true;
  const block = await check();
  looping = false;
  const unblock = await check();
  return { block, unblock };
}

const PEER_COUNTS = [10, 50, 100];

/** The section: see the file comment. */
export async function run(opts: SectionOptions): Promise<BenchSection> {
  const started = performance.now();
  const runs = opts.quick ? 3 : 7;
  const figures: Figure[] = [];
  const rows: Record<string, string | number>[] = [];

  // From empty and each change at the full shape, `runs` times (fresh gateway each).
  const empty: Measured[] = [];
  const byChange = new Map<string, { change: Measured[]; reapply: Measured[] }>();
  for (let r = 0; r < runs; r++) {
    for (const c of CHANGES) {
      const m = await measureChange(FULL, c, opts.prefix);
      empty.push(m.fromEmpty);
      const e = byChange.get(c.id) ?? { change: [], reapply: [] };
      e.change.push(m.change);
      e.reapply.push(m.reapply);
      byChange.set(c.id, e);
    }
    opts.log(`gateway-reconcile: run ${r + 1}/${runs} done`);
  }
  const size = `${FULL.peers} peers × ${FULL.networks} networks`;
  figures.push(
    figure({
      id: 'from-empty-commands',
      label: `apply from empty, ${size}: mutating commands`,
      stat: stat(
        empty.map((m) => m.mutating),
        'commands',
      ),
    }),
    figure({
      id: 'from-empty-ms',
      label: `apply from empty, ${size}: wall time over fakes (planner and executor only)`,
      stat: stat(
        empty.map((m) => m.ms),
        'ms',
      ),
    }),
    figure({
      id: 'reads-per-apply',
      label: `read commands per apply (wg show, ip addr, nft list, one bridge fdb per network, segments), ${size}`,
      stat: stat(
        [...byChange.values()].flatMap((e) => e.change.map((m) => m.reads)),
        'commands',
      ),
    }),
  );
  const medianEmptyMs = stat(
    empty.map((m) => m.ms),
    'ms',
  ).median;
  for (const c of CHANGES) {
    const e = byChange.get(c.id)!;
    figures.push(
      figure({
        id: `${c.id}-commands`,
        label: `${c.label}: mutating commands`,
        stat: stat(
          e.change.map((m) => m.mutating),
          'commands',
        ),
        baseline: `the peer carries ${k(FULL)} of ${FULL.networks} networks; apply from empty in the same run`,
        target: { op: '<=', value: c.bound(FULL) },
      }),
      figure({
        id: `${c.id}-time-ratio`,
        label: `${c.label}: apply time / apply from empty`,
        stat: stat(
          e.change.map((m) => m.ms / medianEmptyMs),
          'ratio',
        ),
        baseline: 'median apply from empty, same run',
      }),
    );
    const guarded = e.change.map((m) => m.guardElements);
    if (guarded.some((n) => n > 0)) {
      figures.push(
        figure({
          id: `${c.id}-guard-pairs`,
          label: `${c.label}: (peer, VNI) pairs written to the guard's set`,
          stat: stat(guarded, 'pairs'),
          baseline: `the set holds ${(FULL.peers / FULL.stride) * FULL.networks} pairs`,
          target: { op: '<=', value: 2 * k(FULL) },
        }),
      );
    }
    figures.push(
      figure({
        id: `${c.id}-reapply-commands`,
        label: `${c.label}, then the same config again: mutating commands`,
        stat: stat(
          e.reapply.map((m) => m.mutating),
          'commands',
        ),
        target: { op: '<=', value: 0 },
      }),
    );
  }

  // The loop monitor's side (inet l2fed_l2): bytes of nft input per change, 1,000 paths.
  const wholeTable = l2GuardRewrite(FULL);
  // One monitor for all changes: each is measured from the base config and undone after.
  const rig = guardRig(FULL);
  for (const c of CHANGES.filter((x) => changedGuardPaths(FULL, x) > 0)) {
    const g = await measureGuardChange(FULL, c, rig);
    await rig.check(rig.base);
    figures.push(
      figure({
        id: `${c.id}-loop-guard-bytes`,
        label: `${c.label}: bytes of nft input the loop monitor writes to inet l2fed_l2 (${l2GuardSpec(parseGatewayConfig(federation('/k', FULL))).paths.length} paths)`,
        stat: stat([g.change.bytes], 'bytes'),
        baseline: `the whole table is ${Math.round(wholeTable.bytes / 1024)} KiB, what every such change wrote before`,
        target: { op: '<=', value: 2 * k(FULL) * 2500 },
      }),
    );
  }
  const blocking = await measureGuardBlock(FULL);
  figures.push(
    figure({
      id: 'loop-block-bytes',
      label: `a loop cut on one network (${FULL.peers / FULL.stride} paths blocked) and lifted: bytes of nft input, both checks`,
      stat: stat([blocking.block.bytes + blocking.unblock.bytes], 'bytes'),
    }),
  );

  // Growth with the peer count (one run each: the counts are deterministic).
  const growth = new Map<string, number[]>();
  for (const peers of PEER_COUNTS) {
    const shape = { ...FULL, peers };
    for (const c of CHANGES.filter((x) =>
      ['peer-added', 'peer-removed', 'peer-key'].includes(x.id),
    )) {
      const m = await measureChange(shape, c, opts.prefix);
      if (c.id === 'peer-added')
        rows.push({ peers, commands: m.fromEmpty.mutating, case: 'apply from empty' });
      rows.push({ peers, commands: m.change.mutating, case: c.label });
      growth.set(c.id, [...(growth.get(c.id) ?? []), m.change.mutating]);
    }
  }
  for (const [id, counts] of growth) {
    figures.push(
      figure({
        id: `${id}-growth`,
        label: `${CHANGES.find((c) => c.id === id)!.label}: commands at ${PEER_COUNTS.at(-1)} peers / at ${PEER_COUNTS[0]} peers`,
        stat: stat([counts.at(-1)! / counts[0]!], 'ratio'),
        target: { op: '<=', value: 1 },
      }),
    );
  }
  const l2 = wholeTable;
  const charts: Chart[] = [
    {
      id: 'gateway-reconcile-commands-vs-peers',
      title: `Mutating commands per apply vs peer count (${FULL.networks} networks, each peer on ${k(FULL)})`,
      kind: 'line',
      x: { field: 'peers', title: 'peers' },
      y: { field: 'commands', title: 'mutating commands' },
      series: 'case',
      rows,
    },
  ];
  return {
    id: 'gateway-reconcile',
    title: 'Gateway reconcile: apply cost at 100 peers × 50 networks',
    method: [
      `One gateway (\`gateway/gateway.ts\` apply: config check, observe, \`planSteps\`, executor) over the fake backends (\`gateway/*-fake.ts\`), which record one entry per mutating backend call — exactly one command each on a real host (\`wg set\`, \`ip link\`, \`bridge fdb\`, \`ovs-vsctl\`, \`nft -f -\`).`,
      `Federation: ${size} on Linux bridges; peer i carries network j when (i + j) mod ${FULL.stride} = 0, so each peer carries ${k(FULL)} networks and each network ${FULL.peers / FULL.stride} peers.`,
      `Each change starts from a fresh gateway applied from empty, is applied once (measured), then re-applied (must run nothing). ${runs} runs; times are ratios to the median apply from empty of the same run.`,
      `The chart repeats the peer changes at ${PEER_COUNTS.join(', ')} peers: a one-peer change stays flat while the apply from empty grows with peers × networks.`,
    ].join(' '),
    figures,
    charts,
    notes: [
      'Counts are exact and deterministic. The times are CPU over in-memory fakes (no process starts) on a shared 2-core machine: a one-item change takes about as long as an apply from empty (ratio ~1), because every apply validates, derives and compares the whole config (O(peers × networks) CPU, a few ms here) and fake commands cost nothing. On a host each command is a process start (ms each), so the time follows the command counts: 1,357 from empty against 1–22 for a one-item change.',
      `Reads are O(networks), not O(peers × networks): every apply reads the tunnel, the links, the guard, the segments and one \`bridge -j fdb show dev\` per network (${FULL.networks + 5} here).`,
      `The VXLAN guard (\`inet l2fed\`) costs one command per change; its set (${(FULL.peers / FULL.stride) * FULL.networks} (peer, VNI) pairs here) changes by elements, so a one-peer change writes that peer's pairs only. Before, every set change replaced the whole table.`,
      `A bumLimit change costs the apply nothing; the loop monitor then rewrites the changed paths of \`inet l2fed_l2\` only: each path has two chains (a verdict map sends a packet to its path's in or out chain), so a path added, removed or re-bounded writes that path's chains and map entries (about 0.5–1.7 KiB each) in one \`nft -f\`, not the whole table (${l2.rules} rules, ${Math.round(l2.bytes / 1024)} KiB at ${FULL.peers} peers × ${FULL.networks} networks; written only when there is none, or the tunnel, port or rule version changed). Before, every such change replaced the whole table (then 5,002 rules in two chains, 993 KiB). Its marker comment is ${l2.marker} characters (nft allows 128).`,
      'Real nft 1.0.6 at 1,000 paths, in a namespace on the shared 2-core box (3 runs, load 1–4; test/integration/gateway-reconcile-cost.test.ts logs the same): one path added 27–113 ms, removed 27–178 ms, one network re-bounded (20 paths) 163–268 ms, against 0.96–1.49 s for the whole-table rewrite every such change cost before; the table from empty 0.9–1.5 s (once); `nft -j list table` 4.2 MB in both layouts.',
    ],
    tookMs: Math.round(performance.now() - started),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const section = await run({
    quick: process.argv.includes('--quick'),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(section, null, 2)}\n`);
}
