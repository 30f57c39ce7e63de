import test from 'ava';
import { isOwnInbox } from './broker.js';

test('broker - replies go only to the inbox of the cluster named in the subject', (t) => {
  const ok = ['_INBOX_a.x', '_INBOX_a.x.y', '_INBOX_a.AbC_9-z'];
  for (const r of ok) t.true(isOwnInbox('l2fed.v1.a.get', r), r);
  const bad = [
    '_INBOX_b.x', // another cluster
    '_INBOX.x', // the default (and the broker's own) inbox
    '_INBOX_a', // the prefix alone
    '_INBOX_a.', // empty token
    '_INBOX_a.*', // wildcards
    '_INBOX_a.>',
    '_INBOX_a.x..y',
    '_INBOX_ab.x', // a longer id with the same start
    '$KV.l2fed_peermaps.b',
    '$JS.API.STREAM.PURGE.KV_l2fed_clusters',
    '_INBOX_a.x y',
  ];
  for (const r of bad) t.false(isOwnInbox('l2fed.v1.a.get', r), r);
  t.false(isOwnInbox('other.v1.a.get', '_INBOX_a.x'), 'not a request subject');
  t.false(isOwnInbox('l2fed.v1.*.get', '_INBOX_*.x'), 'wildcard id');
  t.true(
    isOwnInbox('l2fed.v1.Bad_Id.register', '_INBOX_Bad_Id.x'),
    'a malformed id gets its error',
  );
});
