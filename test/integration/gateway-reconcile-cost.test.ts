/**
 * The cheap paths of a big gateway's apply (issue 15) against the real tools, in a
 * throwaway namespace: the guard's set changed by elements (nft), the loop guard table
 * with many paths (nft's 128-character comment limit) changed path by path, and one FDB
 * read for every VXLAN device (iproute2). Counts are in gateway/reconcile-cost.test.ts
 * (fakes).
 */
import type { ExecutionContext } from 'ava';
import { CommandError } from '../../lib/errors.js';
import { ExecaRunner } from '../../lib/runner.js';
import { FULL, federation } from '../../bench/gateway-reconcile.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { vxlanSourceChange, vxlanSources, type FirewallSpec } from '../../gateway/firewall.js';
import { DEFAULT_NFT, NftFirewall } from '../../gateway/firewall-nft.js';
import { IpLinks } from '../../gateway/links-ip.js';
import {
  l2GuardChange,
  l2GuardChangeScript,
  l2GuardMarker,
  l2GuardScript,
  parseL2Guard,
  type L2GuardSpec,
} from '../../gateway/loop-guard.js';
import { l2GuardSpec } from '../../gateway/loop-monitor.js';
import { desiredState } from '../../gateway/model.js';
import { createNetns } from '../fixtures/netns.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'nft'] });

async function namespace(t: ExecutionContext) {
  const runner = new ExecaRunner();
  const set = createNetns(runner);
  t.teardown(() => set.dispose());
  return { runner, ns: await set.add('rc') };
}

test('guard - a set that alone differs changes by its elements; a failing change changes nothing', async (t) => {
  const { runner, ns } = await namespace(t);
  const fw = new NftFirewall({ runner, netns: ns });
  // 20 peers × 10 networks, each peer on 2: 40 pairs.
  const config = parseGatewayConfig(federation('/k', { peers: 20, networks: 10, stride: 5 }));
  const want = desiredState(config, 'x').firewall;
  await fw.set(want);
  const have = await fw.read();
  t.true(have?.intact);
  t.deepEqual(have?.spec, want);

  // Peer p0 (198.19.0.3) leaves, a new pair arrives: only those elements change.
  const next: FirewallSpec = {
    ...want,
    vxlanFrom: vxlanSources([
      ...want.vxlanFrom.filter((p) => p.address !== '198.19.0.3'),
      { address: '198.19.0.200', vni: 1000 },
    ]),
  };
  const change = vxlanSourceChange(next, have);
  t.is(change?.add.length, 1);
  t.is(change?.del.length, 2);
  await fw.set(next, change);
  const after = await fw.read();
  t.true(after?.intact, 'rules and marker untouched');
  t.deepEqual(after?.spec, next);

  // One transaction: a delete of a pair the set lacks fails it, and the add with it.
  const err = await t.throwsAsync(
    fw.set(next, {
      add: [{ address: '198.19.0.201', vni: 1000 }],
      del: [{ address: '198.19.9.9', vni: 1 }],
    }),
    { instanceOf: CommandError },
  );
  t.truthy(err);
  t.deepEqual((await fw.read())?.spec, next);
});

test('loop guard - a table of 100 paths loads: its marker fits nft comments (128 characters)', async (t) => {
  const { runner, ns } = await namespace(t);
  // 20 peers × 5 networks, every peer on every network.
  const spec = l2GuardSpec(
    parseGatewayConfig(federation('/k', { peers: 20, networks: 5, stride: 1 })),
  );
  t.is(spec.paths.length, 100);
  const r = await runner.run([DEFAULT_NFT, '-f', '-'], {
    netns: ns,
    input: l2GuardScript(spec, []),
    mutates: true,
    allowFailure: true,
  });
  t.is(r.exitCode, 0, r.stderr);
  const listed = await runner.run([DEFAULT_NFT, '-j', 'list', 'table', 'inet', 'l2fed_l2'], {
    netns: ns,
  });
  t.is(parseL2Guard(listed.stdout).marker, l2GuardMarker(spec));
});

