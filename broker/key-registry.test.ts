/**
 * Key claims are bound to the registration (cluster record nonce) that made them: a
 * release on behalf of a deleted record keeps the claim of a re-registration of the same
 * cluster made in between (deregister deletes the record first, then releases its keys).
 */
import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { KeyInUseError } from './errors.js';
import { KEYS, type BucketId, type ClusterRecord, type KeyClaim } from './records.js';

const GRACE = 1000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const KEY_A = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const KEY_N = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';
const KEY_R = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';

const reg = (publicKey: string) => ({
  publicKey,
  endpoints: ['198.18.0.1:51820'],
  capabilities: [],
});

/** A FakeKvStore that runs `after` once, when a delete of clusters/<id> has landed. */
class AfterRecordDelete extends FakeKvStore {
  private hook?: { id: string; run: () => Promise<unknown> };
  private hookRun?: Promise<unknown>;

  /** Runs `run` right after the next delete of `id`'s cluster record. */
  onDelete(id: string, run: () => Promise<unknown>): void {
    this.hook = { id, run };
  }

  /** Resolves when the injected step has finished (throws if it never ran). */
  async afterDelete(): Promise<void> {
    if (!this.hookRun) throw new Error('the cluster record was never deleted');
    await this.hookRun;
  }

  override async delete(bucket: BucketId, key: string, revision?: number) {
    const r = await super.delete(bucket, key, revision);
    const p = this.hook;
    if (r && bucket === 'clusters' && p?.id === key) {
      this.hook = undefined;
      this.hookRun = p.run();
      await this.hookRun;
    }
    return r;
  }
}

function setup() {
  const store = new AfterRecordDelete();
  const clock = { now: T0 };
  const config = resolveConfig({ transitPool: '100.64.0.0/28', claimGraceMs: GRACE });
  const fed = new Federation(store, config, () => clock.now);
  const claim = async (publicKey: string) =>
    (await store.get<KeyClaim>('publicKeys', KEYS.publicKey(publicKey)))?.value;
  const record = async (id: string) => (await store.get<ClusterRecord>('clusters', id))?.value;
  /** Rewrites a key's claim as a broker before nonces wrote it. */
  const stripNonce = async (publicKey: string) => {
    const cur = (await store.get<KeyClaim>('publicKeys', KEYS.publicKey(publicKey)))!;
    const { nonce: _nonce, ...old } = cur.value;
    await store.cas('publicKeys', KEYS.publicKey(publicKey), old, cur.revision);
  };
  return { store, clock, fed, claim, record, stripNonce };
}

test('keys - deregister keeps the key claim of a re-registration that ran after the record was deleted', async (t) => {
  const { store, clock, fed, claim, record } = setup();
  await fed.register('a', reg(KEY_A));
  clock.now += 2 * GRACE; // the claim is old: once unheld, anybody may take it over
  // An evicted agent registers again between the record's delete and the key's release.
  store.onDelete('a', () => fed.register('a', reg(KEY_A)));
  t.true((await fed.deregister('a')).deregistered);
  await store.afterDelete();
  const rec = await record('a');
  t.is(rec?.publicKey, KEY_A, 'the re-registration stands');
  t.is((await claim(KEY_A))?.nonce, rec?.nonce, "the new record's key is still claimed");
  await t.throwsAsync(fed.register('b', reg(KEY_A)), { instanceOf: KeyInUseError });
  await fed.reconcile(); // the sweep agrees: the claim is held
  t.is((await claim(KEY_A))?.cluster, 'a');
});

test('keys - a claim written before nonces: deregister releases it; a re-registration in between takes it over', async (t) => {
  const { store, clock, fed, claim, record, stripNonce } = setup();
  // Released as before: b's old claim goes with b's record.
  await fed.register('b', reg(KEY_B));
  await stripNonce(KEY_B);
  await fed.deregister('b');
  t.is(await claim(KEY_B), undefined, 'an old claim is released by its cluster');
  t.true((await fed.register('c', reg(KEY_B))).created, 'and the key is free at once');
  // Taken over: a's re-registration binds the old claim to its own record.
  await fed.register('a', reg(KEY_A));
  await stripNonce(KEY_A);
  clock.now += 2 * GRACE;
  store.onDelete('a', () => fed.register('a', reg(KEY_A)));
  await fed.deregister('a');
  await store.afterDelete();
  t.is((await claim(KEY_A))?.nonce, (await record('a'))?.nonce);
  await t.throwsAsync(fed.register('d', reg(KEY_A)), { instanceOf: KeyInUseError });
});

test("keys - deregister releases a rotation's next key, but not one a re-registration announced again", async (t) => {
  const { store, clock, fed, claim, record } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  await fed.deregister('a');
  t.is(await claim(KEY_N), undefined, 'the next key is released with the record');
  t.is(await claim(KEY_A), undefined);

  await fed.register('a', reg(KEY_A));
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  clock.now += 2 * GRACE;
  // The evicted agent registers again and resumes its rotation before the release.
  store.onDelete('a', async () => {
    await fed.register('a', reg(KEY_A));
    await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  });
  await fed.deregister('a');
  await store.afterDelete();
  t.is((await claim(KEY_N))?.nonce, (await record('a'))?.nonce);
  await t.throwsAsync(fed.register('b', reg(KEY_N)), { instanceOf: KeyInUseError });
});

test("keys - every claim carries its record's nonce: register, announce, rotate, rejoin, backfill", async (t) => {
  const { store, clock, fed, claim, record } = setup();
  await fed.register('a', reg(KEY_A));
  const nonce = (await record('a'))!.nonce;
  t.is((await claim(KEY_A))?.nonce, nonce, 'register');
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  t.is((await claim(KEY_N))?.nonce, nonce, 'announce-key');
  await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_N });
  t.is((await claim(KEY_N))?.nonce, nonce, 'rotate-key keeps the claim');
  t.is(await claim(KEY_A), undefined, 'the previous key is released');
  clock.now += resolveConfig({}).rejoinAfterMs; // the gateway is silent: a rejoin is accepted
  t.is((await fed.register('a', reg(KEY_R))).cluster.publicKey, KEY_R);
  t.is((await record('a'))?.nonce, nonce, 'a rejoin keeps the registration');
  t.is((await claim(KEY_R))?.nonce, nonce, 'rejoin');
  t.is(await claim(KEY_N), undefined, 'the replaced key is released');
  await store.delete('publicKeys', KEYS.publicKey(KEY_R));
  await fed.reconcile();
  t.is((await claim(KEY_R))?.nonce, nonce, 'backfill');
});
