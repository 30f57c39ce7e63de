/**
 * LoopMonitor over a FakeRunner that models the `inet l2fed_l2` table (script in, JSON
 * out) and a fake beacon that can make beacons come back: what it changes and when.
 * Steady state changes nothing; a loop adds the network's paths to the blocked set once;
 * quiet checks remove them; a restarted monitor keeps blocks it cannot judge; a config
 * change rewrites the paths it changes only, with their blocks.
 */
import test from 'ava';
import { FakeRunner } from '../lib/runner-fake.js';
import { parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from './config.js';
import type { ProbeSendResult } from './l2-probe.js';
import type { LoopBeaconSender } from './loop-beacon.js';
import { FakeL2GuardNft as FakeNft } from './loop-guard-fake.js';
import { LoopMonitor } from './loop-monitor.js';
import { madridConfig } from '../test/fixtures/gateway-over-fakes.js';

const NFT = '/usr/sbin/nft';

/** Sends "beacons"; while `loopVia` names a path ("address vni"), each comes back there. */
class FakeBeacon implements LoopBeaconSender {
  loopVia: string[] = [];
  unavailable: string | undefined;
  constructor(private readonly nft: FakeNft) {}
  send(_identity: string, devices: readonly string[]): Promise<ProbeSendResult> {
    if (this.unavailable) {
      return Promise.resolve({ sent: new Set(), failed: new Map(), unavailable: this.unavailable });
    }
    for (const k of this.loopVia) this.nft.count('repeat', k);
    return Promise.resolve({ sent: new Set(devices), failed: new Map() });
  }
}

/**
 * A beacon sender that also lists the table without a process (the probe helper's way),
 * and with `withGeneration` reads the ruleset generation as the helper does.
 */
class ListingBeacon extends FakeBeacon {
  lists = 0;
  setLists = 0;
  /** Whole-table listings to fail from now (nft exit 2), as a failing helper would. */
  failWhole = 0;
  /** Counter-set listings to answer with garbage from now. */
  garbleSets = 0;
  constructor(
    private readonly table: FakeNft,
    private readonly withGeneration = false,
  ) {
    super(table);
  }
  list(family: string, name: string, _netns: string | undefined, sets?: readonly string[]) {
    if (family !== 'inet' || name !== 'l2fed_l2') throw new Error(`listed ${family} ${name}`);
    if (sets) {
      this.setLists++;
      if (this.garbleSets > 0 && this.garbleSets--) {
        return Promise.resolve({ exitCode: 0, stdout: '{"nftables": 7}\n', stderr: '' });
      }
      return Promise.resolve(this.table.listSets(sets));
    }
    this.lists++;
    if (this.failWhole > 0 && this.failWhole--) {
      return Promise.resolve({ exitCode: 2, stdout: '', stderr: 'Error: out of memory' });
    }
    return Promise.resolve(this.table.listing());
  }
  generation() {
    return Promise.resolve(this.withGeneration ? this.table.generation : undefined);
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

/** A monitor whose helper reads the ruleset generation (the shipped way), over the fakes. */
function withGeneration(holdTicks?: number) {
  const runner = new FakeRunner();
  const nft = new FakeNft(runner);
  const beacon = new ListingBeacon(nft, true);
  const gateway = { config: parseGatewayConfig(madridConfig('/k', NETS)) };
  const m = new LoopMonitor({ gateway, runner, beacon, nft: NFT, settleMs: 0, holdTicks });
  return { runner, nft, beacon, m };
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

test('loop monitor - with the ruleset generation a steady check lists only the counter sets; a loop is still cut; a change by hand is read whole and repaired', async (t) => {
  // holdTicks: the block stays, so the only script after the hand edit is its repair.
  const { nft, beacon, m } = withGeneration(99);
  await m.check(); // installs the table, reads it whole
  const [whole, sets] = [beacon.lists, beacon.setLists];
  for (let i = 0; i < 3; i++) await m.check();
  t.is(beacon.lists, whole, 'no whole read while nothing was committed');
  t.is(beacon.setLists - sets, 3, 'one counter-set read per check');
  nft.count('bum-out', '198.19.255.3 100', 9);
  await m.check();
  t.is(m.network('cdn')?.paths[1]?.bumDroppedOut, 9, 'counters are current');
  beacon.loopVia = ['198.19.255.2 100'];
  await m.check();
  t.deepEqual([...nft.blocked].sort(), ['198.19.255.2 100', '198.19.255.3 100']);
  t.true(m.network('cdn')?.blocked);
  // The block was a transaction: the next check reads the table whole, once.
  beacon.loopVia = [];
  const afterBlock = beacon.lists;
  await m.check();
  await m.check();
  t.is(beacon.lists, afterBlock + 1);
  // A rule deleted by hand is a transaction too (the generation moves): repaired.
  nft.deleteRuleByHand('repeat', '198.19.255.3 100');
  const from = nft.scripts.length;
  await m.check();
  await m.check();
  t.is(nft.scripts.length - from, 1, 'one repair');
  t.notThrows(() => nft.rule('repeat', '198.19.255.3 100'));
  t.is(nft.replaced, 1);
});

test('loop monitor - a whole read that fails after the generation was read, or counter sets that do not parse, leave the next read whole: a hand edit is still repaired', async (t) => {
  const { nft, beacon, m } = withGeneration();
  await m.check();
  await m.check();
  // By hand: a rule deleted (a transaction: the generation moves) ...
  nft.deleteRuleByHand('repeat', '198.19.255.3 100');
  // ... and the whole read that would see it fails once.
  beacon.failWhole = 1;
  await t.throwsAsync(() => m.check(), { message: /out of memory/ });
  await m.check();
  t.notThrows(() => nft.rule('repeat', '198.19.255.3 100'), 'repaired in the next check');
  // Counter sets that do not parse: that check reads the whole table instead.
  const whole = beacon.lists;
  beacon.garbleSets = 1;
  nft.count('bum-in', '198.19.255.2 100', 4);
  await m.check();
  t.is(beacon.lists, whole + 1);
  t.is(m.network('cdn')?.paths[0]?.bumDroppedIn, 4);
});

test('loop monitor - a kernel that keeps no counters on set elements: every check fails saying so, after doing its work', async (t) => {
  const { nft, m } = withGeneration();
  await m.check();
  nft.keepsCounters = false;
  nft.count('bum-in', '198.19.255.2 100', 3);
  for (let i = 0; i < 2; i++) {
    const before = m.latest;
    await t.throwsAsync(() => m.check(), {
      message: /198\.19\.255\.2 100 of count_bum_in has no counter/,
    });
    t.not(m.latest, before, 'the check still reported');
  }
  t.is(nft.replaced, 1, 'and did not rebuild the table over it');
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
  t.is(nft.blocked.length, 2, 'two quiet checks: still blocked');
  await m.check();
  t.is(nft.blocked.length, 0, 'third quiet check: lifted');
  t.is(mutations(runner), before + 1);
  t.is(m.network('cdn')?.reason, '');
});

test('loop monitor - a restarted monitor keeps the blocks it finds while it cannot judge them', async (t) => {
  const { nft, beacon, monitor } = setup();
  const first = monitor();
  await first.check();
  beacon.loopVia = ['198.19.255.3 100'];
  await first.check();
  t.is(nft.blocked.length, 2);
  beacon.loopVia = [];
  beacon.unavailable = 'python3 is not installed';
  const second = monitor();
  for (let i = 0; i < 5; i++) await second.check();
  t.is(nft.blocked.length, 2, 'no beacon out: no evidence either way, the block stays');
  t.true(second.network('cdn')?.blocked);
  t.is(second.network('cdn')?.beaconError, 'python3 is not installed');
  t.is(nft.replaced, 1, 'the table itself was not replaced');
});

const withNets = (nets: GatewayConfigInput['networks']) =>
  parseGatewayConfig(madridConfig('/k', nets));

test('loop monitor - a changed bound on one network rewrites only its paths, in one command; blocks and the other paths stay', async (t) => {
  const s = setup();
  const m = s.monitor();
  await m.check();
  s.beacon.loopVia = ['198.19.255.2 200'];
  await m.check();
  t.deepEqual(s.nft.blocked, ['198.19.255.2 200']);
  s.beacon.loopVia = [];
  s.nft.count('bum-out', '198.19.255.3 100', 5); // cdn's counters must survive
  s.nft.count('bum-out', '198.19.255.2 200', 4); // and tel's, rewritten (counter sets)
  const before = s.nft.bytes.length;
  s.gateway.config = withNets(
    NETS.map((n) =>
      n.name === 'tel' ? { ...n, bumLimit: { packetsPerSecond: 50, burst: 10 } } : n,
    ),
  );
  await m.check();
  t.is(s.nft.replaced, 1, 'the table was not replaced');
  t.is(s.nft.bytes.length - before, 1, 'one nft -f');
  t.regex(s.nft.rule('bum-out', '198.19.255.2 200').body, /limit rate over 50\/second burst 10/);
  t.regex(s.nft.rule('bum-in', '198.19.255.2 200').body, /limit rate over 50\/second burst 10/);
  t.regex(s.nft.rule('bum-out', '198.19.255.3 100').body, /limit rate over 1000\/second/);
  t.is(s.nft.counted('bum-out', '198.19.255.3 100'), 5, 'an untouched path keeps its counters');
  t.is(s.nft.counted('bum-out', '198.19.255.2 200'), 4, 'a re-bounded path keeps its counters');
  t.is(m.network('cdn')?.paths[1]?.bumDroppedOut, 5);
  t.is(m.network('tel')?.paths[0]?.bumDroppedOut, 4);
  t.deepEqual(s.nft.blocked, ['198.19.255.2 200'], 'the block stays');
  t.true(m.network('tel')?.blocked);
  const again = s.nft.bytes.length;
  await m.check();
  t.is(s.nft.bytes.length, again, 'then nothing to write');
});

test('loop monitor - a peer joining a blocked network is blocked in the same command that adds its path; a peer leaving takes its path and block along', async (t) => {
  const s = setup();
  const m = s.monitor();
  await m.check();
  s.beacon.loopVia = ['198.19.255.2 200'];
  await m.check();
  s.beacon.loopVia = ['198.19.255.2 200']; // the loop lasts: tel stays blocked
  const from = s.nft.scripts.length;
  s.gateway.config = withNets(
    NETS.map((n) => (n.name === 'tel' ? { ...n, peers: ['b', 'c'] } : n)),
  );
  await m.check();
  const joined = s.nft.scripts.slice(from);
  t.is(joined.length, 1, joined.join('\n---\n'));
  t.regex(joined[0]!, /add element inet l2fed_l2 blocked \{ 198\.19\.255\.3 \. 200 \}/);
  t.false(/198\.19\.255\.[23] \. 100|-100\b/.test(joined[0]!), 'cdn untouched');
  t.deepEqual(s.nft.paths, [
    '198.19.255.2 100',
    '198.19.255.2 200',
    '198.19.255.3 100',
    '198.19.255.3 200',
  ]);
  t.deepEqual(s.nft.blocked, ['198.19.255.2 200', '198.19.255.3 200']);

  const left = s.nft.scripts.length;
  s.gateway.config = withNets(NETS.map((n) => (n.name === 'tel' ? { ...n, peers: ['b'] } : n)));
  await m.check();
  const gone = s.nft.scripts.slice(left);
  t.is(gone.length, 1, gone.join('\n---\n'));
  t.regex(gone[0]!, /delete element inet l2fed_l2 blocked \{ 198\.19\.255\.3 \. 200 \}/);
  t.deepEqual(s.nft.paths, ['198.19.255.2 100', '198.19.255.2 200', '198.19.255.3 100']);
  t.deepEqual(s.nft.blocked, ['198.19.255.2 200']);
  t.is(s.nft.replaced, 1);
});

test('loop monitor - a path broken by hand (a rule deleted) is made whole again, and only it', async (t) => {
  const s = setup();
  const m = s.monitor();
  await m.check();
  s.nft.deleteRuleByHand('repeat', '198.19.255.3 100');
  const from = s.nft.scripts.length;
  // The first check's "before" is the previous check's read; its own read sees the hole.
  await m.check();
  await m.check();
  const fixed = s.nft.scripts.slice(from);
  t.is(fixed.length, 1);
  t.regex(fixed[0]!, /flush chain inet l2fed_l2 out-198\.19\.255\.3-100/);
  t.false(fixed[0]!.includes('198.19.255.2'), 'the other paths untouched');
  t.notThrows(() => s.nft.rule('repeat', '198.19.255.3 100'));
  t.is(s.nft.replaced, 1);
});

test('loop monitor - the lower id reports a loop and blocks nothing', async (t) => {
  const input = madridConfig('/k', NETS);
  const { nft, beacon, monitor } = setup(parseGatewayConfig({ ...input, identity: 'a' }));
  const m = monitor();
  await m.check();
  beacon.loopVia = ['198.19.255.2 100'];
  await m.check();
  t.is(nft.blocked.length, 0);
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
  const bound = () =>
    /over 70\/second burst 7 /.test(s.nft.rule('bum-in', '198.19.255.2 100').body);
  t.true(await until(bound), 'the new bound is in place');
  t.true(Date.now() - applied < 1500, `${Date.now() - applied} ms`);
});
