import test from 'ava';
import type { ConsumerInfo } from 'nats';
import { consumersToReap } from './consumer-guard.js';

const info = (name: string, filter: string | undefined, created: number, durable = false) =>
  ({
    name,
    created: new Date(created).toISOString(),
    config: {
      ...(filter === undefined ? {} : { filter_subject: filter }),
      ...(durable ? { durable_name: name } : {}),
    },
  }) as unknown as ConsumerInfo;

test("consumer guard - reaps every cluster's durables and all but its newest watches; spares the broker's", (t) => {
  const key = (id: string) => `$KV.l2fed_peermaps.${id}`;
  const all = [
    info('a-old', key('a'), 1),
    info('a-new', key('a'), 3),
    info('a-mid', key('a'), 2),
    info('a-durable', key('a'), 4, true),
    info('b-1', key('b'), 1),
    info('broker-keys', '$KV.l2fed_peermaps.>', 1),
    info('admin-watch', undefined, 1),
    info('admin-durable', '$KV.l2fed_peermaps.>', 1, true),
  ];
  const reaped = consumersToReap(all, 2).map((c) => c.name);
  t.deepEqual(reaped.sort(), ['a-durable', 'a-old']);
  t.deepEqual(
    consumersToReap(all, 1)
      .map((c) => c.name)
      .sort(),
    ['a-durable', 'a-mid', 'a-old'],
  );
});
