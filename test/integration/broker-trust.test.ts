/**
 * Trust between clusters on the control plane, against nats-server configured with
 * the credentials `broker gen-auth` makes: one cluster's credentials can neither make
 * the broker write for it (reply redirection) nor write, read or purge anything of
 * another cluster itself; the KV is byte-identical afterwards.
 */
import type { ExecutionContext } from 'ava';
import type { NatsConnection } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import {
  ALL_BUCKETS,
  dumpKv,
  eventually,
  registerBody,
  startAuthedNats,
  startBrokers,
  type AuthedNats,
} from '../fixtures/broker.js';
import { BUCKETS } from '../../broker/records.js';
import type { BrokerClient } from '../../broker/client.js';
import type { Broker } from '../../broker/broker.js';
import type { BrokerConfigInput } from '../../broker/config.js';

const test = testWith({ tools: ['nats-server'] });

/** Resolves to a description of how `p` ended; 'timed out' when nothing answered. */
async function outcome(p: Promise<unknown>, ms = 2000): Promise<string> {
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
  let v: unknown;
  try {
    v = await Promise.race([p, timeout]);
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
  if (v === 'timeout') return 'timed out';
  const m = v as { data?: Uint8Array };
  return `SUCCEEDED: ${m.data ? new TextDecoder().decode(m.data) : String(v)}`;
}

interface Federation {
  fed: AuthedNats;
  brokers: Broker[];
  clients: Record<'a' | 'b' | 'c', BrokerClient>;
  inspect: NatsConnection;
}

/** a, b, c registered; all export cdn; b and c peer, a peers b (b does not consent). */
async function federation(
  t: ExecutionContext,
  config: BrokerConfigInput = {},
): Promise<Federation> {
  const fed = await startAuthedNats(['a', 'b', 'c']);
  t.teardown(() => fed.dispose());
  const brokers = await startBrokers(
    fed.url,
    2,
    { reconcileIntervalMs: 0, ...config },
    fed.brokerConnect,
  );
  t.teardown(() => brokers.dispose());
  const [a, b, c] = await fed.clusterClients(['a', 'b', 'c']);
  await Promise.all([a, b, c].map((x, i) => x!.request('register', registerBody(i))));
  await Promise.all([a, b, c].map((x) => x!.request('exports', { networks: ['cdn'] })));
  await b!.request('peerings', { peerings: [{ remoteCluster: 'c' }] });
  await c!.request('peerings', { peerings: [{ remoteCluster: 'b' }] });
  await a!.request('peerings', { peerings: [{ remoteCluster: 'b' }] });
  t.is((await c!.peerMap())?.peers[0]?.cluster, 'b', 'c peers with b before the attack');
  return {
    fed,
    brokers: brokers.replicas,
    clients: { a: a!, b: b!, c: c! },
    inspect: await fed.connectBroker(),
  };
}

test('trust - a reply subject outside the requester inbox is never answered; KV byte-identical', async (t) => {
  const { fed, brokers, clients, inspect } = await federation(t);
  const before = await dumpKv(inspect);
  const ncA = clients.a.nc;
  const targets = [
    `$KV.${BUCKETS.peerMaps}.b`,
    `$KV.${BUCKETS.peerings}.b`,
    `$KV.${BUCKETS.clusters}.b`,
    ...ALL_BUCKETS.map((b) => `$JS.API.STREAM.PURGE.KV_${b}`),
    ...ALL_BUCKETS.map((b) => `$JS.API.STREAM.DELETE.KV_${b}`),
    '_INBOX_b.spoofed', // a fake reply into b's pending requests
    '_INBOX.spoofed', // the broker's own inbox
    '_INBOX_a', // the prefix itself is not an inbox subject
  ];
  const refused = () => brokers.reduce((n, b) => n + (b.stats.repliesRefused ?? 0), 0);
  for (const reply of targets) {
    // A valid request on a's own subject: only the reply subject is hostile. `get` is
    // read-only and `peerings` rewrites a's own (unchanged) declaration.
    ncA.publish('l2fed.v1.a.get', '{}', { reply });
    ncA.publish('l2fed.v1.a.peerings', JSON.stringify({ peerings: [{ remoteCluster: 'b' }] }), {
      reply,
    });
  }
  await ncA.flush();
  // The honest path still works.
  t.is((await clients.a.request('get')).cluster?.id, 'a');
  t.true(
    await eventually(() => Promise.resolve(refused() === targets.length * 2)),
    `every hostile request was dropped and counted (${refused()} of ${targets.length * 2})`,
  );
  t.is(await dumpKv(inspect), before, 'every bucket is byte-identical');
  t.is((await clients.c.peerMap())?.peers[0]?.cluster, 'b', 'c still peers with b');
  t.deepEqual(fed.brokerViolations(), [], 'the broker needed no right it lacks');
});

test("trust - with a's credentials every cross-cluster write, read and purge is refused; KV byte-identical", async (t) => {
  const { clients, inspect } = await federation(t);
  const before = await dumpKv(inspect);
  const ncA = clients.a.nc;
  const tried: string[] = [];
  const mustFail = async (what: string, p: Promise<unknown>) => {
    tried.push(what);
    t.regex(await outcome(p), /refused|timed out/, what);
  };
  for (const bucket of ALL_BUCKETS) {
    const stream = `KV_${bucket}`;
    for (const key of ['a', 'b']) {
      // Writes and deletes go through the KV subject; a's own key included.
      await mustFail(`write ${bucket}/${key}`, ncA.request(`$KV.${bucket}.${key}`, 'x'));
      // a reads its own peer map (allowed, tested in broker-isolation); nothing else.
      if (bucket !== BUCKETS.peerMaps || key !== 'a')
        await mustFail(
          `direct get ${bucket}/${key}`,
          ncA.request(`$JS.API.DIRECT.GET.${stream}.$KV.${bucket}.${key}`, '', { timeout: 1500 }),
        );
    }
    await mustFail(
      `watch ${bucket}/b`,
      ncA.request(`$JS.API.CONSUMER.CREATE.${stream}.x.$KV.${bucket}.b`, '{}', { timeout: 1500 }),
    );
    for (const api of [
      `STREAM.PURGE.${stream}`,
      `STREAM.DELETE.${stream}`,
      `STREAM.UPDATE.${stream}`,
      `STREAM.MSG.DELETE.${stream}`,
      `STREAM.MSG.GET.${stream}`,
      `STREAM.INFO.${stream}`,
      `CONSUMER.CREATE.${stream}`,
      `CONSUMER.LIST.${stream}`,
      `DIRECT.GET.${stream}`,
    ])
      await mustFail(api, ncA.request(`$JS.API.${api}`, '{}', { timeout: 1500 }));
  }
  for (const verb of ['get', 'deregister', 'peerings', 'rotate-key', 'announce-key', 'ack-key'])
    await mustFail(`request as b: ${verb}`, ncA.request(`l2fed.v1.b.${verb}`, '{}'));
  t.log(`${tried.length} cross-cluster operations tried, all refused`);
  t.is(await dumpKv(inspect), before, 'every bucket is byte-identical');
});

test('trust - the broker user holds no purge/delete of streams and no JetStream wildcard', async (t) => {
  const { fed, inspect } = await federation(t);
  for (const bucket of ALL_BUCKETS) {
    for (const api of [`STREAM.PURGE.KV_${bucket}`, `STREAM.DELETE.KV_${bucket}`])
      t.regex(await outcome(inspect.request(`$JS.API.${api}`, '{}')), /refused/, api);
  }
  t.regex(await outcome(inspect.request('$JS.API.STREAM.CREATE.OTHER', '{}')), /refused/);
  t.regex(await outcome(inspect.request('$JS.API.STREAM.LIST', '{}')), /refused/);
  // The server logged those refusals, so brokerViolations() (asserted empty elsewhere) sees them.
  t.true(fed.brokerViolations().length >= 2, fed.nats.server.output().slice(-500));
});

test('trust - even a broker that answered a hostile reply subject could not purge or delete a bucket: no allow_responses', async (t) => {
  // A second line behind isOwnInbox: a subscriber with the broker's own credentials that
  // answers whatever reply subject it is handed (as a broker bug would) is stopped by
  // the NATS permissions gen-auth writes, so no bucket changes.
  const { fed, clients, inspect } = await federation(t);
  const before = await dumpKv(inspect);
  const buggy = await fed.connectBroker();
  t.teardown(() => buggy.close());
  const sub = buggy.subscribe('l2fed.v1.a.get');
  let answered = 0;
  void (async () => {
    for await (const m of sub) {
      m.respond(new TextEncoder().encode('{}'));
      answered++;
    }
  })();
  await buggy.flush();
  // Only the JetStream API: KV keys are the broker's to write ($KV.<bucket>.>), so there
  // isOwnInbox (the test above) is the one guard.
  const targets = ALL_BUCKETS.flatMap((b) => [
    `$JS.API.STREAM.PURGE.KV_${b}`,
    `$JS.API.STREAM.DELETE.KV_${b}`,
  ]);
  for (const reply of targets) clients.a.nc.publish('l2fed.v1.a.get', '{}', { reply });
  await clients.a.nc.flush();
  t.true(
    await eventually(() => Promise.resolve(answered >= targets.length)),
    `the buggy subscriber answered ${answered} of ${targets.length}`,
  );
  await buggy.flush();
  t.is(await dumpKv(inspect), before, 'every bucket is byte-identical');
  // The honest path: a reply into the requester's own inbox still goes through.
  const ok = await clients.a.nc.request('l2fed.v1.a.get', '{}', { timeout: 5000 });
  t.truthy(ok.data.length);
});

test("trust - a cluster cannot re-register with a peer's public key read from its own peer map", async (t) => {
  const { clients, inspect } = await federation(t);
  const { a, b, c } = clients;
  // Full mesh: everyone consents to everyone.
  await a.request('peerings', { peerings: [{ remoteCluster: 'b' }, { remoteCluster: 'c' }] });
  await b.request('peerings', { peerings: [{ remoteCluster: 'a' }, { remoteCluster: 'c' }] });
  await c.request('peerings', { peerings: [{ remoteCluster: 'a' }, { remoteCluster: 'b' }] });
  const bKey = (await a.peerMap())!.peers.find((p) => p.cluster === 'b')!.publicKey;
  await a.request('deregister');
  const before = await dumpKv(inspect);
  const reply = await a.call('register', { ...registerBody(7), publicKey: bKey });
  t.false(reply.ok);
  if (!reply.ok) {
    t.is(reply.error.code, 'KEY_IN_USE');
    t.is(reply.error.field, 'publicKey');
    t.notRegex(reply.error.message, /\bb\b/, 'the holder is not named');
  }
  t.is(await dumpKv(inspect), before, 'nothing written');
  const keysInC = (await c.peerMap())!.peers.map((p) => p.publicKey);
  t.is(new Set(keysInC).size, keysInC.length, "c's peers have distinct keys");
});

/**
 * Consumers on the peer-map stream (the brokers' own ordered ones included). A count:
 * the broker user may not list consumers, nothing it runs needs that.
 */
async function consumerCount(inspect: NatsConnection): Promise<number> {
  const jsm = await inspect.jetstreamManager();
  return (await jsm.streams.info(`KV_${BUCKETS.peerMaps}`)).state.consumer_count;
}

/**
 * Creates n consumers on the peer-map stream filtered on a's own key, with a's
 * credentials, all at once; returns how many the server created.
 */
async function floodConsumers(
  t: ExecutionContext,
  a: BrokerClient,
  kind: 'durable' | 'ephemeral',
  n: number,
): Promise<number> {
  const ownKey = `$KV.${BUCKETS.peerMaps}.a`;
  const started = Date.now();
  const created = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const name = `${kind}${i}`;
      const config =
        kind === 'durable'
          ? { name, durable_name: name }
          : { name, deliver_subject: '_INBOX_a.hog' };
      try {
        const m = await a.nc.request(
          `$JS.API.CONSUMER.CREATE.KV_${BUCKETS.peerMaps}.${name}.${ownKey}`,
          JSON.stringify({
            stream_name: `KV_${BUCKETS.peerMaps}`,
            config: {
              ...config,
              filter_subject: ownKey,
              ack_policy: 'none',
              deliver_policy: 'last_per_subject',
            },
          }),
          { timeout: 5000 },
        );
        return !(JSON.parse(m.string()) as { error?: unknown }).error;
      } catch {
        return false;
      }
    }),
  );
  const ok = created.filter(Boolean).length;
  t.log(`${ok} of ${n} ${kind} consumers created in ${Date.now() - started} ms`);
  return ok;
}

