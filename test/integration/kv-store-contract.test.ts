/**
 * One contract for the broker's Store, run against the fake (broker/kv-store-fake.ts)
 * and against the real KvStore over JetStream (a nats-server configured as deployed,
 * with the broker's gen-auth credentials). A behaviour the fake gets wrong shows up
 * as the same test passing on `jetstream` and failing on `fake`.
 *
 * The real buckets are shared by every test in the file, so each test uses its own
 * key prefix and asserts revisions relative to each other (JetStream revisions are
 * stream sequences, moved by every write to the bucket).
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import { FakeKvStore } from '../../broker/kv-store-fake.js';
import { KvStore, type Store } from '../../broker/kv-store.js';
import { startAuthedNats, type AuthedNats } from '../fixtures/broker.js';

const test = anyTest as TestFn<{ jetstream: Store }>;

let authed: AuthedNats | undefined;
test.before(async (t) => {
  authed = await startAuthedNats(['c1']);
  const nc = await authed.connectBroker();
  t.context.jetstream = await KvStore.open(nc.jetstream(), { replicas: 1, storage: 'memory' });
});
test.after.always(() => authed?.dispose());

type Make = (t: ExecutionContext<{ jetstream: Store }>) => Store;
const stores: Record<string, Make> = {
  fake: () => new FakeKvStore(),
  jetstream: (t) => t.context.jetstream,
};

/** A key prefix no other test uses (the real buckets are shared within the file). */
const uniq = () => `k${randomBytes(4).toString('hex')}`;

function contract(
  title: string,
  body: (t: ExecutionContext<{ jetstream: Store }>, store: Store, p: string) => Promise<void>,
) {
  for (const [name, make] of Object.entries(stores)) {
    test(`kv contract [${name}] - ${title}`, (t) => body(t, make(t), uniq()));
  }
}

contract('read of a never-written key: no value, revision 0', async (t, s, p) => {
  t.is(await s.get('clusters', p), undefined);
  t.deepEqual(await s.read('clusters', p), { value: undefined, revision: 0 });
});

contract('create if absent: ok once, then conflict with the value kept', async (t, s, p) => {
  const first = await s.create('clusters', p, { n: 1 });
  if (first.type !== 'ok') return t.fail(`first create: ${first.type}`);
  t.true(first.revision > 0);
  t.deepEqual(await s.get('clusters', p), { value: { n: 1 }, revision: first.revision });
  t.deepEqual(await s.read('clusters', p), { value: { n: 1 }, revision: first.revision });
  t.deepEqual(await s.create('clusters', p, { n: 2 }), { type: 'conflict' });
  t.deepEqual(await s.get('clusters', p), { value: { n: 1 }, revision: first.revision });
});

contract('update with revision (CAS): only at the current revision', async (t, s, p) => {
  t.deepEqual(await s.cas('clusters', p, { n: 0 }, 5), { type: 'conflict' }, 'absent ≠ 5');
  const a = await s.cas('clusters', p, { n: 1 }, 0);
  if (a.type !== 'ok') return t.fail(`cas at 0 on a never-written key: ${a.type}`);
  t.deepEqual(await s.cas('clusters', p, { n: 9 }, 0), { type: 'conflict' }, 'live ≠ 0');
  const b = await s.cas('clusters', p, { n: 2 }, a.revision);
  if (b.type !== 'ok') return t.fail(`cas at the current revision: ${b.type}`);
  t.true(b.revision > a.revision);
  t.deepEqual(await s.cas('clusters', p, { n: 3 }, a.revision), { type: 'conflict' }, 'stale');
  t.deepEqual(await s.get('clusters', p), { value: { n: 2 }, revision: b.revision });
});

contract('put is unconditional and moves the revision', async (t, s, p) => {
  const r1 = await s.put('health', p, 'a');
  const r2 = await s.put('health', p, 'b');
  t.true(r2 > r1 && r1 > 0);
  t.deepEqual(await s.get('health', p), { value: 'b', revision: r2 });
});

contract('delete of a live key leaves a tombstone with a newer revision', async (t, s, p) => {
  const c = await s.create('exports', p, { x: 1 });
  if (c.type !== 'ok') return t.fail(c.type);
  t.true(await s.delete('exports', p));
  t.is(await s.get('exports', p), undefined, 'get after delete');
  const tomb = await s.read('exports', p);
  t.is(tomb.value, undefined);
  t.true(tomb.revision > c.revision, `tombstone ${tomb.revision} after write ${c.revision}`);
  t.deepEqual(
    await s.cas('exports', p, { x: 2 }, 0),
    { type: 'conflict' },
    'cas 0 over a tombstone',
  );
  t.deepEqual(await s.cas('exports', p, { x: 2 }, c.revision), { type: 'conflict' }, 'stale');
  const again = await s.create('exports', p, { x: 3 });
  if (again.type !== 'ok') return t.fail(`create over a tombstone: ${again.type}`);
  t.true(again.revision > tomb.revision);
  t.deepEqual(await s.get('exports', p), { value: { x: 3 }, revision: again.revision });
});

