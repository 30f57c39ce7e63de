/**
 * Loop guard and broadcast bound, pure parts (gateway/loop-guard.ts, the spec in
 * loop-monitor.ts, the config fields): the decision table, the rule that exactly one
 * side of a loop blocks, the nft script and the parse of a table captured from nft
 * 1.0.6, the health fold-in, the metrics.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ConfigError } from './errors.js';
import { parseGatewayConfig, DEFAULT_BUM_LIMIT } from './config.js';
import { FakeRunner } from '../lib/runner-fake.js';
import { FakeL2GuardNft } from './loop-guard-fake.js';
import {
  L2_GUARD_VERSION,
  NFT_COMMENT_MAX,
  blockScript,
  COUNTER_SETS,
  blockedPaths,
  decideLoops,
  l2GuardChange,
  l2GuardChangeScript,
  l2GuardMarker,
  l2GuardScript,
  parseL2Guard,
  parseL2GuardCounters,
  type GuardedPath,
  withLoop,
  type LoopNetwork,
  type NetworkLoopState,
} from './loop-guard.js';
import { l2GuardSpec, type LoopReport } from './loop-monitor.js';
import { GatewayMetrics } from './metrics.js';
import { configFromProto, configToProto } from './grpc-convert.js';
import { madridConfig } from '../test/fixtures/gateway-over-fakes.js';

const CDN: LoopNetwork = {
  name: 'cdn',
  vni: 100,
  peers: [
    { name: 'site0', address: '198.19.255.1' },
    { name: 'site2', address: '198.19.255.3' },
  ],
};
const via = (p: { address: string }) => `${p.address} 100`;

function decide(identity: string, grew: string[], previous?: NetworkLoopState, beaconSent = true) {
  return decideLoops({
    identity,
    networks: [CDN],
    previous: new Map(previous ? [['cdn', previous]] : []),
    repeatsGrew: new Set(grew),
    beaconSent: new Set(beaconSent ? ['cdn'] : []),
    holdTicks: 3,
  }).get('cdn')!;
}

test('loop decision - no beacon back, no loop, nothing blocked', (t) => {
  t.deepEqual(decide('site1', []), { loopPeers: [], blocked: false, quietTicks: 0, reason: '' });
});

test('loop decision - the higher id blocks the network when its beacon comes back through a lower peer', (t) => {
  const s = decide('site1', [via(CDN.peers[0]!)]);
  t.true(s.blocked);
  t.deepEqual(s.loopPeers, ['site0']);
  t.regex(s.reason, /loop through site0 on cdn: this gateway blocks cdn's VXLAN to all peers/);
  t.deepEqual(blockedPaths([CDN], new Map([['cdn', s]])), [
    { address: '198.19.255.1', vni: 100 },
    { address: '198.19.255.3', vni: 100 },
  ]);
});

test('loop decision - the lower id reports the loop and leaves the cut to the higher one', (t) => {
  const s = decide('site1', [via(CDN.peers[1]!)]);
  t.false(s.blocked);
  t.deepEqual(s.loopPeers, ['site2']);
  t.regex(s.reason, /the gateway with the higher id \(site2\) blocks it/);
});

test('loop decision - a block stays while the loop is seen and lifts after hold quiet checks with a beacon out', (t) => {
  let s = decide('site1', [via(CDN.peers[0]!)]);
  s = decide('site1', [via(CDN.peers[1]!)], s); // still looping (through any peer): stays
  t.true(s.blocked);
  s = decide('site1', [], s);
  t.like(s, { blocked: true, quietTicks: 1 });
  s = decide('site1', [], s, false); // no beacon left: no evidence, no progress
  t.like(s, { blocked: true, quietTicks: 1 });
  t.regex(s.reason, /no beacon came back for 1 of 3 checks/);
  s = decide('site1', [], s);
  t.like(s, { blocked: true, quietTicks: 2 });
  const again = decide('site1', [via(CDN.peers[0]!)], s);
  t.like(again, { blocked: true, quietTicks: 0 }, 'a beacon back restarts the count');
  s = decide('site1', [], s);
  t.deepEqual(s, { loopPeers: [], blocked: false, quietTicks: 0, reason: '' });
});

test('loop decision - of two gateways that both see the loop, exactly one blocks (any ids)', (t) => {
  const id = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
  // fc.assert throws with the counterexample when a pair of ids breaks the rule.
  t.notThrows(() =>
    fc.assert(
      fc.property(id, id, (a, b) => {
        fc.pre(a !== b);
        const net = (peer: string): LoopNetwork => ({
          name: 'n',
          vni: 7,
          peers: [{ name: peer, address: '10.0.0.9' }],
        });
        const side = (me: string, peer: string) =>
          decideLoops({
            identity: me,
            networks: [net(peer)],
            previous: new Map(),
            repeatsGrew: new Set(['10.0.0.9 7']),
            beaconSent: new Set(['n']),
          }).get('n')!.blocked;
        return side(a, b) !== side(b, a);
      }),
    ),
  );
});

const SPEC = {
  wgIfname: 'l2fwx',
  vxlanPort: 4789,
  paths: [
    { address: '198.19.255.2', vni: 100, packetsPerSecond: 50, burst: 20 },
    { address: '198.19.255.3', vni: 100, packetsPerSecond: 50, burst: 20 },
  ],
};

test('nft script - one vmap lookup per direction to the path chains; blocked, beacon repeat, control budget and bound per path, in order', (t) => {
  const s = l2GuardScript(SPEC, [{ address: '198.19.255.2', vni: 100 }]);
  t.true(s.startsWith('table inet l2fed_l2 {}\ndelete table inet l2fed_l2\n'), 'one transaction');
  t.regex(s, /add element inet l2fed_l2 blocked \{ 198\.19\.255\.2 \. 100 \}/);
  t.regex(
    s,
    /add rule inet l2fed_l2 input iifname "l2fwx" udp dport 4789 ip saddr \. @th,96,24 vmap @paths_in comment "l2fed-l2 v\d+ wg=l2fwx port=4789"/,
  );
  t.regex(
    s,
    /add rule inet l2fed_l2 output oifname "l2fwx" udp dport 4789 ip daddr \. @th,96,24 vmap @paths_out comment "l2fed-l2 /,
  );
  t.regex(
    s,
    /add element inet l2fed_l2 paths_in \{ 198\.19\.255\.3 \. 100 : goto in-198\.19\.255\.3-100 \}/,
  );
  t.regex(
    s,
    /add rule inet l2fed_l2 in-198\.19\.255\.3-100 @th,128,8 & 0x1 == 0x1 limit rate over 50\/second burst 20 packets goto count-bum-in comment "bum-in 50\/20 198\.19\.255\.3 100"/,
  );
  t.regex(
    s,
    /add rule inet l2fed_l2 out-198\.19\.255\.2-100 @th,128,48 0x036c32666c70 @th,224,16 0x88b5 ip daddr \. @th,96,24 \. @th,240,32 @beacons_out goto count-repeat comment "repeat 198\.19\.255\.2 100"/,
  );
  t.regex(
    s,
    /add rule inet l2fed_l2 out-198\.19\.255\.2-100 @th,128,48 \{ 0x036c32666c70, 0x0180c200000e \} @th,224,16 0x88b5 limit rate 10\/second burst 10 packets accept comment "control-out 198\.19\.255\.2 100"/,
  );
  // Within a path's chain: blocked first, then beacons and probes on their own budget,
  // then the bound; out: the repeat check before the record, both before the block.
  const order = (chain: string) => {
    const lines = s.split('\n').filter((l) => l.startsWith(`add rule inet l2fed_l2 ${chain} `));
    return lines.map((l) => /comment "([a-z-]+)/.exec(l)?.[1]);
  };
  t.deepEqual(order('in-198.19.255.2-100'), ['blocked-in', 'control-in', 'bum-in']);
  t.deepEqual(order('out-198.19.255.2-100'), [
    'repeat',
    'record',
    'blocked-out',
    'control-out',
    'bum-out',
  ]);
  t.true(
    s.indexOf('add chain inet l2fed_l2 in-198.19.255.2-100') <
      s.indexOf('paths_in { 198.19.255.2 . 100 : goto'),
    'a chain exists before its map entry',
  );
  // Each kind's sink counts the packet under its path, then drops it in a rule of its own
  // (an update that cannot make its element must not let the packet pass).
  t.deepEqual(
    s.split('\n').filter((l) => l.startsWith('add rule inet l2fed_l2 count-bum-in ')),
    [
      'add rule inet l2fed_l2 count-bum-in update @count_bum_in { ip saddr . @th,96,24 } comment "count bum-in"',
      'add rule inet l2fed_l2 count-bum-in drop comment "drop bum-in"',
    ],
  );
  t.regex(
    s,
    /add rule inet l2fed_l2 count-repeat update @count_repeat \{ ip daddr \. @th,96,24 \}/,
  );
  t.true(s.indexOf('add chain inet l2fed_l2 count-repeat') < s.indexOf('goto count-repeat'));
  t.is(
    blockScript([{ address: '198.19.255.2', vni: 100 }], [{ address: '198.19.255.3', vni: 7 }]),
    'add element inet l2fed_l2 blocked { 198.19.255.2 . 100 }\nadd element inet l2fed_l2 blocked { 198.19.255.3 . 7 }\ndelete element inet l2fed_l2 blocked { 198.19.255.3 . 7 }\n',
  );
});

/** The fake nft after `script`, and its table as the monitor parses it. */
async function observe(script: string) {
  const runner = new FakeRunner();
  const nft = new FakeL2GuardNft(runner);
  await runner.run([nft.nft, '-f', '-'], { input: script, mutates: true });
  return { nft, runner, read: () => parseL2Guard(nft.listing().stdout) };
}

