import test from 'ava';
import { createServer, type Server } from 'node:net';
import { ProcessStartError } from './errors.js';
import { freePort, isAddressInUse, withFreePort } from './ports.js';

const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });

test('ports - a listen on a taken port is recognised as a lost race, from an error or a daemon output', async (t) => {
  const held = await listen(await freePort());
  t.teardown(() => held.close());
  const port = (held.address() as { port: number }).port;
  const err = await t.throwsAsync(listen(port));
  t.true(isAddressInUse(err));
  t.true(
    isAddressInUse(
      new ProcessStartError(
        'nats-server',
        'exited before ready',
        'listen tcp 127.0.0.1:4222: bind: address already in use',
      ),
    ),
  );
  t.false(isAddressInUse(new Error('permission denied')));
  t.false(isAddressInUse(undefined));
});

test('ports - withFreePort tries a new port after a lost race, and only then', async (t) => {
  const tried: number[] = [];
  const port = await withFreePort((p) => {
    tried.push(p);
    if (tried.length < 3)
      return Promise.reject(Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }));
    return Promise.resolve(p);
  });
  t.is(tried.length, 3);
  t.is(port, tried[2]!);

  let calls = 0;
  await t.throwsAsync(
    withFreePort(() => {
      calls++;
      return Promise.reject(new Error('bad config'));
    }),
    { message: 'bad config' },
  );
  t.is(calls, 1, 'any other error is not retried');

  calls = 0;
  await t.throwsAsync(
    withFreePort(
      () => {
        calls++;
        return Promise.reject(
          Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }),
        );
      },
      { attempts: 2 },
    ),
    { message: 'listen EADDRINUSE' },
  );
  t.is(calls, 2, 'bounded');
});
