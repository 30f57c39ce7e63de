/**
 * The broker's command line (broker/main.ts): flags that cannot work are refused with a
 * message naming them, before anything is written or any connection is made.
 */
import test from 'ava';
import { main } from './main.js';

// Serial: these tests set L2FED_NATS_URL.
test.serial('broker main - run refuses an admin setting before it connects to NATS', async (t) => {
  // Nothing listens on port 1: were NATS dialled first, its refusal would hide ours.
  process.env.L2FED_NATS_URL = 'nats://127.0.0.1:1';
  t.teardown(() => delete process.env.L2FED_NATS_URL);
  const err = await t.throwsAsync(
    main(['run', '--admin-listen', '0.0.0.0:7443', '--insecure-admin']),
  );
  t.regex(err.message, /--insecure-admin .*only on a loopback address/);
});