test('nft change - path by path: nothing, a new bound, a new path, a path gone, a half-made path', async (t) => {
  const { nft, runner, read } = await observe(l2GuardScript(SPEC, []));
  const have = read();
  t.is(have.marker, l2GuardMarker(SPEC));
  t.deepEqual([...have.paths.values()], [...SPEC.paths]);
  t.is(l2GuardChange(SPEC, have), undefined, 'nothing differs: nothing to write');
  const [a, b] = SPEC.paths as [GuardedPath, GuardedPath];
  const c = { ...a, address: '198.19.255.9' };
  const next = { ...SPEC, paths: [{ ...a, burst: 21 }, c] };
  const change = l2GuardChange(next, have);
  t.deepEqual(change, { put: [{ ...a, burst: 21 }, c], del: [{ address: b.address, vni: 100 }] });
  await runner.run([nft.nft, '-f', '-'], {
    input: l2GuardChangeScript(change!, { add: [], del: [] }),
    mutates: true,
  });
  const after = read();
  t.deepEqual(
    [...after.paths.values()].sort((x, y) => x.address.localeCompare(y.address)),
    next.paths,
  );
  t.is(l2GuardChange(next, after), undefined);
  // A rule deleted by hand: that path only is rewritten.
  const chain = nft.table!.chains.get(`in-${c.address}-100`)!;
  chain.pop();
  const broken = read();
  t.deepEqual([...broken.partial], [`${c.address} 100`]);
  t.deepEqual(l2GuardChange(next, broken), { put: [c], del: [] });
  // A half-made path no longer wanted is removed, whatever is left of it.
  t.deepEqual(l2GuardChange({ ...next, paths: [next.paths[0]!] }, broken)?.del, [
    { address: c.address, vni: 100 },
  ]);
  await runner.run([nft.nft, '-f', '-'], {
    input: l2GuardChangeScript(l2GuardChange({ ...next, paths: [next.paths[0]!] }, broken)!, {
      add: [],
      del: [],
    }),
    mutates: true,
  });
  t.deepEqual(nft.paths, [`${a.address} 100`]);
  t.false(
    [...nft.table!.chains.keys()].some((k) => k.includes(c.address)),
    'its chains are gone',
  );
});