contract('delete of an absent key writes a tombstone and moves the revision', async (t, s, p) => {
  const before = await s.put('exports', `${p}.other`, 1);
  t.true(await s.delete('exports', p));
  t.is(await s.get('exports', p), undefined);
  const tomb = await s.read('exports', p);
  t.is(tomb.value, undefined);
  t.true(tomb.revision > before, `tombstone revision ${tomb.revision} > ${before}`);
  // The broker's "create at revision 0" now loses: the key has a history.
  t.deepEqual(await s.cas('exports', p, { y: 1 }, 0), { type: 'conflict' });
  const w = await s.cas('exports', p, { y: 1 }, tomb.revision);
  t.is(w.type, 'ok', 'cas at the tombstone revision');
  t.deepEqual(await s.keys('exports', `${p}.>`), [`${p}.other`]);
});

contract('create over the tombstone of a never-live key succeeds', async (t, s, p) => {
  t.true(await s.delete('exports', p));
  const tomb = await s.read('exports', p);
  const c = await s.create('exports', p, 'v');
  if (c.type !== 'ok') return t.fail(`create: ${c.type}`);
  t.true(c.revision > tomb.revision);
});

contract(
  'delete with a revision: only at that revision, the value kept otherwise',
  async (t, s, p) => {
    const a = await s.create('publicKeys', p, 'a');
    if (a.type !== 'ok') return t.fail(a.type);
    const b = await s.cas('publicKeys', p, 'b', a.revision);
    if (b.type !== 'ok') return t.fail(b.type);
    t.false(await s.delete('publicKeys', p, a.revision), 'stale revision');
    t.deepEqual(await s.get('publicKeys', p), { value: 'b', revision: b.revision });
    t.true(await s.delete('publicKeys', p, b.revision));
    t.is(await s.get('publicKeys', p), undefined);
    const tomb = await s.read('publicKeys', p);
    t.false(await s.delete('publicKeys', p, b.revision), 'the tombstone moved the revision');
    t.true(await s.delete('publicKeys', p, tomb.revision), 'at the tombstone revision');
  },
);

contract('keys: live keys matching a subject filter, deleted ones left out', async (t, s, p) => {
  await s.put('networks', `member.${p}.a`, 1);
  await s.put('networks', `member.${p}.b`, 1);
  await s.put('networks', `member.${p}.b.deep`, 1);
  await s.put('networks', `member.${p}x.c`, 1);
  await s.put('networks', `net.${p}`, 1);
  t.true(await s.delete('networks', `member.${p}.a`));
  t.true(await s.delete('networks', `member.${p}.gone`));
  const sorted = async (f: string) => (await s.keys('networks', f)).sort();
  t.deepEqual(await sorted(`member.${p}.*`), [`member.${p}.b`]);
  t.deepEqual(await sorted(`member.${p}.>`), [`member.${p}.b`, `member.${p}.b.deep`]);
  t.deepEqual(await sorted(`member.*.b`), [`member.${p}.b`]);
  t.deepEqual(await sorted(`net.${p}`), [`net.${p}`]);
  t.deepEqual(await sorted(`${p}.>`), []);
});

contract('revisions: every write in a bucket gets a larger one than the last', async (t, s, p) => {
  const revs: number[] = [];
  revs.push(await s.put('quotas', `${p}a`, 1));
  const c = await s.create('quotas', `${p}b`, 1);
  if (c.type !== 'ok') return t.fail(c.type);
  revs.push(c.revision);
  t.true(await s.delete('quotas', `${p}a`));
  revs.push((await s.read('quotas', `${p}a`)).revision);
  const u = await s.cas('quotas', `${p}b`, 2, c.revision);
  if (u.type !== 'ok') return t.fail(u.type);
  revs.push(u.revision);
  t.true(await s.delete('quotas', `${p}never`));
  revs.push((await s.read('quotas', `${p}never`)).revision);
  revs.push(await s.put('quotas', `${p}a`, 3));
  t.deepEqual(
    revs,
    [...revs].sort((x, y) => x - y),
    `increasing: ${revs.join(', ')}`,
  );
  t.is(new Set(revs).size, revs.length, `distinct: ${revs.join(', ')}`);
});

contract('delete at revision 0 does not remove a live value', async (t, s, p) => {
  const a = await s.create('transit', p, 'a');
  if (a.type !== 'ok') return t.fail(a.type);
  t.false(await s.delete('transit', p, 0));
  t.deepEqual(await s.get('transit', p), { value: 'a', revision: a.revision });
});

contract('delete at revision 0 of a never-written key writes its tombstone', async (t, s, p) => {
  t.true(await s.delete('transit', p, 0));
  const tomb = await s.read('transit', p);
  t.true(tomb.value === undefined && tomb.revision > 0, `tombstone at ${tomb.revision}`);
  t.false(await s.delete('transit', p, 0), 'the key has a history now');
});
