import test from 'ava';
import {
  parseRequestSubject,
  registerRequest,
  exportsRequest,
  peeringsRequest,
} from './protocol.js';
import { decodeRequest } from './request-handler.js';
import { parseEndpoint } from './names.js';
import { BadJsonError, InvalidRequestError, PayloadTooLargeError } from './errors.js';

const KEY = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const enc = (s: string) => new TextEncoder().encode(s);

test('subject - parses l2fed.v1.<id>.<verb> and explains what is wrong', (t) => {
  t.deepEqual(parseRequestSubject('l2fed.v1.madrid.register'), {
    type: 'ok',
    clusterId: 'madrid',
    verb: 'register',
  });
  const bad = [
    ['l2fed.v2.madrid.register', undefined],
    ['l2fed.v1.Madrid.register', 'clusterId'],
    ['l2fed.v1.madrid.fly', 'verb'],
    ['l2fed.v1.madrid', undefined],
  ] as const;
  for (const [s, field] of bad) {
    const r = parseRequestSubject(s);
    t.is(r.type, 'error', s);
    if (r.type === 'error') t.is(r.field, field, s);
  }
});

test('endpoint - accepts IPv4, [IPv6] and DNS names with a port in range', (t) => {
  t.deepEqual(parseEndpoint('198.18.0.1:51820'), { host: '198.18.0.1', port: 51820 });
  t.deepEqual(parseEndpoint('[2001:db8::1]:443'), { host: '2001:db8::1', port: 443 });
  t.deepEqual(parseEndpoint('gw-1.example.org:1'), { host: 'gw-1.example.org', port: 1 });
  for (const bad of [
    '198.18.0.1',
    '198.18.0.1:0',
    'h:65536',
    '[zz::1]:1',
    'UPPER.case:1',
    ':1',
    '2001:db8::1:443',
  ])
    t.is(parseEndpoint(bad), undefined, bad);
});

test('schemas - strict: unknown fields are rejected at every level', (t) => {
  t.false(registerRequest.safeParse({ publicKey: KEY, endpoints: ['a:1'], extra: 1 }).success);
  t.false(peeringsRequest.safeParse({ peerings: [{ remoteCluster: 'a', x: 1 }] }).success);
  t.true(peeringsRequest.safeParse({ peerings: [{ remoteCluster: 'a' }] }).success);
  t.false(exportsRequest.safeParse({ networks: ['-bad'] }).success);
  t.false(exportsRequest.safeParse({ networks: ['a'.repeat(64)] }).success);
  t.true(exportsRequest.safeParse({ networks: ['a'.repeat(63)] }).success);
  const r = registerRequest.parse({ publicKey: KEY, endpoints: ['a:1'] });
  t.deepEqual(r.capabilities, [], 'capabilities default to none');
});

test('register - vxlanPort: optional, a UDP port, named in the error', (t) => {
  const ok = { publicKey: KEY, endpoints: ['a:1'] };
  t.is(registerRequest.parse(ok).vxlanPort, undefined, 'an older agent sends none');
  t.is(registerRequest.parse({ ...ok, vxlanPort: 4797 }).vxlanPort, 4797);
  for (const bad of [0, 65_536, 4797.5, '4797', -1]) {
    const e = t.throws(
      () => decodeRequest('register', enc(JSON.stringify({ ...ok, vxlanPort: bad })), 4096),
      { instanceOf: InvalidRequestError },
      String(bad),
    );
    t.is(e?.field, 'vxlanPort', String(bad));
  }
});

test('decode - typed errors with the offending field', (t) => {
  t.throws(() => decodeRequest('exports', enc('{'), 1024), { instanceOf: BadJsonError });
  t.throws(() => decodeRequest('exports', enc('x'.repeat(2000)), 1024), {
    instanceOf: PayloadTooLargeError,
  });
  const e = t.throws(() => decodeRequest('exports', enc('{"networks":["ok"],"vni":5}'), 1024), {
    instanceOf: InvalidRequestError,
  });
  t.is(e?.field, 'vni');
  t.regex(e?.message ?? '', /unknown field.*"vni"/);
  t.deepEqual(decodeRequest('get', enc(''), 1024), {}, 'empty body = {}');
});

test('health - strict body: states, ranges, unique names, unknown fields rejected', (t) => {
  const good = {
    reportedAt: '2026-01-31T12:00:00.123Z',
    peers: [
      { cluster: 'bristol', state: 'up', rttMs: 0.8, lossPct: 0, lastHandshakeAgeSec: 4 },
      { cluster: 'athens', state: 'unknown' },
    ],
    networks: [{ name: 'cdn', vni: 4096, state: 'degraded', reason: 'not receiving' }],
  };
  t.deepEqual(decodeRequest('health', enc(JSON.stringify(good)), 65536), good);
  const bad: [unknown, string][] = [
    [{ ...good, reportedAt: 'yesterday' }, 'reportedAt'],
    [{ ...good, peers: [{ cluster: 'b', state: 'sideways' }] }, 'peers.0.state'],
    [{ ...good, peers: [{ cluster: 'b', state: 'up', lossPct: 101 }] }, 'peers.0.lossPct'],
    [{ ...good, peers: [good.peers[0], good.peers[0]] }, 'peers.1'],
    [{ ...good, networks: [{ name: 'cdn', vni: 0, state: 'up' }] }, 'networks.0.vni'],
    [{ ...good, extra: 1 }, 'extra'],
  ];
  for (const [body, field] of bad) {
    const err = t.throws(() => decodeRequest('health', enc(JSON.stringify(body)), 65536), {
      instanceOf: InvalidRequestError,
    });
    t.is(err?.field, field, JSON.stringify(body));
  }
});
