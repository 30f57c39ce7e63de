import { testWith } from '../fixtures/privileges.js';
import { startNatsCluster } from '../fixtures/nats.js';
import { connect, type JetStreamManager } from 'nats';
import { registerBody, startBrokers } from '../fixtures/broker.js';
import { connectOptionsFor, generateFederationAuth } from '../../broker/auth-config.js';
import { KvStore } from '../../broker/kv-store.js';
import { BUCKETS, KEYS, type NetworkRecord, type VniClaim } from '../../broker/records.js';
import { BrokerReplyError, StoreUnavailableError } from '../../broker/errors.js';
import { BrokerClient } from '../../broker/client.js';
import type { Results } from '../../broker/protocol.js';

const test = testWith({ tools: ['nats-server'] });

/**
 * Waits until `stream` has a leader other than `gone` and every replica but `gone` is
 * current with no lag (stream info, polled every 100 ms). Throws with the last cluster
 * info at `deadline`.
 */
async function waitForCurrentReplicas(
  jsm: JetStreamManager,
  stream: string,
  gone: string | undefined,
  deadline: number,
): Promise<void> {
  let last = '';
  while (Date.now() < deadline) {
    const info = await jsm.streams.info(stream).catch(() => undefined);
    const c = info?.cluster;
    last = JSON.stringify(c);
    const peers = (c?.replicas ?? []).filter((r) => r.name !== gone);
    if (c?.leader && c.leader !== gone && peers.every((r) => r.current && !r.lag)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${stream}: replicas not current by the deadline: ${last}`);
}

/** Retries retryable failures (broker UNAVAILABLE/CONFLICT, NATS timeouts) until a deadline. */
async function persist<T>(fn: () => Promise<T>, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const retryable =
        (err instanceof BrokerReplyError && err.retryable) ||
        err instanceof StoreUnavailableError ||
        /TIMEOUT|503|no responders|CONNECTION/i.test(String((err as Error).message));
      if (!retryable || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
}

test('nats cluster - killing the stream leader during allocations loses and duplicates nothing', async (t) => {
  const t0 = Date.now();
  const ids = Array.from({ length: 30 }, (_, i) => `k${i}`);
  // As deployed: only the users `broker gen-auth` makes, on every node.
  const auth = generateFederationAuth({ clusters: ids });
  const cluster = await startNatsCluster(3, { extraConfig: auth.serverConfig });
  t.teardown(() => cluster.dispose());
  const brokers = await startBrokers(
    cluster.urls,
    2,
    { replicas: 3 },
    connectOptionsFor(auth.broker),
  );
  t.teardown(() => brokers.dispose());
  const open = (o: ReturnType<typeof connectOptionsFor>) =>
    connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...o });
  // The test inspects KV with the broker's credentials.
  const nc = await open(connectOptionsFor(auth.broker));
  const ncs = await Promise.all(ids.map((id) => open(connectOptionsFor(auth.clusters[id]!, id))));
  t.teardown(() => Promise.all([nc, ...ncs].map((x) => x.close())).then(() => undefined));
  // Short request timeout: a request whose broker connection died is lost, retry soon.
  const c = ids.map((id, i) => new BrokerClient(ncs[i]!, id, { timeoutMs: 2000 }));
  const deadline = Date.now() + 60_000;

  await Promise.all(
    c.map((cl, i) => persist(() => cl.request('register', registerBody(i)), deadline)),
  );
  t.log(`registered at ${Date.now() - t0} ms`);
  // Round one, before the fault.
  const names = Array.from({ length: 15 }, (_, i) => `w${i}`);
  const want = (i: number) => [names[i % 15]!, names[(i + 5) % 15]!];
  const first = await Promise.all(
    c
      .slice(0, 10)
      .map((cl, i) => persist(() => cl.request('exports', { networks: want(i) }), deadline)),
  );

  t.log(`round one done at ${Date.now() - t0} ms`);
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(`KV_${BUCKETS.networks}`);
  const leader = info.cluster?.leader;
  t.is(info.config.num_replicas, 3, 'R3 bucket');
  const victim =
    cluster.servers.find((s) => s.options.serverName === leader) ?? cluster.servers[0]!;

  // Round two: all 30 at once; kill the leader while they run.
  const round: Promise<Results['exports']>[] = c.map((cl: BrokerClient, i) =>
    persist(() => cl.request('exports', { networks: want(i) }), deadline),
  );
  await new Promise((r) => setTimeout(r, 30));
  await victim.kill();
  const killedAt = Date.now();
  const second = await Promise.all(round);
  t.log(`killed ${leader}; round two done ${Date.now() - killedAt} ms after the kill`);

  // Every exporter of a name got the same VNI, in both rounds; names never share.
  const vniOf = new Map<string, number>();
  for (const r of [...first, ...second])
    for (const n of r.networks) {
      const seen = vniOf.get(n.name);
      if (seen !== undefined) t.is(n.vni, seen, `one VNI for ${n.name}`);
      vniOf.set(n.name, n.vni);
    }
  t.is(vniOf.size, 15);
  t.is(new Set(vniOf.values()).size, 15, 'no VNI shared by two names');

  // KV (on the surviving nodes) agrees with every reply; no claim points two ways. The
  // buckets allow direct gets, which any replica may answer: one still catching up from
  // the new leader answered "no value" for a bound network (net.w0, 1 clean-clone CI run
  // in ~100, 2026-12-01). Loss is what this checks, so first the surviving replicas must
  // be current: a write that was lost stays missing after that.
  await waitForCurrentReplicas(jsm, `KV_${BUCKETS.networks}`, leader, deadline);
  const store = await persist(
    () => KvStore.open(nc.jetstream(), { replicas: 3, storage: 'file' }),
    deadline,
  );
  for (const [name, vni] of vniOf) {
    const net = await persist(
      () => store.get<NetworkRecord>('networks', KEYS.network(name)),
      deadline,
    );
    t.is(net?.value.vni, vni, `net.${name}`);
    const claim = await persist(() => store.get<VniClaim>('networks', KEYS.vni(vni)), deadline);
    t.is(claim?.value.network, name, `vni.${vni}`);
  }
  const claims = await persist(() => store.keys('networks', 'vni.*'), deadline);
  t.log(`${claims.length} VNI claims for ${vniOf.size} names (extra = abandoned by lost replies)`);
  t.true(claims.length >= 15);
  const transits = await Promise.all(c.map((cl) => persist(() => cl.request('get'), deadline)));
  const addrs = transits.map((g) => g.cluster!.transitAddress);
  t.is(new Set(addrs).size, 30, 'transit addresses still unique');
});
