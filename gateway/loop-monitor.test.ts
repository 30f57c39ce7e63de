/**
 * LoopMonitor over a FakeRunner that models the `inet l2fed_l2` table (script in, JSON
 * out) and a fake beacon that can make beacons come back: what it changes and when.
 * Steady state changes nothing; a loop adds the network's paths to the blocked set once;
 * quiet checks remove them; a restarted monitor keeps blocks it cannot judge; a config
 * change replaces the table with the blocks carried over.
 */
import test from 'ava';
import { FakeRunner } from '../lib/runner-fake.js';
import { parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from './config.js';
import type { ProbeSendResult } from './l2-probe.js';
import type { LoopBeaconSender } from './loop-beacon.js';
import { LoopMonitor } from './loop-monitor.js';
import { madridConfig } from '../test/fixtures/gateway-over-fakes.js';

const NFT = '/usr/sbin/nft';

/** The table as nft holds it: the script's marker, the blocked set, per-rule counters. */
class FakeNft {
  script: string | undefined;
  blocked = new Set<string>();
  repeats = new Map<string, number>();
  replaced = 0;

  constructor(readonly runner: FakeRunner) {
    runner.on(
      (a) => a[0] === NFT && a[1] === '-j',
      () => this.listing(),
    );
    runner.on(
      (a) => a.join(' ') === `${NFT} -f -`,
      (_a, o) => {
        this.apply(String(o.input));
        return {};
      },
    );
  }

  /** What `nft -j list table inet l2fed_l2` says. */
  listing() {
    return this.script === undefined
      ? { exitCode: 1, stdout: '', stderr: 'Error: No such file or directory' }
      : { exitCode: 0, stdout: this.json(), stderr: '' };
  }

  private apply(input: string) {
    if (input.startsWith('table inet l2fed_l2 {}\ndelete table inet l2fed_l2\ntable')) {
      this.script = input;
      this.replaced++;
      this.repeats.clear();
      const elems = /elements = \{ ([^}]*) \}/.exec(input)?.[1];
      this.blocked = new Set(elems ? elems.split(', ').map((e) => e.replace(' . ', ' ')) : []);
      return;
    }
    for (const line of input.split('\n').filter(Boolean)) {
      const m = /^(add|delete) element inet l2fed_l2 blocked \{ (.*) \}$/.exec(line);
      if (!m) throw new Error(`fake nft: unexpected ${line}`);
      for (const e of m[2]!.split(', ')) {
        const k = e.replace(' . ', ' ');
        if (m[1] === 'add') this.blocked.add(k);
        else this.blocked.delete(k);
      }
    }
  }

  private json(): string {
    const comments = [...this.script!.matchAll(/comment "([^"]*)"/g)].map((m) => m[1]!);
    const rules = comments.map((comment) => {
      const k = /^repeat (.*)$/.exec(comment)?.[1];
      const packets = k ? (this.repeats.get(k) ?? 0) : 0;
      return { rule: { chain: 'x', comment, expr: [{ counter: { packets, bytes: 0 } }] } };
    });
    const elem = [...this.blocked].map((k) => {
      const [a, v] = k.split(' ');
      return { concat: [a, Number(v)] };
    });
    return JSON.stringify({
      nftables: [{ set: { name: 'blocked', type: ['ipv4_addr', 'integer'], elem } }, ...rules],
    });
  }
}

/** Sends "beacons"; while `loopVia` names a path ("address vni"), each comes back there. */
class FakeBeacon implements LoopBeaconSender {
  loopVia: string[] = [];
  unavailable: string | undefined;
  constructor(private readonly nft: FakeNft) {}
  send(_identity: string, devices: readonly string[]): Promise<ProbeSendResult> {
    if (this.unavailable) {
      return Promise.resolve({ sent: new Set(), failed: new Map(), unavailable: this.unavailable });
    }
    for (const k of this.loopVia) this.nft.repeats.set(k, (this.nft.repeats.get(k) ?? 0) + 1);
    return Promise.resolve({ sent: new Set(devices), failed: new Map() });
  }
}

