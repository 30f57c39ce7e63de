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
