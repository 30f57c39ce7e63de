/**
 * What one request costs in KV operations: per request, work grows with what the
 * request names (its peerings, its networks), never with the number of clusters in
 * the federation. Fake KV wrapped to count calls.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import type { Store } from './kv-store.js';

/** A store that records every call as "<method> <bucket> <key or filter>". */
function counted(): { store: Store; calls: string[] } {
  const fake = new FakeKvStore();
  const calls: string[] = [];
  const store = new Proxy(fake, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${String(args[0])} ${String(args[1])}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

const wgKey = () => randomBytes(32).toString('base64');
const reg = () => ({ publicKey: wgKey(), endpoints: ['198.18.0.1:51820'], capabilities: [] });

async function federationOf(n: number) {
  const { store, calls } = counted();
  const fed = new Federation(store, resolveConfig({ transitPool: '100.64.0.0/16' }));
  for (let i = 0; i < n; i++) await fed.register(`c${i}`, reg());
  calls.length = 0;
  return { fed, calls };
}

test('cost - a peerings request touches only the clusters it names, however many are registered', async (t) => {
  const counts: number[] = [];
  for (const n of [5, 60]) {
    const { fed, calls } = await federationOf(n);
    await fed.setPeerings('c0', [
      { remoteCluster: 'c1' },
      { remoteCluster: 'c2' },
      { remoteCluster: 'unknown' },
    ]);
    t.false(
      calls.some((c) => c.startsWith('keys clusters')),
      `no listing of every cluster: ${calls.filter((c) => c.startsWith('keys')).join(', ')}`,
    );
    // Distinct calls: how often a key is read depends on timing (Federation merges
    // concurrent reads of one key), which keys are read does not.
    counts.push(new Set(calls).size);
  }
  t.is(
    counts[1],
    counts[0],
    `distinct KV calls with 5 and 60 clusters registered: ${counts.join(', ')}`,
  );
});

test('cost - an exports request never lists its memberships (its exports record bounds them)', async (t) => {
  const { fed, calls } = await federationOf(2);
  await fed.setExports('c0', ['cdn', 'web']);
  calls.length = 0;
  await fed.setExports('c0', ['cdn', 'db']);
  t.is(calls.filter((c) => c === 'keys networks member.*.c0').length, 0, calls.join('\n'));
  t.deepEqual(
    (await fed.get('c0')).networks.map((n) => n.name),
    ['cdn', 'db'],
  );
});

test('cost - reconcile creates no key claim that exists (no failing create per cluster)', async (t) => {
  const { fed, calls } = await federationOf(20);
  await fed.keys.sweep();
  t.deepEqual(
    calls.filter((c) => c.startsWith('create')),
    [],
    'every cluster already holds its claim',
  );
});