/** Follows a's watch; resolves once an update mentioning `text` arrived after the call. */
function follow(t: ExecutionContext, a: BrokerClient) {
  const seen: string[] = [];
  let watch: Awaited<ReturnType<BrokerClient['watchPeerMap']>> | undefined;
  const ready = a.watchPeerMap().then((w) => {
    watch = w;
    t.teardown(() => w.stop());
    void (async () => {
      for await (const e of w) seen.push(e.string());
    })();
  });
  return {
    ready,
    stop: () => watch?.stop(),
    async sees(text: string, change: () => Promise<unknown>): Promise<boolean> {
      const from = seen.length;
      await change();
      return eventually(
        () => Promise.resolve(seen.slice(from).some((x) => x.includes(text))),
        5000,
      );
    },
  };
}

test('trust - a cluster cannot create consumers, not even on its own peer-map key; its watch needs none', async (t) => {
  const { clients, inspect, fed } = await federation(t);
  const a = clients.a;
  const w = follow(t, a);
  await w.ready;
  const consumers = await consumerCount(inspect);
  t.is(await floodConsumers(t, a, 'durable', 200), 0, 'every create refused by NATS');
  t.is(await floodConsumers(t, a, 'ephemeral', 20), 0);
  t.is(await consumerCount(inspect), consumers, 'no consumer added to the peer-map stream');
  t.true(
    await w.sees('extra', () => a.request('exports', { networks: ['cdn', 'extra'] })),
    "a's watch follows its map (the broker pushes it on l2fed.peermap.a)",
  );
  t.deepEqual(fed.brokerViolations(), []);
});

