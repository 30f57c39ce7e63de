/**
 * Loop guard and broadcast bound, pure parts (gateway/loop-guard.ts, the spec in
 * loop-monitor.ts, the config fields): the decision table, the rule that exactly one
 * side of a loop blocks, the nft script and the parse of a table captured from nft
 * 1.0.6, the health fold-in, the metrics.
 */
import test from 'ava';
import fc from 'fast-check';
import { ConfigError } from './errors.js';
import { parseGatewayConfig, DEFAULT_BUM_LIMIT } from './config.js';
import {
  L2_GUARD_VERSION,
  blockScript,
  blockedPaths,
  decideLoops,
  l2GuardMarker,
  l2GuardScript,
  parseL2Guard,
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
  );
  t.pass();
});

const SPEC = {
  wgIfname: 'l2fwx',
  vxlanPort: 4789,
  paths: [
    { address: '198.19.255.2', vni: 100, packetsPerSecond: 50, burst: 20 },
    { address: '198.19.255.3', vni: 100, packetsPerSecond: 50, burst: 20 },
  ],
};

test('nft script - blocked set, beacon repeat per path, bound per path and direction', (t) => {
  const s = l2GuardScript(SPEC, [{ address: '198.19.255.2', vni: 100 }]);
  t.true(s.startsWith('table inet l2fed_l2 {}\ndelete table inet l2fed_l2\n'), 'one transaction');
  t.regex(s, /elements = \{ 198\.19\.255\.2 \. 100 \}/);
  t.regex(
    s,
    /iifname "l2fwx" udp dport 4789 ip saddr 198\.19\.255\.3 @th,96,24 100 @th,128,8 & 0x1 == 0x1 limit rate over 50\/second burst 20 packets counter drop comment "bum-in 198\.19\.255\.3 100"/,
  );
  t.regex(
    s,
    /@th,128,48 0x036c32666c70 @th,224,16 0x88b5 ip daddr \. @th,96,24 \. @th,240,32 @beacons_out counter drop comment "repeat 198\.19\.255\.2 100"/,
  );
  // The repeat check comes before the record, and both before the block; beacons and
  // probes have their own budget ahead of the bound, in both directions.
  t.true(s.indexOf('comment "control-in') < s.indexOf('comment "bum-in'));
  t.regex(
    s,
    /ip daddr 198\.19\.255\.2 @th,96,24 100 @th,128,48 \{ 0x036c32666c70, 0x0180c200000e \} @th,224,16 0x88b5 limit rate 10\/second burst 10 packets accept comment "control-out 198\.19\.255\.2 100"/,
  );
  const order = [
    'comment "repeat',
    'add @beacons_out',
    'comment "blocked-out"',
    'comment "control-out',
    'comment "bum-out',
  ];
  const at = order.map((x) => s.indexOf(x));
  t.deepEqual(
    [...at].sort((a, b) => a - b),
    at,
  );
  t.false(at.includes(-1));
  t.is(
    blockScript([{ address: '198.19.255.2', vni: 100 }], [{ address: '198.19.255.3', vni: 7 }]),
    'add element inet l2fed_l2 blocked { 198.19.255.2 . 100 }\ndelete element inet l2fed_l2 blocked { 198.19.255.3 . 7 }\n',
  );
});

test('nft parse - a table captured from nft 1.0.6: marker, blocked set, counters per path', (t) => {
  const o = parseL2Guard(CAPTURED);
  t.is(
    o.marker,
    'l2fed-l2 v1 wg=l2fwx port=4789 paths=198.19.255.2/100/50/20,198.19.255.3/100/50/20',
  );
  // Captured from a v1 table: the current marker differs, so it is replaced.
  t.not(l2GuardMarker(SPEC), o.marker);
  t.regex(
    l2GuardMarker(SPEC),
    new RegExp(`^l2fed-l2 v${L2_GUARD_VERSION} wg=l2fwx port=4789 paths=2 sha256=[0-9a-f]{32}$`),
  );
  t.not(L2_GUARD_VERSION, 1);
  t.deepEqual(o.blocked, [{ address: '198.19.255.2', vni: 100 }]);
  t.is(o.counters.repeats.get('198.19.255.2 100'), 3);
  t.is(o.counters.repeats.get('198.19.255.3 100'), 0);
  t.is(o.counters.bumDroppedIn.get('198.19.255.3 100'), 7);
  t.is(o.counters.bumDroppedOut.get('198.19.255.2 100'), 11);
  t.is(o.counters.blockedIn, 5);
  t.is(o.counters.blockedOut, 2);
  t.throws(() => parseL2Guard('not json'), { message: /not nftables JSON/ });
});

test('nft marker - any change of the bound, the paths, the tunnel or the port changes it', (t) => {
  const m = l2GuardMarker(SPEC);
  t.is(l2GuardMarker({ ...SPEC, paths: [...SPEC.paths].reverse() }), m, 'order-free');
  t.not(l2GuardMarker({ ...SPEC, vxlanPort: 4790 }), m);
  t.not(l2GuardMarker({ ...SPEC, wgIfname: 'l2fwy' }), m);
  t.not(l2GuardMarker({ ...SPEC, paths: [{ ...SPEC.paths[0]!, burst: 21 }, SPEC.paths[1]!] }), m);
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
        paths: [{ peer: 'site0', address: '198.19.255.1', bumDroppedIn: 0, bumDroppedOut: out }],
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

/** `nft -j list table inet l2fed_l2` of l2GuardScript(SPEC, [.2 . 100]), counters set by hand. */
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