test('loop guard - 1,000 paths: a path added, removed or re-bounded is one small nft -f of that path; nft reads back exactly the spec, and then nothing differs', async (t) => {
  const { runner, ns } = await namespace(t);
  const nft = async (input: string) => {
    const t0 = performance.now();
    const r = await runner.run([DEFAULT_NFT, '-f', '-'], {
      netns: ns,
      input,
      mutates: true,
      allowFailure: true,
    });
    t.is(r.exitCode, 0, r.stderr);
    return { ms: performance.now() - t0, bytes: Buffer.byteLength(input) };
  };
  const read = async () => {
    const t0 = performance.now();
    const r = await runner.run([DEFAULT_NFT, '-j', 'list', 'table', 'inet', 'l2fed_l2'], {
      netns: ns,
    });
    return { table: parseL2Guard(r.stdout), ms: performance.now() - t0, bytes: r.stdout.length };
  };
  // 100 peers × 50 networks, each peer on 10: 1,000 paths (bench/gateway-reconcile.ts FULL).
  const spec = l2GuardSpec(parseGatewayConfig(federation('/k', FULL)));
  t.is(spec.paths.length, 1000);
  const same = (want: L2GuardSpec, have: Awaited<ReturnType<typeof read>>['table']) => {
    t.is(have.marker, l2GuardMarker(want));
    t.is(have.paths.size, want.paths.length);
    t.is(have.partial.size, 0);
    t.is(l2GuardChange(want, have), undefined, 'nothing differs');
  };
  const blocked = [{ address: spec.paths[0]!.address, vni: spec.paths[0]!.vni }];
  const whole = await nft(l2GuardScript(spec, blocked));
  const first = await read();
  same(spec, first.table);
  t.deepEqual(first.table.blocked, blocked);
  t.log(
    `whole table: ${whole.bytes} bytes in ${whole.ms.toFixed(0)} ms; listing ${first.bytes} bytes in ${first.ms.toFixed(0)} ms`,
  );

  const step = async (label: string, want: L2GuardSpec) => {
    const change = l2GuardChange(want, (await read()).table);
    t.truthy(change, label);
    const r = await nft(l2GuardChangeScript(change!, { add: [], del: [] }));
    t.log(`${label}: ${r.bytes} bytes in ${r.ms.toFixed(0)} ms`);
    t.true(r.bytes < 40_000, `${label}: ${r.bytes} bytes`);
    same(want, (await read()).table);
    return r;
  };
  const [p0] = spec.paths as [L2GuardSpec['paths'][number]];
  const added = { ...p0, address: '198.19.9.9' };
  const one = await step('one path added', { ...spec, paths: [...spec.paths, added] });
  await step('one path removed', spec);
  const network = spec.paths.filter((p) => p.vni === p0.vni);
  const rebound = await step(`one network's bound (${network.length} paths)`, {
    ...spec,
    paths: spec.paths.map((p) =>
      p.vni === p0.vni ? { ...p, packetsPerSecond: 50, burst: 10 } : p,
    ),
  });
  // Times are logged, not asserted (a shared box); the bytes are what the change costs.
  t.true(one.bytes < whole.bytes / 500);
  t.true(rebound.bytes < whole.bytes / 20);
  t.deepEqual((await read()).table.blocked, blocked, 'blocks untouched');
});

test('bridge fdb - one read of every device gives each VXLAN device what its own read gives', async (t) => {
  const { runner, ns } = await namespace(t);
  const ip = (...argv: string[]) => runner.run(argv, { netns: ns, mutates: true });
  await ip('ip', 'link', 'add', 'brx', 'type', 'bridge');
  for (const vni of [1, 2, 3]) {
    const dev = `l2fv${vni}`;
    await ip('ip', 'link', 'add', dev, 'type', 'vxlan', 'id', `${vni}`, 'local', '198.19.0.1');
    await ip('ip', 'link', 'set', dev, 'master', 'brx');
    await ip('ip', 'link', 'set', dev, 'up');
    for (const dst of [`198.19.0.${vni + 10}`, '198.19.0.99']) {
      await ip('bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', dev, 'dst', dst);
    }
  }
  // As the kernel would learn one from the tunnel (not static).
  await ip(
    'bridge',
    'fdb',
    'add',
    '02:00:00:00:00:02',
    'dev',
    'l2fv2',
    'dst',
    '198.19.0.12',
    'dynamic',
  );
  const links = new IpLinks({ runner, netns: ns });
  const devs = ['l2fv1', 'l2fv2', 'l2fv3'];
  const all = await links.fdbAll(devs);
  for (const dev of devs) t.deepEqual(all.get(dev), await links.fdb(dev), dev);
  t.deepEqual(all.get('l2fv2')?.learned, [{ mac: '02:00:00:00:00:02', dst: '198.19.0.12' }]);
  t.deepEqual(all.get('l2fv3')?.remotes, ['198.19.0.13', '198.19.0.99']);
});
