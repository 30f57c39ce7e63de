import { nuid } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import { fakePublicKey, registerBody, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { inboxPrefix } from '../../broker/auth-config.js';
import { KvStore } from '../../broker/kv-store.js';
import { BUCKETS, type BucketId } from '../../broker/records.js';
import type { ErrorCode } from '../../broker/errors.js';

const SAME_KEY = fakePublicKey();
const test = testWith({ tools: ['nats-server'] });

interface Case {
  readonly name: string;
  readonly subject: string;
  readonly body: string | Uint8Array;
  readonly code: ErrorCode;
  readonly field?: string;
  readonly says: RegExp;
}

const key = fakePublicKey();
const CASES: readonly Case[] = [
  {
    name: 'malformed JSON',
    subject: 'l2fed.v1.fresh.register',
    body: '{"publicKey": ',
    code: 'BAD_JSON',
    says: /not valid JSON/,
  },
  {
    name: 'JSON that is not an object',
    subject: 'l2fed.v1.fresh.exports',
    body: '[1,2]',
    code: 'INVALID_REQUEST',
    says: /object/,
  },
  {
    name: 'unknown field',
    subject: 'l2fed.v1.fresh.register',
    body: JSON.stringify({ ...registerBody(), privateKey: 'x' }),
    code: 'INVALID_REQUEST',
    field: 'privateKey',
    says: /unknown field.*privateKey.*remove/,
  },
  {
    name: 'invalid network name',
    subject: 'l2fed.v1.member.exports',
    body: JSON.stringify({ networks: ['ok', 'Bad_Name'] }),
    code: 'INVALID_REQUEST',
    field: 'networks.1',
    says: /DNS-1123/,
  },
  {
    name: 'invalid cluster id in subject',
    subject: 'l2fed.v1.Bad_Id.register',
    body: '{}',
    code: 'UNKNOWN_SUBJECT',
    field: 'clusterId',
    says: /DNS-1123/,
  },
  {
    name: 'unknown verb',
    subject: 'l2fed.v1.fresh.explode',
    body: '{}',
    code: 'UNKNOWN_SUBJECT',
    field: 'verb',
    says: /use one of register, rotate-key, deregister/,
  },
  {
    name: 'too many subject tokens',
    subject: 'l2fed.v1.fresh.register.x',
    body: '{}',
    code: 'UNKNOWN_SUBJECT',
    says: /l2fed\.v1\.<clusterId>\.<verb>/,
  },
  {
    name: 'port out of range',
    subject: 'l2fed.v1.fresh.register',
    body: JSON.stringify({ publicKey: key, endpoints: ['198.18.0.1:70000'] }),
    code: 'INVALID_REQUEST',
    field: 'endpoints.0',
    says: /port 1-65535/,
  },
  {
    name: 'no endpoints',
    subject: 'l2fed.v1.fresh.register',
    body: JSON.stringify({ publicKey: key, endpoints: [] }),
    code: 'INVALID_REQUEST',
    field: 'endpoints',
    says: /at least one/,
  },
  {
    name: 'not a WireGuard public key',
    subject: 'l2fed.v1.fresh.register',
    body: JSON.stringify({ publicKey: 'abc', endpoints: ['gw.example.org:51820'] }),
    code: 'INVALID_REQUEST',
    field: 'publicKey',
    says: /wg pubkey/,
  },
  {
    name: 'too many networks',
    subject: 'l2fed.v1.member.exports',
    body: JSON.stringify({ networks: Array.from({ length: 257 }, (_, i) => `n${i}`) }),
    code: 'INVALID_REQUEST',
    field: 'networks',
    says: /at most 256/,
  },
  {
    name: 'duplicate peering',
    subject: 'l2fed.v1.member.peerings',
    body: JSON.stringify({ peerings: [{ remoteCluster: 'a' }, { remoteCluster: 'a' }] }),
    code: 'INVALID_REQUEST',
    field: 'peerings.1.remoteCluster',
    says: /duplicate/,
  },
  {
    name: 'peering with itself',
    subject: 'l2fed.v1.member.peerings',
    body: JSON.stringify({ peerings: [{ remoteCluster: 'member' }] }),
    code: 'INVALID_REQUEST',
    field: 'peerings.0.remoteCluster',
    says: /itself/,
  },
  {
    name: 'oversize payload',
    subject: 'l2fed.v1.member.exports',
    body: JSON.stringify({ networks: ['a'], pad: 'x'.repeat(70 * 1024) }),
    code: 'PAYLOAD_TOO_LARGE',
    says: /limit is 65536/,
  },
  {
    name: 'exports before registering',
    subject: 'l2fed.v1.fresh.exports',
    body: JSON.stringify({ networks: ['cdn'] }),
    code: 'NOT_REGISTERED',
    says: /register first/,
  },
  {
    name: 'takeover of a registered id with another key',
    subject: 'l2fed.v1.member.register',
    body: JSON.stringify(registerBody()),
    code: 'CLUSTER_ID_TAKEN',
    field: 'publicKey',
    says: /registered with another WireGuard public key.*l2fed evict member --force/,
  },
  {
    name: 'key rotation to the same key',
    subject: 'l2fed.v1.member.rotate-key',
    body: JSON.stringify({ previousKey: SAME_KEY, publicKey: SAME_KEY }),
    code: 'INVALID_REQUEST',
    field: 'publicKey',
    says: /must differ/,
  },
  {
    name: 'key rotation from a key the broker does not hold',
    subject: 'l2fed.v1.member.rotate-key',
    body: JSON.stringify({ previousKey: fakePublicKey(), publicKey: fakePublicKey() }),
    code: 'KEY_MISMATCH',
    field: 'previousKey',
    says: /rotate from it/,
  },
];

async function snapshot(store: KvStore): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const id of Object.keys(BUCKETS) as BucketId[]) out[id] = (await store.keys(id, '>')).sort();
  return out;
}