/** A beacon sender that also lists the table without a process (the probe helper's way). */
class ListingBeacon extends FakeBeacon {
  lists = 0;
  constructor(private readonly table: FakeNft) {
    super(table);
  }
  list(family: string, name: string) {
    this.lists++;
    if (family !== 'inet' || name !== 'l2fed_l2') throw new Error(`listed ${family} ${name}`);
    return Promise.resolve(this.table.listing());
  }
}

// madrid (transit .1) with peers b (.2) and c (.3): "b" and "c" sort before "madrid", so
// madrid is the higher id and is the side that blocks.
const NETS: GatewayConfigInput['networks'] = [
  { name: 'cdn', vni: 100, segment: { type: 'linux-bridge', bridge: 'br-cdn' }, peers: ['b', 'c'] },
  { name: 'tel', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-tel' }, peers: ['b'] },
];

function setup(config: GatewayConfig = parseGatewayConfig(madridConfig('/k', NETS))) {
  const runner = new FakeRunner();
  const nft = new FakeNft(runner);
  const beacon = new FakeBeacon(nft);
  const gateway = { config };
  const monitor = () =>
    new LoopMonitor({ gateway, runner, beacon, nft: NFT, settleMs: 0, holdTicks: 3 });
  return { runner, nft, beacon, gateway, monitor };
}

const mutations = (r: FakeRunner) => r.calls.filter((c) => c.mutates).length;

test('loop monitor - installs the table once; a quiet steady state changes nothing', async (t) => {
  const { runner, nft, monitor } = setup();
  const m = monitor();
  await m.check();
  t.is(nft.replaced, 1);
  t.is(mutations(runner), 1);
  for (let i = 0; i < 3; i++) await m.check();
  t.is(mutations(runner), 1, 'no further change');
  t.deepEqual(
    m.latest?.networks.map((n) => [n.name, n.blocked, n.reason]),
    [
      ['cdn', false, ''],
      ['tel', false, ''],
    ],
  );
});

test('loop monitor - a steady check costs one nft read: the last read is the next before', async (t) => {
  const { runner, monitor, nft } = setup();
  const m = monitor();
  await m.check();
  const reads = () => runner.calls.filter((c) => c.argv.includes('list')).length;
  const first = reads();
  for (let i = 0; i < 3; i++) await m.check();
  t.is(reads() - first, 3, 'one read per check (was two)');
  t.is(nft.replaced, 1, 'and no rebuild');
});

test('loop monitor - with the helper listing the table a steady check starts no process; a loop is still cut', async (t) => {
  const runner = new FakeRunner();
  const nft = new FakeNft(runner);
  const beacon = new ListingBeacon(nft);
  const config = parseGatewayConfig(madridConfig('/k', NETS));
  const m = new LoopMonitor({ gateway: { config }, runner, beacon, nft: NFT, settleMs: 0 });
  await m.check(); // installs the table: one nft -f -
  const before = runner.calls.length;
  for (let i = 0; i < 3; i++) await m.check();
  t.deepEqual(
    runner.calls.slice(before).map((c) => c.argv.join(' ')),
    [],
    'no process in steady checks',
  );
  t.true(beacon.lists >= 3, 'the table is listed through the helper');
  beacon.loopVia = ['198.19.255.2 100'];
  await m.check();
  t.deepEqual([...nft.blocked].sort(), ['198.19.255.2 100', '198.19.255.3 100']);
});

test('loop monitor - a loop through a lower peer blocks that network to all its peers, once; quiet checks lift it', async (t) => {
  const { runner, nft, beacon, monitor } = setup();
  const m = monitor();
  await m.check();
  beacon.loopVia = ['198.19.255.2 100'];
  await m.check();
  t.deepEqual([...nft.blocked].sort(), ['198.19.255.2 100', '198.19.255.3 100']);
  t.true(m.network('cdn')?.blocked);
  t.false(m.network('tel')?.blocked, 'only the looping network');
  const before = mutations(runner);
  await m.check();
  await m.check();
  t.is(mutations(runner), before, 'held without new commands while the loop lasts');
  beacon.loopVia = [];
  await m.check();
  await m.check();
  t.is(nft.blocked.size, 2, 'two quiet checks: still blocked');
  await m.check();
  t.is(nft.blocked.size, 0, 'third quiet check: lifted');
  t.is(mutations(runner), before + 1);
  t.is(m.network('cdn')?.reason, '');
});

test('loop monitor - a restarted monitor keeps the blocks it finds while it cannot judge them', async (t) => {
  const { nft, beacon, monitor } = setup();
  const first = monitor();
  await first.check();
  beacon.loopVia = ['198.19.255.3 100'];
  await first.check();
  t.is(nft.blocked.size, 2);
  beacon.loopVia = [];
  beacon.unavailable = 'python3 is not installed';
  const second = monitor();
  for (let i = 0; i < 5; i++) await second.check();
  t.is(nft.blocked.size, 2, 'no beacon out: no evidence either way, the block stays');
  t.true(second.network('cdn')?.blocked);
  t.is(second.network('cdn')?.beaconError, 'python3 is not installed');
  t.is(nft.replaced, 1, 'the table itself was not replaced');
});

test('loop monitor - a changed bound replaces the table and carries the blocks over', async (t) => {
  const s = setup();
  const m = s.monitor();
  await m.check();
  s.beacon.loopVia = ['198.19.255.2 200'];
  await m.check();
  t.deepEqual([...s.nft.blocked], ['198.19.255.2 200']);
  s.gateway.config = parseGatewayConfig({
    ...madridConfig('/k', NETS),
    bumLimit: { packetsPerSecond: 50, burst: 10 },
  });
  await m.check();
  t.is(s.nft.replaced, 2);
  t.regex(s.nft.script!, /limit rate over 50\/second burst 10 packets/);
  t.deepEqual([...s.nft.blocked], ['198.19.255.2 200'], 'the block survived the replacement');
});

test('loop monitor - the lower id reports a loop and blocks nothing', async (t) => {
  const input = madridConfig('/k', NETS);
  const { nft, beacon, monitor } = setup(parseGatewayConfig({ ...input, identity: 'a' }));
  const m = monitor();
  await m.check();
  beacon.loopVia = ['198.19.255.2 100'];
  await m.check();
  t.is(nft.blocked.size, 0);
  t.deepEqual(m.network('cdn')?.loopPeers, ['b']);
  t.regex(m.network('cdn')?.reason ?? '', /the gateway with the higher id \(b\) blocks it/);
});

test('loop monitor - a new applied config gets its bound within a few hundred ms, not at the next interval', async (t) => {
  const s = setup();
  const m = new LoopMonitor({
    gateway: s.gateway,
    runner: s.runner,
    beacon: s.beacon,
    nft: NFT,
    settleMs: 0,
    intervalMs: 60_000,
  });
  t.teardown(() => m.stop());
  m.start();
  const until = async (ok: () => boolean) => {
    for (const end = Date.now() + 3000; Date.now() < end && !ok();) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return ok();
  };
  t.true(await until(() => s.nft.replaced === 1), 'first check at start');
  s.gateway.config = parseGatewayConfig({
    ...madridConfig('/k', NETS),
    bumLimit: { packetsPerSecond: 70, burst: 7 },
  });
  const applied = Date.now();
  t.true(await until(() => s.nft.replaced === 2), 'replaced after the apply');
  t.true(Date.now() - applied < 1500, `${Date.now() - applied} ms`);
  t.regex(s.nft.script!, /limit rate over 70\/second burst 7 packets/);
});
