/**
 * One MTU per federated network (issue 12) through the real broker: real nats-server
 * with JetStream and the credentials `broker gen-auth` makes, two broker replicas, each
 * cluster on its own credentials. The agreed MTU reaches every member's peer map (read
 * as the agent reads it), follows joins and leaves, and a bad ask changes nothing in KV.
 */
import type { ExecutionContext } from 'ava';
import { testWith } from '../fixtures/privileges.js';
import {
  dumpKv,
  eventually,
  registerBody,
  startAuthedNats,
  startBrokers,
} from '../fixtures/broker.js';
import { decodePeerMap, type BrokerClient } from '../../broker/client.js';
import { BrokerReplyError } from '../../broker/errors.js';
import type { PeerMap } from '../../broker/records.js';

const test = testWith({ tools: ['nats-server'] });

async function setup(t: ExecutionContext, ids: string[]) {
  const fx = await startAuthedNats(ids);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 2, {}, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(ids);
  t.teardown(() => conn.close());
  await Promise.all(conn.clients.map((c, i) => c.request('register', registerBody(i))));
  // Everybody peers with everybody.
  await Promise.all(
    conn.clients.map((c, i) =>
      c.request('peerings', {
        peerings: ids.filter((_, j) => j !== i).map((remoteCluster) => ({ remoteCluster })),
      }),
    ),
  );
  const c = Object.fromEntries(ids.map((id, i) => [id, conn.clients[i]!])) as Record<
    string,
    BrokerClient
  >;
  return { c, nc: conn.nc };
}

const cdnMtu = (m: PeerMap | undefined) => m?.networks.find((n) => n.name === 'cdn')?.mtu;

test('mtu - 1280 in madrid, auto (1370) in bristol: both peer maps carry 1280, set by madrid', async (t) => {
  const { c } = await setup(t, ['madrid', 'bristol']);
  const b = await c.bristol!.request('exports', {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', capacity: 1370 }],
  });
  t.is(b.networks[0]?.mtu?.value, 1370);
  // bristol follows its map as the agent does: a watch on its own key.
  const watch = await c.bristol!.watchPeerMap();
  t.teardown(() => watch.stop());
  const seen: PeerMap[] = [];
  void (async () => {
    for await (const e of watch) {
      const m = decodePeerMap(e);
      if (m) seen.push(m);
    }
  })();
  const m = await c.madrid!.request('exports', {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', requested: 1280, capacity: 1370 }],
  });
  const agreed = { value: 1280, setBy: 'madrid', limit: 'requested' };
  t.deepEqual(m.networks[0]?.mtu, agreed, 'the exports reply');
  t.deepEqual(cdnMtu(await c.madrid!.peerMap()), agreed);
  t.deepEqual(cdnMtu(await c.bristol!.peerMap()), agreed, "the larger side's map");
  t.true(
    await eventually(() => Promise.resolve(seen.some((x) => cdnMtu(x)?.value === 1280))),
    "bristol's watch delivered the lowered MTU",
  );
});

test('mtu - a later member lowers it for all; its leaving raises it again', async (t) => {
  const { c } = await setup(t, ['a', 'b', 'c']);
  for (const id of ['a', 'b'])
    await c[id]!.request('exports', {
      networks: ['cdn'],
      mtu: [{ network: 'cdn', capacity: 1370 }],
    });
  t.is(cdnMtu(await c.a!.peerMap())?.value, 1370);
  await c.c!.request('exports', { networks: ['cdn'], mtu: [{ network: 'cdn', capacity: 1300 }] });
  for (const id of ['a', 'b', 'c'])
    t.deepEqual(cdnMtu(await c[id]!.peerMap()), { value: 1300, setBy: 'c', limit: 'capacity' }, id);
  await c.c!.request('deregister', {});
  for (const id of ['a', 'b']) t.is(cdnMtu(await c[id]!.peerMap())?.value, 1370, id);
});

test('mtu - an older agent (no mtu field) is a silent member; a bad ask changes nothing', async (t) => {
  const { c, nc } = await setup(t, ['madrid', 'bristol']);
  await c.bristol!.request('exports', { networks: ['cdn'] });
  await c.madrid!.request('exports', {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', capacity: 1370 }],
  });
  t.deepEqual(cdnMtu(await c.bristol!.peerMap()), {
    value: 1370,
    setBy: 'madrid',
    limit: 'capacity',
    silent: ['bristol'],
  });
  const before = await dumpKv(nc);
  for (const [mtu, field, says] of [
    [
      [{ network: 'cdn', requested: 1000, capacity: 1370 }],
      'mtu.0.requested',
      /cluster "madrid".*1000.*at least 1280/,
    ],
    [[{ network: 'cdn', capacity: 900 }], 'mtu.0.capacity', /cluster "madrid".*900.*at least 1280/],
    [[{ network: 'cdn', capacity: 'lots' }], 'mtu.0.capacity', /integer/],
    [[{ network: 'cdn', capacity: 1e7 }], 'mtu.0.capacity', /at most 65535/],
  ] as const) {
    const err = await t.throwsAsync(
      c.madrid!.request('exports', { networks: ['cdn'], mtu } as never),
      { instanceOf: BrokerReplyError },
    );
    t.is(err?.code, 'INVALID_REQUEST');
    t.is(err?.field, field);
    t.regex(err?.message ?? '', says);
  }
  t.is(await dumpKv(nc), before, 'KV byte-identical after the refusals');
});
