import test from 'ava';
import { podmanRunArgv, ROLE_SECURITY } from './containers.js';

const flagValues = (argv: string[], flag: string) =>
  argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));

test('podmanRunArgv: a name without the l2fed- prefix is refused, saying why', (t) => {
  const err = t.throws(() =>
    podmanRunArgv({ name: 'gw', image: 'l2fed:0.1.0', role: 'gateway', args: [] }),
  );
  t.regex(err.message, /must start with "l2fed-".*cleanup/);
});

test('podmanRunArgv: runc, ulimits, all capabilities dropped, then only the role’s', (t) => {
  const gw = podmanRunArgv({
    name: 'l2fed-x-gw',
    image: 'l2fed:0.1.0',
    role: 'gateway',
    netns: 'l2fed-x-athens',
    mounts: [{ host: '/a', container: '/b', readOnly: true }],
    args: ['gateway', 'run'],
  });
  t.deepEqual(gw.slice(0, 4), ['podman', '--runtime', 'runc', 'run']);
  t.deepEqual(flagValues(gw, '--cap-drop'), ['ALL']);
  t.deepEqual(flagValues(gw, '--cap-add'), ['NET_ADMIN,NET_RAW']);
  t.deepEqual(flagValues(gw, '--device'), ['/dev/net/tun']);
  t.deepEqual(flagValues(gw, '--network'), ['ns:/run/netns/l2fed-x-athens']);
  t.deepEqual(flagValues(gw, '--user'), ['0:0']);
  t.deepEqual(flagValues(gw, '--volume'), ['/a:/b:ro']);
  t.is(flagValues(gw, '--ulimit').length, 2);
  t.false(gw.includes('--privileged'));
  t.false(gw.includes('--read-only'));
  t.deepEqual(gw.slice(-3), ['l2fed:0.1.0', 'gateway', 'run']);

  const broker = podmanRunArgv({ name: 'l2fed-x-b', image: 'i', role: 'broker', args: [] });
  t.deepEqual(flagValues(broker, '--user'), [ROLE_SECURITY.broker.user]);
  t.deepEqual(flagValues(broker, '--cap-add'), []);
  t.deepEqual(flagValues(broker, '--network'), ['host']);
  t.true(broker.includes('--read-only'));
});