test('trust - per-cluster quotas: too many peerings or exports, or export churn, are refused by name; KV byte-identical', async (t) => {
  const { clients, inspect } = await federation(t, {
    vniRange: { first: 100, last: 119 },
    maxVniAllocationsPerCluster: 4,
  });
  const { a, b } = clients;
  const before = await dumpKv(inspect);
  const unknown = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ remoteCluster: `ghost-${i}` }));
  let started = Date.now();
  const many = await a.call('peerings', { peerings: unknown(1024) });
  const refusedMs = Date.now() - started;
  t.false(many.ok);
  if (!many.ok) {
    t.is(many.error.code, 'QUOTA_EXCEEDED');
    t.regex(many.error.message, /at most 256 peerings.*maxPeeringsPerCluster = 256/);
  }
  // Four new names use a's whole allocation window; churning to new ones is refused.
  await a.request('exports', { networks: ['cdn', 'n1', 'n2', 'n3'] });
  const afterExports = await dumpKv(inspect);
  t.not(afterExports, before);
  const churn = await a.call('exports', { networks: ['m1', 'm2'] });
  t.false(churn.ok);
  if (!churn.ok) {
    t.is(churn.error.code, 'QUOTA_EXCEEDED');
    t.is(churn.error.field, 'networks');
    t.regex(churn.error.message, /maxVniAllocationsPerCluster = 4/);
  }
  t.is(await dumpKv(inspect), afterExports, 'the refused requests changed nothing');
  // b is not affected by a's quota.
  t.is((await b.request('exports', { networks: ['cdn', 'b1', 'b2'] })).networks.length, 3);
  started = Date.now();
  await a.request('peerings', { peerings: unknown(256) });
  t.log(
    `1,024 unknown peerings refused in ${refusedMs} ms; 256 (the limit) handled in ${Date.now() - started} ms`,
  );
});

test('trust - clusters racing to register one public key through two replicas: exactly one gets it', async (t) => {
  const ids = ['p', 'q', 'r', 's', 'u', 'v'];
  const fed = await startAuthedNats(ids);
  t.teardown(() => fed.dispose());
  const brokers = await startBrokers(fed.url, 2, { reconcileIntervalMs: 0 }, fed.brokerConnect);
  t.teardown(() => brokers.dispose());
  const clients = await fed.clusterClients(ids);
  for (let round = 0; round < 5; round++) {
    const body = registerBody(round);
    const replies = await Promise.all(clients.map((c) => c.call('register', body)));
    const won = replies.filter((r) => r.ok);
    t.is(won.length, 1, `round ${round}: one winner`);
    for (const r of replies) if (!r.ok) t.is(r.error.code, 'KEY_IN_USE');
    const winner = clients[replies.findIndex((r) => r.ok)]!;
    await winner.request('deregister'); // frees the key for the next round
  }
  t.deepEqual(fed.brokerViolations(), []);
});
