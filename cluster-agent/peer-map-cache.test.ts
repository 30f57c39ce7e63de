import test from 'ava';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CACHE_FILE, PeerMapCache } from './peer-map-cache.js';
import { CacheWriteError } from './errors.js';

const MAP = {
  cluster: 'madrid',
  transitAddress: '100.64.0.1',
  networks: [{ name: 'cdn', vni: 4096 }],
  peers: [],
};

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-cache-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('peer-map cache - miss, then save and load round-trip with mode 0600 and no temp left', async (t) => {
  const dir = join(await tempDir(t), 'nested');
  const cache = new PeerMapCache(dir, 'madrid');
  t.deepEqual(await cache.load(), { type: 'miss' });
  const config = {
    identity: 'madrid',
    wireguard: { ifname: 'l2fm', listenPort: 51820, privateKeyFile: '/k' },
    transitAddress: '100.64.0.1/16',
  };
  await cache.save({ peerMap: MAP, gatewayConfig: config });
  const r = await cache.load();
  t.is(r.type, 'hit');
  if (r.type === 'hit') {
    t.deepEqual(r.state.peerMap, MAP);
    t.deepEqual(r.state.gatewayConfig, config);
  }
  t.is((await stat(join(dir, CACHE_FILE))).mode & 0o777, 0o600);
  t.is((await stat(dir)).mode & 0o777, 0o700);
  t.deepEqual(await readdir(dir), [CACHE_FILE]);
});

test('peer-map cache - concurrent saves: the last call wins, the file is always whole', async (t) => {
  const dir = await tempDir(t);
  const cache = new PeerMapCache(dir, 'madrid');
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      cache.save({
        peerMap: { ...MAP, networks: [{ name: 'cdn', vni: 4096 + i }] },
        gatewayConfig: undefined,
      }),
    ),
  );
  const r = await cache.load();
  t.is(r.type === 'hit' ? r.state.peerMap?.networks[0]?.vni : undefined, 4096 + 19);
});

test('peer-map cache - corrupt file or another cluster is reported invalid, not thrown', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, CACHE_FILE), '{"format":1,"clusterId":"madr');
  const r1 = await new PeerMapCache(dir, 'madrid').load();
  t.is(r1.type, 'invalid');
  await new PeerMapCache(dir, 'bristol').save({ peerMap: undefined, gatewayConfig: undefined });
  const r2 = await new PeerMapCache(dir, 'madrid').load();
  t.is(r2.type, 'invalid');
  if (r2.type === 'invalid') t.regex(r2.reason, /belongs to cluster bristol/);
});

test('peer-map cache - unwritable dir gives a typed error', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), 'x');
  const cache = new PeerMapCache(join(dir, 'file'), 'madrid');
  await t.throwsAsync(cache.save({ peerMap: MAP, gatewayConfig: undefined }), {
    instanceOf: CacheWriteError,
  });
});

test('peer-map cache - a peer map or gateway config that fails the checks is invalid, naming the field', async (t) => {
  const dir = await tempDir(t);
  const file = (extra: object) =>
    writeFile(
      join(dir, CACHE_FILE),
      JSON.stringify({ format: 1, clusterId: 'madrid', savedAt: '2026-01-01T00:00:00Z', ...extra }),
    );
  const cases: [object, RegExp][] = [
    [{ peerMap: { ...MAP, networks: [{ name: 'cdn', vni: -1 }] } }, /peerMap\.networks\[0\]\.vni/],
    [{ peerMap: { ...MAP, cluster: 'bristol' } }, /peerMap\.cluster.*not this cluster/],
    [{ peerMap: { ...MAP, transitAddress: 'junk' } }, /peerMap\.transitAddress/],
    [
      {
        peerMap: {
          ...MAP,
          networks: [
            { name: 'cdn', vni: 7 },
            { name: 'tel', vni: 7 },
          ],
        },
      },
      /peerMap\.networks\[1\]\.vni: duplicate vni 7/,
    ],
    [{ gatewayConfig: { identity: 'madrid' } }, /gatewayConfig.*wireguard/],
  ];
  for (const [content, field] of cases) {
    await file(content);
    const r = await new PeerMapCache(dir, 'madrid').load();
    t.is(r.type, 'invalid', JSON.stringify(content));
    if (r.type === 'invalid') t.regex(r.reason, field);
  }
});
