import { connect, StorageType, StringCodec } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import { startNats } from '../fixtures/nats.js';

const test = testWith({ tools: ['nats-server'] });

test('nats fixture - JetStream KV create is atomic and survives a crash restart', async (t) => {
  const fx = await startNats();
  t.teardown(() => fx.dispose());
  const sc = StringCodec();

  let nc = await connect({ servers: fx.url, maxReconnectAttempts: 0 });
  const kv = await nc
    .jetstream()
    .views.kv('fixture_check', { history: 1, storage: StorageType.File });
  const rev = await kv.create('vni.cdn', sc.encode('100'));
  t.true(rev > 0);
  // A second create of the same key must lose: this is what VNI allocation relies on.
  await t.throwsAsync(kv.create('vni.cdn', sc.encode('200')));
  await nc.close();

  await fx.restart({ crash: true });
  nc = await connect({ servers: fx.url, maxReconnectAttempts: 0 });
  t.teardown(() => nc.close());
  const kv2 = await nc.jetstream().views.kv('fixture_check');
  const entry = await kv2.get('vni.cdn');
  t.is(entry && sc.decode(entry.value), '100');
  t.is(entry?.revision, rev);
});

test('nats fixture - two servers get distinct ports and stores', async (t) => {
  const [a, b] = await Promise.all([startNats(), startNats()]);
  t.teardown(() => Promise.all([a.dispose(), b.dispose()]).then(() => undefined));
  t.not(a.url, b.url);
  t.not(a.server.storeDir, b.server.storeDir);
  const pid = a.server.pid;
  t.truthy(pid);
  await a.dispose();
  t.false(a.server.running);
  t.throws(() => process.kill(pid!, 0), { code: 'ESRCH' });
});
