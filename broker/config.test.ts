import test from 'ava';
import { resolveConfig, type BrokerConfigInput } from './config.js';
import { BrokerConfigError } from './errors.js';

test('broker config - the removed consumer-guard settings are refused, saying they were removed and what to do', (t) => {
  for (const key of ['maxWatchersPerCluster', 'consumerSweepIntervalMs']) {
    const err = t.throws(() => resolveConfig({ [key]: 4 }), {
      instanceOf: BrokerConfigError,
    });
    t.regex(err.message, new RegExp(`${key} was removed`), err.message);
    t.regex(err.message, /delete it/, err.message);
    t.regex(err.message, /gen-auth/, err.message);
  }
});

test('broker config - another unknown setting is refused by name', (t) => {
  const err = t.throws(() => resolveConfig({ maxWatchers: 4 } as BrokerConfigInput), {
    instanceOf: BrokerConfigError,
  });
  t.regex(err.message, /maxWatchers/);
});
