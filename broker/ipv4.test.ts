import test from 'ava';
import { intToIpv4, ipv4ToInt, parseIpv4Pool, poolAddress } from './ipv4.js';

test('ipv4 - pool skips network and broadcast addresses and wraps', (t) => {
  const p = parseIpv4Pool('100.64.0.0/29')!;
  t.is(p.size, 6);
  t.is(poolAddress(p, 0), '100.64.0.1');
  t.is(poolAddress(p, 5), '100.64.0.6');
  t.is(poolAddress(p, 6), '100.64.0.1');
  t.is(intToIpv4(ipv4ToInt('255.1.2.3')!), '255.1.2.3');
});

test('ipv4 - rejects malformed or unaligned CIDRs', (t) => {
  for (const bad of [
    '100.64.0.1/16',
    '100.64.0.0',
    '100.64.0.0/31',
    '300.0.0.0/8',
    '1.2.3/24',
    '01.2.3.0/24',
  ])
    t.is(parseIpv4Pool(bad), undefined, bad);
});
