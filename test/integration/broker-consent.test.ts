import type { ExecutionContext } from 'ava';
import { testWith } from '../fixtures/privileges.js';
import { eventually, registerBody, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { decodePeerMap, type BrokerClient } from '../../broker/client.js';
import { KvStore } from '../../broker/kv-store.js';
import type { PeerMap, PeeringDecl } from '../../broker/records.js';

const test = testWith({ tools: ['nats-server'] });

async function setup(t: ExecutionContext, ids: string[]) {
  const fx = await startAuthedNats(ids);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 2, {}, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(ids);
  t.teardown(() => conn.close());
  await Promise.all(conn.clients.map((c, i) => c.request('register', registerBody(i))));
  return Object.fromEntries(ids.map((id, i) => [id, conn.clients[i]!])) as Record<
    string,
    BrokerClient
  >;
}

const peersOf = (m: PeerMap | undefined) =>
  Object.fromEntries((m?.peers ?? []).map((p) => [p.cluster, p.networks.map((n) => n.name)]));

test('consent - one-sided declaration gives no entry, both sides give one, withdrawal removes it', async (t) => {
  const c = await setup(t, ['madrid', 'bristol']);
  const { madrid, bristol } = c as Record<'madrid' | 'bristol', BrokerClient>;
  await madrid.request('exports', { networks: ['cdn', 'iot'] });
  await bristol.request('exports', { networks: ['cdn'] });

  await madrid.request('peerings', { peerings: [{ remoteCluster: 'bristol' }] });
  t.deepEqual(peersOf(await madrid.peerMap()), {}, 'one-sided: madrid map has no bristol');
  t.deepEqual(peersOf(await bristol.peerMap()), {}, 'one-sided: bristol map has no madrid');

  // Watch madrid's map while bristol consents.
  const watch = await madrid.watchPeerMap();
  t.teardown(() => watch.stop());
  const seen: PeerMap[] = [];
  void (async () => {
    for await (const e of watch) {
      const m = decodePeerMap(e);
      if (m) seen.push(m);
    }
  })();

  await bristol.request('peerings', { peerings: [{ remoteCluster: 'madrid' }] });
  const m = await madrid.peerMap();
  t.deepEqual(peersOf(m), { bristol: ['cdn'] }, 'both sides: only the network both export');
  t.deepEqual(peersOf(await bristol.peerMap()), { madrid: ['cdn'] });
  const peer = m!.peers[0]!;
  const b = await bristol.request('get');
  t.is(peer.publicKey, b.cluster!.publicKey);
  t.is(peer.transitAddress, b.cluster!.transitAddress);
  t.deepEqual(peer.endpoints, b.cluster!.endpoints);
  t.is(peer.networks[0]!.vni, m!.networks.find((n) => n.name === 'cdn')!.vni);
  t.true(
    await eventually(() => Promise.resolve(seen.some((x) => x.peers.length === 1))),
    'the watch delivered the new map',
  );

  await bristol.request('peerings', { peerings: [] });
  t.deepEqual(peersOf(await madrid.peerMap()), {}, 'withdrawal removes the entry');
  t.deepEqual(peersOf(await bristol.peerMap()), {});
});

test('consent - clusters whose VXLAN ports differ are withheld from each other, with why; re-registering with one port pairs them', async (t) => {
  const c = await setup(t, ['madrid', 'bristol']);
  const { madrid, bristol } = c as Record<'madrid' | 'bristol', BrokerClient>;
  const body = async (cl: BrokerClient, vxlanPort: number) => {
    const me = await cl.request('get');
    return {
      publicKey: me.cluster!.publicKey,
      endpoints: [...me.cluster!.endpoints],
      capabilities: ['wireguard-go'],
      vxlanPort,
    };
  };
  await madrid.request('register', await body(madrid, 4797));
  await bristol.request('register', await body(bristol, 4789));
  for (const cl of [madrid, bristol]) {
    await cl.request('exports', { networks: ['cdn'] });
  }
  await madrid.request('peerings', { peerings: [{ remoteCluster: 'bristol' }] });
  await bristol.request('peerings', { peerings: [{ remoteCluster: 'madrid' }] });
  const m = await madrid.peerMap();
  t.deepEqual(peersOf(m), {}, 'no tunnel between the two ports');
  t.like(m?.withheld?.[0], { cluster: 'bristol', reason: 'VxlanPortMismatch' });
  t.regex(m?.withheld?.[0]?.message ?? '', /madrid uses 4797, bristol uses 4789/);
  t.like((await bristol.peerMap())?.withheld?.[0], { cluster: 'madrid' });

  // A port outside 1..65535 is refused, naming the field; the record keeps its port.
  const bad = await t.throwsAsync(bristol.request('register', await body(bristol, 70_000)));
  t.regex(bad?.message ?? '', /vxlanPort/);
  t.is((await bristol.request('get')).cluster!.vxlanPort, 4789);

  await bristol.request('register', await body(bristol, 4797));
  t.deepEqual(peersOf(await madrid.peerMap()), { bristol: ['cdn'] });
  t.false('withheld' in (await madrid.peerMap())!);
  t.deepEqual(peersOf(await bristol.peerMap()), { madrid: ['cdn'] });
});

test('consent - carried networks are the intersection of both declarations and both exports', async (t) => {
  const c = await setup(t, ['x', 'y', 'z']);
  const { x, y, z } = c as Record<'x' | 'y' | 'z', BrokerClient>;
  await x.request('exports', { networks: ['a', 'b', 'c', 'd'] });
  await y.request('exports', { networks: ['a', 'b', 'c', 'e'] });
  await z.request('exports', { networks: ['a', 'd'] });

  await x.request('peerings', {
    peerings: [{ remoteCluster: 'y', networks: ['a', 'b', 'e'] }, { remoteCluster: 'z' }],
  });
  await y.request('peerings', { peerings: [{ remoteCluster: 'x', networks: ['b', 'c', 'a'] }] });
  await z.request('peerings', { peerings: [{ remoteCluster: 'x', networks: ['d', 'q'] }] });

  // x-y: x offers a,b,e; y offers a,b,c; both export a,b. e: y exports but x does not.
  t.deepEqual(peersOf(await x.peerMap()), { y: ['a', 'b'], z: ['d'] });
  t.deepEqual(peersOf(await y.peerMap()), { x: ['a', 'b'] });
  t.deepEqual(peersOf(await z.peerMap()), { x: ['d'] });

  // An export change re-derives the maps: x stops exporting b.
  await x.request('exports', { networks: ['a', 'c', 'd'] });
  t.deepEqual(peersOf(await y.peerMap()), { x: ['a'] });
  // Deregistration of z removes it from x's map.
  await z.request('deregister');
  t.deepEqual(peersOf(await x.peerMap()), { y: ['a'] });
  t.is(await z.peerMap(), undefined);
});

test('consent - reconcile repairs a damaged peer map and removes an orphaned one', async (t) => {
  const fx = await startAuthedNats(['p', 'q']);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 1, { reconcileIntervalMs: 0 }, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(['p', 'q']);
  t.teardown(() => conn.close());
  const [p, q] = conn.clients as [BrokerClient, BrokerClient];
  await p.request('register', registerBody(1));
  await q.request('register', registerBody(2));
  await p.request('peerings', { peerings: [{ remoteCluster: 'q' }] });
  await q.request('peerings', { peerings: [{ remoteCluster: 'p' }] });
  const good = await p.peerMap();

  // Simulate a replica that died before refreshing maps: wrong content, and a map
  // for a cluster that does not exist.
  const store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  await store.put('peerMaps', 'p', { ...good, peers: [] });
  await store.put('peerMaps', 'ghost', { ...good, cluster: 'ghost' });
  t.deepEqual((await p.peerMap())?.peers, []);

  const r = await brokers.replicas[0]!.reconcile();
  t.is(r.refreshed, 3);
  t.deepEqual(await p.peerMap(), good);
  t.is(await store.get('peerMaps', 'ghost'), undefined);
});

test('consent - maps converge under concurrent churn through 3 replicas', async (t) => {
  const ids = Array.from({ length: 12 }, (_, i) => `m${i}`);
  const fx = await startAuthedNats(ids);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 3, { reconcileIntervalMs: 0 }, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(ids);
  t.teardown(() => conn.close());
  const c = conn.clients;
  const bodies = ids.map((_, i) => registerBody(i));
  const registered = await Promise.all(c.map((cl, i) => cl.request('register', bodies[i])));
  const pick = <T>(xs: T[], n: number) => [...xs].sort(() => Math.random() - 0.5).slice(0, n);
  const nets = ['a', 'b', 'c', 'd'];
  // What each cluster last declared: the expected maps are derived from this below.
  const lastExports = new Map<string, string[]>(ids.map((id) => [id, []]));
  const lastPeerings = new Map<string, PeeringDecl[]>(ids.map((id) => [id, []]));
  // Each cluster sends its own requests one after another; clusters run concurrently.
  await Promise.all(
    c.map(async (cl, i) => {
      for (let step = 0; step < 6; step++) {
        if (Math.random() < 0.4) {
          const networks = pick(nets, 1 + Math.floor(Math.random() * 3));
          await cl.request('exports', { networks });
          lastExports.set(ids[i]!, networks);
        } else {
          const others = ids.filter((_, j) => j !== i);
          const peerings = pick(others, Math.floor(Math.random() * 6)).map((remoteCluster) =>
            Math.random() < 0.5 ? { remoteCluster } : { remoteCluster, networks: pick(nets, 2) },
          );
          await cl.request('peerings', { peerings });
          lastPeerings.set(ids[i]!, peerings);
        }
      }
    }),
  );
  const states = await Promise.all(c.map((cl) => cl.request('get')));
  // One VNI per network name across the federation, as the clusters' own exports report it.
  const vniOf = new Map<string, number>();
  for (const s of states) {
    for (const n of s.networks) {
      t.is(vniOf.get(n.name) ?? n.vni, n.vni, `one VNI for ${n.name}`);
      vniOf.set(n.name, n.vni);
    }
  }
  // The rules written out here, independently of broker/peer-map.ts: a peer only when
  // both declare each other; it carries what both export and both declarations offer.
  const ref = (name: string) => ({ name, vni: vniOf.get(name)! });
  const expected = (x: string, i: number): PeerMap => {
    const peers = ids.flatMap((y, j) => {
      const mine = lastPeerings.get(x)!.find((d) => d.remoteCluster === y);
      const theirs = lastPeerings.get(y)!.find((d) => d.remoteCluster === x);
      if (!mine || !theirs) return [];
      const ex = lastExports.get(x)!;
      const ey = lastExports.get(y)!;
      const carried = ex.filter(
        (n) =>
          ey.includes(n) &&
          (mine.networks ?? ex).includes(n) &&
          (theirs.networks ?? ey).includes(n),
      );
      return [
        {
          cluster: y,
          endpoints: bodies[j]!.endpoints,
          publicKey: bodies[j]!.publicKey,
          transitAddress: registered[j]!.cluster.transitAddress,
          networks: carried.sort().map(ref),
        },
      ];
    });
    return {
      cluster: x,
      transitAddress: registered[i]!.cluster.transitAddress,
      networks: [...lastExports.get(x)!].sort().map(ref),
      peers: peers.sort((p, q) => (p.cluster < q.cluster ? -1 : 1)),
    };
  };
  states.forEach((s, i) => t.deepEqual(s.peerMap, expected(ids[i]!, i), `map of ${ids[i]}`));
  t.true(brokers.replicas.every((b) => b.stats.handled > 0));
});