test('nft parse - a table captured from nft 1.0.6 (l2GuardScript(SPEC, [.2 . 100]), counter set elements added by hand): marker, whole paths with their bound, blocked set, counters per path', (t) => {
  const o = parseL2Guard(readFileSync('test/fixtures/nft-l2guard-v5.json', 'utf8'));
  t.is(o.marker, l2GuardMarker(SPEC));
  t.deepEqual([...o.paths.values()], [...SPEC.paths]);
  t.is(o.partial.size, 0);
  t.is(l2GuardChange(SPEC, o), undefined, 'the table nft holds is the spec: nothing to write');
  t.deepEqual(o.blocked, [{ address: '198.19.255.2', vni: 100 }]);
  const c = o.counters;
  t.is(c.repeats.get('198.19.255.2 100'), 3);
  t.is(c.repeats.get('198.19.255.3 100'), undefined, 'nothing dropped: no element');
  t.is(c.bumDroppedIn.get('198.19.255.3 100'), 7);
  t.is(c.bumDroppedOut.get('198.19.255.2 100'), 11);
  t.is(c.blockedDroppedIn.get('198.19.255.2 100'), 5);
  t.is(c.blockedDroppedOut.get('198.19.255.2 100'), 2);
  t.is(c.blockedDroppedOut.get('198.19.255.3 100'), undefined);
});