test('bad input - every malformed request gets a clear error, stores nothing, broker stays up', async (t) => {
  const fx = await startAuthedNats(['member', 'fresh']);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 1, {}, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(['member', 'fresh']);
  t.teardown(() => conn.close());
  const member = conn.clients[0]!;
  const ncOf = new Map(conn.clients.map((c) => [c.clusterId, c.nc]));
  const registered = await member.request('register', registerBody());
  const store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  const before = await snapshot(store);
  const mapBefore = await store.get('peerMaps', 'member');

  for (const c of CASES) {
    // Sent as deployed: with the credentials of the cluster the subject names, the reply
    // in its own inbox. No cluster's credentials may publish for an invalid id at all.
    const id = c.subject.split('.')[2]!;
    const nc = ncOf.get(id);
    if (!nc) {
      await t.throwsAsync(member.nc.request(c.subject, c.body, { timeout: 2000 }), {
        message: /Permissions Violation/,
      });
      continue;
    }
    const msg = await nc.request(c.subject, c.body, {
      timeout: 5000,
      noMux: true,
      reply: `${inboxPrefix(id)}.${nuid.next()}`,
    });
    const reply = JSON.parse(new TextDecoder().decode(msg.data)) as {
      ok: boolean;
      error?: { code: string; message: string; field?: string };
    };
    t.false(reply.ok, c.name);
    t.is(reply.error?.code, c.code, `${c.name}: ${reply.error?.message}`);
    t.regex(reply.error?.message ?? '', c.says, c.name);
    if (c.field !== undefined) t.is(reply.error?.field, c.field, c.name);
  }
  t.deepEqual(await snapshot(store), before, 'nothing was stored');
  t.is((await store.get('peerMaps', 'member'))?.revision, mapBefore?.revision);
  // A plain publish (no reply subject) with garbage is ignored, not fatal.
  member.nc.publish('l2fed.v1.member.exports', '\u0000garbage');

  t.is(brokers.replicas[0]!.state, 'running');
  const again = await member.request('register', {
    publicKey: registered.cluster.publicKey,
    endpoints: [...registered.cluster.endpoints],
    capabilities: [...registered.cluster.capabilities],
  });
  t.false(again.created, 'broker still answers valid requests');
  t.is((await member.request('exports', { networks: ['cdn'] })).networks.length, 1);
});
