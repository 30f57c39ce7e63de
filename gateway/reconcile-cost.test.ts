/**
 * What an apply costs in a big gateway (issue 15): a one-item change runs commands for
 * that item only — O(networks of the peer), never O(peers × networks) — and a re-apply
 * runs none. Counted with the fakes (one log entry per mutating backend call = one
 * command on a real host), at 10 and 100 peers × 50 networks; the benchmark
 * (bench/gateway-reconcile.ts) reports the same counts.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  CHANGES,
  FULL,
  harness,
  measureChange,
  networksOf,
  peerName,
  type Shape,
} from '../bench/gateway-reconcile.js';
import { vxlanSources } from './firewall.js';
import { l2GuardScript } from './loop-guard.js';
import { l2GuardSpec } from './loop-monitor.js';
import { parseGatewayConfig } from './config.js';
import { changedGuardPaths, federation, measureGuardChange } from '../bench/gateway-reconcile.js';

const SMALL: Shape = { ...FULL, peers: 10 };

test('reconcile cost - apply from empty, then the same config: nothing runs the second time', async (t) => {
  const h = await harness(FULL);
  t.teardown(() => h.dispose());
  const first = await h.apply(h.base);
  t.true(first.mutating > FULL.networks * (FULL.peers / FULL.stride), 'from empty builds it all');
  const again = await h.apply(h.base);
  t.is(again.mutating, 0);
  t.deepEqual(again.steps, []);
});

for (const change of CHANGES) {
  test(`reconcile cost - ${change.label}: the same commands at 10 and 100 peers, within O(networks of that peer), and a re-apply runs none`, async (t) => {
    const small = await measureChange(SMALL, change);
    const full = await measureChange(FULL, change);
    t.is(
      full.change.mutating,
      small.change.mutating,
      `10 peers: ${small.change.steps.join(' ')}; 100 peers: ${full.change.steps.join(' ')}`,
    );
    t.true(
      full.change.mutating <= change.bound(FULL),
      `${full.change.mutating} commands > bound ${change.bound(FULL)}: ${full.change.steps.join(' ')}`,
    );
    t.is(full.reapply.mutating, 0, `re-apply ran ${full.reapply.steps.join(' ')}`);
  });

  test(`reconcile cost - ${change.label}: the guard's set gets only the pairs that change, the same at 10 and 100 peers`, async (t) => {
    const small = await measureChange(SMALL, change);
    const full = await measureChange(FULL, change);
    t.is(full.change.guardElements, small.change.guardElements);
    t.true(
      full.change.guardElements <= networksOf(FULL, FULL.peers).length + networksOf(FULL, 0).length,
      `${full.change.guardElements} pairs written`,
    );
  });
}

for (const change of CHANGES) {
  test(`reconcile cost - ${change.label}: the loop guard table gets bytes for the paths that change only, the same per path at 10 and 100 peers (100 and 1,000 paths); a check after writes nothing`, async (t) => {
    const small = await measureGuardChange(SMALL, change);
    const full = await measureGuardChange(FULL, change);
    const paths = [changedGuardPaths(SMALL, change), changedGuardPaths(FULL, change)] as const;
    t.log(
      `${change.label}: ${small.change.bytes} bytes for ${paths[0]} paths (of 100), ${full.change.bytes} bytes for ${paths[1]} paths (of 1,000)`,
    );
    t.is(full.again.bytes, 0, 'nothing changed: nothing written');
    t.true(full.change.commands <= 1, `${full.change.commands} nft commands`);
    if (paths[1] === 0) {
      t.is(full.change.bytes, 0);
      return;
    }
    const perPath = [small.change.bytes / paths[0], full.change.bytes / paths[1]] as const;
    t.true(
      perPath[1] <= perPath[0] * 1.1,
      `bytes per changed path grew with the table: ${perPath[0].toFixed(0)} at 100 paths, ${perPath[1].toFixed(0)} at 1,000`,
    );
    t.true(perPath[1] <= 2500, `${perPath[1].toFixed(0)} bytes per changed path`);
  });
}

test('reconcile cost - removing a peer touches only the flood lists of its own networks', async (t) => {
  const h = await harness(FULL);
  t.teardown(() => h.dispose());
  await h.apply(h.base);
  const c = CHANGES.find((x) => x.id === 'peer-removed')!.configs(h.base, FULL)[0]!;
  await h.apply(c);
  const devices = h.plane.log.mutations
    .filter((m) => m.startsWith('fdb '))
    .map((m) => m.split(' ')[2]);
  t.deepEqual(
    devices,
    networksOf(FULL, 0).map((j) => `l2fv${1000 + j}`),
  );
  t.false(
    h.plane.log.mutations.some((m) => / (link|segment) /.test(` ${m}`)),
    'no device or port changes',
  );
  t.is(peerName(0), 'p0');
});

test('reconcile cost - an apply reads the same number of commands at 5 and 50 networks (one FDB read for all devices)', async (t) => {
  const reads = async (networks: number) => {
    const h = await harness({ ...FULL, peers: 10, networks });
    t.teardown(() => h.dispose());
    await h.apply(h.base);
    return (await h.apply(h.base)).reads;
  };
  const [few, many] = [await reads(5), await reads(50)];
  t.is(many, few, `reads at 5 networks: ${few}, at 50: ${many}`);
});

test('reconcile cost - the loop guard table of 100 peers × 50 networks is one nft can load: every comment ≤ 128 characters', (t) => {
  // nft refuses a longer comment ("comment too long, 128 characters maximum allowed"),
  // and with it the whole `nft -f` transaction.
  const spec = l2GuardSpec(parseGatewayConfig(federation('/k', FULL)));
  const comments = [...l2GuardScript(spec, []).matchAll(/comment "([^"]*)"/g)].map((m) => m[1]!);
  t.true(comments.length > 0);
  const long = comments.filter((c) => c.length > 128);
  t.deepEqual(
    long.map((c) => `${c.slice(0, 60)}… (${c.length} characters)`),
    [],
  );
});

test('reconcile cost - vxlanSources sorts by address (numerically), then VNI, without duplicates', (t) => {
  const pair = fc.record({
    address: fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.${a}.${b}.1`),
    vni: fc.integer({ min: 1, max: 20 }),
  });
  fc.assert(
    fc.property(fc.array(pair, { maxLength: 60 }), (pairs) => {
      const num = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
      const want = [...new Map(pairs.map((p) => [`${p.address} ${p.vni}`, p])).values()].sort(
        (a, b) => num(a.address) - num(b.address) || a.vni - b.vni,
      );
      t.deepEqual(vxlanSources(pairs), want);
    }),
  );
});