test('nft parse - a sink rule missing (deleted by hand) or a sink chain flushed: no marker, so the table is made afresh', (t) => {
  const text = readFileSync('test/fixtures/nft-l2guard-v5.json', 'utf8');
  const objects = (JSON.parse(text) as { nftables: { rule?: { comment?: string } }[] }).nftables;
  const without = (comment: string) =>
    JSON.stringify({ nftables: objects.filter((o) => o.rule?.comment !== comment) });
  t.is(parseL2Guard(text).marker, l2GuardMarker(SPEC));
  t.is(parseL2Guard(without('drop bum-out')).marker, undefined);
  t.is(parseL2Guard(without('count repeat')).marker, undefined);
  // In another order (count re-added after the drop), or with another rule in a sink.
  const i = objects.findIndex((o) => o.rule?.comment === 'count bum-in');
  const swapped = [...objects];
  [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
  t.is(parseL2Guard(JSON.stringify({ nftables: swapped })).marker, undefined);
  const extra = [...objects, { rule: { chain: 'count-bum-in', expr: [{ accept: null }] } }];
  t.is(parseL2Guard(JSON.stringify({ nftables: extra })).marker, undefined);
});

test('nft parse - the counter sets alone, as the probe helper lists them (one nft 1.0.6 document per line), give the same counters as the whole table', (t) => {
  const whole = parseL2Guard(readFileSync('test/fixtures/nft-l2guard-v5.json', 'utf8'));
  const sets = parseL2GuardCounters(
    readFileSync('test/fixtures/nft-l2guard-v5-counters.jsonl', 'utf8'),
  );
  t.deepEqual(sets, whole.counters);
  t.is(sets.bumDroppedIn.size, 1);
  t.throws(() => parseL2GuardCounters('{"nftables": []}\nnot json\n'), {
    message: /not nftables JSON/,
  });
  // A set missing from the listing is an error, not an empty set (a false repeat later).
  const listed = (names: readonly string[], elem: unknown[] = []) =>
    names.map((name) => JSON.stringify({ nftables: [{ set: { name, elem } }] })).join('\n');
  const all = Object.values(COUNTER_SETS);
  t.throws(() => parseL2GuardCounters(listed(all.slice(1))), {
    message: /no set count_repeat in the listing/,
  });
  // An element with no counter (a kernel that does not keep them): said, not read as 0.
  const bare = parseL2GuardCounters(
    listed(all, [{ elem: { val: { concat: ['198.19.255.2', 100] } } }]),
  );
  t.regex(bare.uncounted ?? '', /198\.19\.255\.2 100 of count_\w+ has no counter/);
  t.is(bare.repeats.size, 0);
  t.is(parseL2GuardCounters(listed(all)).uncounted, undefined);
});

test('nft parse - a table of an older version (v1, captured from nft 1.0.6) has no current marker and no whole path: it is replaced whole', (t) => {
  const o = parseL2Guard(CAPTURED);
  t.not(o.marker, l2GuardMarker(SPEC));
  t.is(o.paths.size, 0);
  t.deepEqual(o.blocked, [{ address: '198.19.255.2', vni: 100 }], 'its blocks are adopted');
  t.throws(() => parseL2Guard('not json'), { message: /not nftables JSON/ });
});

test('nft marker - the tunnel, the port and the version only: paths and bounds are compared path by path', (t) => {
  const m = l2GuardMarker(SPEC);
  t.is(m, `l2fed-l2 v${L2_GUARD_VERSION} wg=l2fwx port=4789`);
  t.not(l2GuardMarker({ ...SPEC, vxlanPort: 4790 }), m);
  t.not(l2GuardMarker({ ...SPEC, wgIfname: 'l2fwy' }), m);
  t.true(m.length <= NFT_COMMENT_MAX);
});

test('health - a loop makes an ok network degraded with its reason; a worse status keeps its status', (t) => {
  t.deepEqual(withLoop({ status: 'ok', reason: '' }, undefined), { status: 'ok', reason: '' });
  t.deepEqual(withLoop({ status: 'ok', reason: '' }, { reason: '' }), { status: 'ok', reason: '' });
  t.deepEqual(withLoop({ status: 'ok', reason: 'idle' }, { reason: 'loop through x' }), {
    status: 'degraded',
    reason: 'loop through x',
  });
  t.deepEqual(withLoop({ status: 'down', reason: 'no peer reachable' }, { reason: 'loop' }), {
    status: 'down',
    reason: 'no peer reachable; loop',
  });
});

test('config - bumLimit: default per gateway, override per network, bad values named', (t) => {
  const base = madridConfig('/k', [
    {
      name: 'cdn',
      vni: 100,
      segment: { type: 'linux-bridge', bridge: 'br-cdn' },
      peers: ['b', 'c'],
    },
    { name: 'tel', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-tel' }, peers: ['b'] },
  ]);
  const c = parseGatewayConfig(base);
  t.deepEqual(c.bumLimit, DEFAULT_BUM_LIMIT);
  const over = parseGatewayConfig({
    ...base,
    bumLimit: { packetsPerSecond: 300, burst: 30 },
    networks: base.networks!.map((n, i) =>
      i === 0 ? { ...n, bumLimit: { packetsPerSecond: 10, burst: 5 } } : n,
    ),
  });
  const spec = l2GuardSpec(over);
  const first = over.networks[0]!.vni;
  t.true(spec.paths.length > 0);
  for (const p of spec.paths) {
    t.like(
      p,
      p.vni === first ? { packetsPerSecond: 10, burst: 5 } : { packetsPerSecond: 300, burst: 30 },
    );
  }
  const err = t.throws(
    () => parseGatewayConfig({ ...base, bumLimit: { packetsPerSecond: 0, burst: 1.5 } }),
    {
      instanceOf: ConfigError,
    },
  );
  t.regex(err.message, /bumLimit\.packetsPerSecond: bumLimit\.packetsPerSecond must be at least 1/);
  t.regex(err.message, /bumLimit\.burst: bumLimit\.burst must be an integer/);
  t.throws(() => parseGatewayConfig({ ...base, bumLimit: { packetsPerSecond: 5 } }), {
    instanceOf: ConfigError,
  });
});

test('metrics - loop and block per network; drops as counters that survive a replaced table', async (t) => {
  const m = new GatewayMetrics('site1');
  const report = (out: number, blocked: boolean): LoopReport => ({
    at: '2026-01-01T00:00:00Z',
    networks: [
      {
        name: 'cdn',
        vni: 100,
        loopPeers: blocked ? ['site0'] : [],
        blocked,
        quietTicks: 0,
        reason: '',
        beaconError: '',
        paths: [
          {
            peer: 'site0',
            address: '198.19.255.1',
            bumDroppedIn: 0,
            bumDroppedOut: out,
            blockedDroppedIn: 0,
            blockedDroppedOut: 0,
          },
        ],
      },
    ],
    blockedDroppedIn: 0,
    blockedDroppedOut: 0,
  });
  m.observeLoops(report(10, true));
  m.observeLoops(report(25, true));
  m.observeLoops(report(4, false)); // the table was replaced: its counters restarted at 0
  const text = await m.registry.metrics();
  t.regex(
    text,
    /l2fed_gateway_bum_dropped_frames_total\{network="cdn",peer="site0",direction="out",gateway="site1"\} 29/,
  );
  t.regex(text, /l2fed_gateway_loop_blocked\{network="cdn",gateway="site1"\} 0/);
  t.regex(text, /l2fed_gateway_loop_detected\{network="cdn",gateway="site1"\} 0/);
});

test('metrics - frames dropped on blocked paths are counted per network and direction; one path restarting its counter does not disturb the others', async (t) => {
  const m = new GatewayMetrics('site1');
  const path = (peer: string, blockedIn: number, blockedOut: number) => ({
    peer,
    address: `198.19.255.${peer.slice(-1)}`,
    bumDroppedIn: 0,
    bumDroppedOut: 0,
    blockedDroppedIn: blockedIn,
    blockedDroppedOut: blockedOut,
  });
  const net = (name: string, vni: number, paths: ReturnType<typeof path>[]) => ({
    name,
    vni,
    loopPeers: [],
    blocked: true,
    quietTicks: 0,
    reason: '',
    beaconError: '',
    paths,
  });
  const report = (cdn: [number, number][], tel: [number, number]): LoopReport => {
    const networks = [
      net('cdn', 100, [path('site2', ...cdn[0]!), path('site3', ...cdn[1]!)]),
      net('tel', 200, [path('site2', ...tel)]),
    ];
    const all = networks.flatMap((n) => n.paths);
    return {
      at: '2026-01-01T00:00:00Z',
      networks,
      blockedDroppedIn: all.reduce((a, p) => a + p.blockedDroppedIn, 0),
      blockedDroppedOut: all.reduce((a, p) => a + p.blockedDroppedOut, 0),
    };
  };
  const series = async (network: string, direction: string) => {
    const re = new RegExp(
      `l2fed_gateway_loop_blocked_frames_total\\{network="${network}",direction="${direction}",gateway="site1"\\} (\\d+)`,
    );
    return Number(re.exec(await m.registry.metrics())?.[1]);
  };
  m.observeLoops(
    report(
      [
        [5, 1],
        [3, 0],
      ],
      [0, 0],
    ),
  );
  m.observeLoops(
    report(
      [
        [9, 1],
        [0, 2], // site3's chain was remade (a new bound): its counter restarted
      ],
      [4, 7],
    ),
  );
  t.is(await series('cdn', 'in'), 9 + 3, 'site2 5 → 9, site3 3 then 0 again');
  t.is(await series('cdn', 'out'), 1 + 2);
  t.is(await series('tel', 'in'), 4);
  t.is(await series('tel', 'out'), 7);
});

/** `nft -j list table inet l2fed_l2` of a v1 table (SPEC, [.2 . 100]), counters set by hand. */
const CAPTURED = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "l2fed_l2", "handle": 2}}, {"set": {"family": "inet", "name": "blocked", "table": "l2fed_l2", "type": ["ipv4_addr", "integer"], "handle": 3, "elem": [{"concat": ["198.19.255.2", 100]}]}}, {"set": {"family": "inet", "name": "beacons_out", "table": "l2fed_l2", "type": ["ipv4_addr", "integer", "integer"], "handle": 4, "size": 65536, "flags": ["timeout"], "timeout": 60}}, {"chain": {"family": "inet", "table": "l2fed_l2", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": -20, "policy": "accept"}}, {"chain": {"family": "inet", "table": "l2fed_l2", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": -20, "policy": "accept"}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "input", "handle": 5, "comment": "l2fed-l2 v1 wg=l2fwx port=4789 paths=198.19.255.2/100/50/20,198.19.255.3/100/50/20", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"base": "th", "offset": 96, "len": 24}}]}, "right": "@blocked"}}, {"counter": {"packets": 5, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "input", "handle": 6, "comment": "bum-in 198.19.255.2 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.19.255.2"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"&": [{"payload": {"base": "th", "offset": 128, "len": 8}}, 1]}, "right": 1}}, {"limit": {"rate": 50, "burst": 20, "per": "second", "inv": true}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "input", "handle": 7, "comment": "bum-in 198.19.255.3 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.19.255.3"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"&": [{"payload": {"base": "th", "offset": 128, "len": 8}}, 1]}, "right": 1}}, {"limit": {"rate": 50, "burst": 20, "per": "second", "inv": true}}, {"counter": {"packets": 7, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 8, "comment": "repeat 198.19.255.2 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.255.2"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 128, "len": 48}}, "right": 3763236924528}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 224, "len": 16}}, "right": 34997}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"payload": {"base": "th", "offset": 96, "len": 24}}, {"payload": {"base": "th", "offset": 240, "len": 32}}]}, "right": "@beacons_out"}}, {"counter": {"packets": 3, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 9, "comment": "repeat 198.19.255.3 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.255.3"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 128, "len": 48}}, "right": 3763236924528}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 224, "len": 16}}, "right": 34997}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"payload": {"base": "th", "offset": 96, "len": 24}}, {"payload": {"base": "th", "offset": 240, "len": 32}}]}, "right": "@beacons_out"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 128, "len": 48}}, "right": 3763236924528}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 224, "len": 16}}, "right": 34997}}, {"set": {"op": "add", "elem": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"payload": {"base": "th", "offset": 96, "len": 24}}, {"payload": {"base": "th", "offset": 240, "len": 32}}]}, "set": "@beacons_out"}}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 11, "comment": "blocked-out", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"payload": {"base": "th", "offset": 96, "len": 24}}]}, "right": "@blocked"}}, {"match": {"op": "!=", "left": {"payload": {"base": "th", "offset": 128, "len": 48}}, "right": 3763236924528}}, {"counter": {"packets": 2, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 12, "comment": "bum-out 198.19.255.2 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.255.2"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"&": [{"payload": {"base": "th", "offset": 128, "len": 8}}, 1]}, "right": 1}}, {"limit": {"rate": 50, "burst": 20, "per": "second", "inv": true}}, {"counter": {"packets": 11, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "l2fed_l2", "chain": "output", "handle": 13, "comment": "bum-out 198.19.255.3 100", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "l2fwx"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.255.3"}}, {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 100}}, {"match": {"op": "==", "left": {"&": [{"payload": {"base": "th", "offset": 128, "len": 8}}, 1]}, "right": 1}}, {"limit": {"rate": 50, "burst": 20, "per": "second", "inv": true}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}`;

test('gRPC - bumLimit per gateway and per network crosses gateway.v1 both ways; unset stays the default', (t) => {
  const input = {
    ...madridConfig('/k', [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'linux-bridge' as const, bridge: 'br-cdn' },
        peers: ['b'],
        bumLimit: { packetsPerSecond: 10, burst: 5 },
      },
    ]),
    bumLimit: { packetsPerSecond: 300, burst: 30 },
  };
  const back = parseGatewayConfig(configFromProto(configToProto(input)));
  t.deepEqual(back.bumLimit, { packetsPerSecond: 300, burst: 30 });
  t.deepEqual(back.networks[0]?.bumLimit, { packetsPerSecond: 10, burst: 5 });
  const plain = configToProto(madridConfig('/k', []));
  t.is(plain.bumLimit, undefined);
  t.deepEqual(parseGatewayConfig(configFromProto(plain)).bumLimit, DEFAULT_BUM_LIMIT);
  const bad = configToProto({ ...input, bumLimit: { packetsPerSecond: 0, burst: 30 } });
  t.throws(() => parseGatewayConfig(configFromProto(bad)), {
    message: /bumLimit\.packetsPerSecond: bumLimit\.packetsPerSecond must be at least 1/,
  });
});
