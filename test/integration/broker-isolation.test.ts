import { connect, type KvEntry, type NatsConnection } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import { startNats } from '../fixtures/nats.js';
import { registerBody, startBrokers } from '../fixtures/broker.js';
import { connectOptionsFor, generateFederationAuth } from '../../broker/auth-config.js';
import { BrokerClient, decodePeerMap } from '../../broker/client.js';
import { BUCKETS } from '../../broker/records.js';

const test = testWith({ tools: ['nats-server'] });

async function nextEntry(w: AsyncIterable<KvEntry>): Promise<KvEntry | undefined> {
  for await (const e of w) return e;
  return undefined;
}

/** Resolves to a description of how `p` failed; fails the test if it succeeded. */
async function refused(p: Promise<unknown>, ms = 3000): Promise<string> {
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
  try {
    const v = await Promise.race([p, timeout]);
    return v === 'timeout' ? 'timed out' : `SUCCEEDED: ${JSON.stringify(v)}`;
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

for (const mode of ['nkey', 'password'] as const) {
  test(`isolation (${mode}) - cluster x cannot read y's peer map, publish as y or register as y`, async (t) => {
    const auth = generateFederationAuth({ clusters: ['x', 'y'], mode });
    const fx = await startNats({ extraConfig: auth.serverConfig });
    t.teardown(() => fx.dispose());
    const brokers = await startBrokers(fx.url, 2, {}, connectOptionsFor(auth.broker));
    t.teardown(() => brokers.dispose());
    const conns: NatsConnection[] = [];
    t.teardown(() => Promise.all(conns.map((c) => c.close())).then(() => undefined));
    const open = async (id: 'x' | 'y') => {
      const nc = await connect({
        servers: fx.url,
        maxReconnectAttempts: 0,
        ...connectOptionsFor(auth.clusters[id]!, id),
      });
      conns.push(nc);
      return nc;
    };
    const ncX = await open('x');
    const ncY = await open('y');
    const x = new BrokerClient(ncX, 'x');
    const y = new BrokerClient(ncY, 'y');

    // Both sides work normally with their own credentials.
    await x.request('register', registerBody(1));
    const yReg = await y.request('register', registerBody(2));
    await x.request('exports', { networks: ['cdn'] });
    await y.request('exports', { networks: ['cdn'] });
    await x.request('peerings', { peerings: [{ remoteCluster: 'y' }] });
    await y.request('peerings', { peerings: [{ remoteCluster: 'x' }] });
    t.is((await x.peerMap())?.peers[0]?.cluster, 'y', 'x reads its own map');
    const ownWatch = await x.watchPeerMap();
    const first = await nextEntry(ownWatch);
    t.is(first && decodePeerMap(first)?.cluster, 'x', 'x watches its own map');
    ownWatch.stop();

    // 1. Read y's peer map: direct get, watch, and the generic message-get API.
    const xAsY = new BrokerClient(ncX, 'y');
    const readY = await refused(xAsY.peerMap());
    t.regex(readY, /refused: .*Permissions Violation/);
    const watchY = await refused(xAsY.watchPeerMap().then((w) => nextEntry(w)));
    t.regex(watchY, /refused: .*Permissions Violation/);
    const stream = `KV_${BUCKETS.peerMaps}`;
    t.regex(
      await refused(
        ncX.request(
          `$JS.API.STREAM.MSG.GET.${stream}`,
          JSON.stringify({ last_by_subj: `$KV.${BUCKETS.peerMaps}.y` }),
          { timeout: 2000 },
        ),
      ),
      /refused/,
    );
    t.regex(
      await refused(
        ncX.request(`$JS.API.DIRECT.GET.${stream}.$KV.${BUCKETS.peerMaps}.y`, '', {
          timeout: 2000,
        }),
      ),
      /refused/,
    );
    // Other buckets are closed entirely, including x's own records.
    t.regex(
      await refused(
        ncX.request(`$JS.API.DIRECT.GET.KV_${BUCKETS.clusters}.$KV.${BUCKETS.clusters}.y`, '', {
          timeout: 2000,
        }),
      ),
      /refused/,
    );
    // Eavesdropping on y's requests or map updates is refused too.
    for (const subject of [
      'l2fed.v1.y.>',
      `$KV.${BUCKETS.peerMaps}.y`,
      '_INBOX_y.>',
      '_INBOX.>',
      'l2fed.peermap.y',
      'l2fed.peermap.*',
    ]) {
      const sub = ncX.subscribe(subject);
      const firstMessage = (async () => {
        for await (const m of sub) return `got a message on ${m.subject}`;
        return 'ended without error';
      })();
      t.regex(await refused(firstMessage), /refused: .*[Pp]ermission/, subject);
    }

    // 2. Publish as y: any request on y's subjects is refused by the server.
    t.regex(await refused(xAsY.request('peerings', { peerings: [] })), /refused: .*[Pp]ermission/);
    ncX.publish('l2fed.v1.y.deregister', '{}');
    // 3. Register as y (a takeover attempt with x's credentials).
    t.regex(await refused(xAsY.request('register', registerBody(3))), /refused: .*[Pp]ermission/);
    // x cannot write its own map directly either.
    t.regex(
      await refused(ncX.request(`$KV.${BUCKETS.peerMaps}.x`, '{}', { timeout: 2000 })),
      /refused/,
    );

    // y is untouched.
    const yNow = await y.request('get');
    t.is(yNow.cluster?.publicKey, yReg.cluster.publicKey);
    t.is(yNow.peerings.length, 1);
    t.is(yNow.peerMap?.peers[0]?.cluster, 'x');

    // No credentials, no connection.
    await t.throwsAsync(connect({ servers: fx.url, maxReconnectAttempts: 0 }));
  });
}
