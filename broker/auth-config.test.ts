import test from 'ava';
import {
  ADMIN_AUDIT_BUCKET,
  BROKER_BUCKETS,
  brokerPermissions,
  clusterPermissions,
  generateFederationAuth,
} from './auth-config.js';
import { AUDIT_BUCKET } from './admin/audit.js';

test('auth config - cluster permissions name only its own subjects and peer-map key', (t) => {
  const p = clusterPermissions('madrid');
  for (const s of [...p.publish.allow, ...p.subscribe.allow]) {
    t.true(s.includes('madrid') || s === '$JS.API.INFO', `${s} is scoped to madrid`);
    t.false(s === '>' || s.startsWith('$JS.API.>') || s.includes('l2fed_clusters'), s);
  }
  t.deepEqual(p.subscribe.allow, ['_INBOX_madrid.>', 'l2fed.peermap.madrid']);
  // No consumer of its own: the broker pushes the map (peer-map-forwarder.ts).
  for (const s of p.publish.allow) t.notRegex(s, /CONSUMER|\$JS\.FC/, s);
  const broker = brokerPermissions(['madrid', 'bristol']);
  t.false('allow_responses' in broker, 'no reply rights beyond the inboxes');
  t.true(broker.publish.allow.includes('_INBOX_madrid.>'));
  t.true(broker.publish.allow.includes('_INBOX_bristol.>'));
});

test('auth config - nkey mode keeps secrets out of the server config; TLS rendered', (t) => {
  const a = generateFederationAuth({
    clusters: ['a', 'b'],
    tls: { certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem', verify: true },
  });
  const b = a.clusters.b!;
  t.is(b.type, 'nkey');
  if (b.type === 'nkey') {
    t.true(a.serverConfig.includes(b.publicKey));
    t.false(a.serverConfig.includes(b.seed));
    t.regex(b.seed, /^SU/);
  }
  t.regex(a.serverConfig, /"ca_file": "\/ca.pem"/);
  t.regex(a.serverConfig, /"verify": true/);
  t.throws(() => generateFederationAuth({ clusters: ['a', 'a'] }), { message: /twice/ });
  t.throws(() => generateFederationAuth({ clusters: ['A_b'] }), { message: /DNS-1123/ });
});

test('auth config - the health verb rides on the own-subject grant; no health bucket access for clusters', (t) => {
  const p = clusterPermissions('madrid');
  t.true(p.publish.allow.includes('l2fed.v1.madrid.>'));
  for (const s of [...p.publish.allow, ...p.subscribe.allow])
    t.false(s.includes('l2fed_health'), s);
  t.true(brokerPermissions(['madrid']).publish.allow.includes('$KV.l2fed_health.>'));
});

test('auth config - the broker user is scoped per bucket: no JetStream wildcard, purge or stream delete', (t) => {
  const p = brokerPermissions(['madrid']);
  for (const s of p.publish.allow) {
    t.false(s === '>' || s.startsWith('$JS.API.>') || s === '$JS.>', s);
    t.notRegex(s, /PURGE|STREAM\.DELETE|STREAM\.UPDATE|MSG\.DELETE|\$JS\.API\.\*/, s);
    if (s.startsWith('$KV.') || s.includes('KV_'))
      t.true(
        BROKER_BUCKETS.some((b) => s.includes(`KV_${b}`) || s.startsWith(`$KV.${b}.`)),
        `${s} names one of the broker's buckets`,
      );
  }
  // The admin API (in the broker) writes its audit log with the broker's user.
  t.is(ADMIN_AUDIT_BUCKET, AUDIT_BUCKET);
  t.true(p.publish.allow.includes(`$KV.${AUDIT_BUCKET}.>`));
  t.true(p.publish.allow.includes(`$JS.API.STREAM.CREATE.KV_${AUDIT_BUCKET}`));
});

test('auth config - the broker user cannot list consumers or follow JetStream advisories (nothing it runs uses them)', (t) => {
  const p = brokerPermissions(['madrid']);
  for (const s of p.publish.allow) t.notRegex(s, /CONSUMER\.LIST|CONSUMER\.NAMES/, s);
  t.deepEqual(p.subscribe.allow, ['l2fed.v1.>', '_INBOX.>']);
});
