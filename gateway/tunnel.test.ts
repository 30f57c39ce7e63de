/**
 * The tunnel backend choice (issue 17: kernel WireGuard detection was untested): the
 * kernel module present or absent → the backend and the message the gateway logs.
 */
import test from 'ava';
import { chooseTunnel, WIREGUARD_MODULE_DIR } from './tunnel.js';

/** A filesystem where only `present` exists; records what was asked. */
function fakeFs(present: readonly string[]) {
  const asked: string[] = [];
  const exists = (path: string) => {
    asked.push(path);
    return Promise.resolve(present.includes(path));
  };
  return { asked, exists };
}

test('tunnel choice - wireguard module loaded: kernel WireGuard, saying why', async (t) => {
  const fs = fakeFs(['/sys/module/wireguard']);
  const c = await chooseTunnel(fs.exists);
  t.is(c.kind, 'kernel');
  t.is(c.reason, 'kernel WireGuard: the wireguard module is loaded (/sys/module/wireguard exists)');
  t.deepEqual(fs.asked, ['/sys/module/wireguard']);
});

test('tunnel choice - no wireguard module: wireguard-go, naming what is missing and the remedy', async (t) => {
  const fs = fakeFs(['/sys/module/vxlan']);
  const c = await chooseTunnel(fs.exists);
  t.is(c.kind, 'wireguard-go');
  t.is(
    c.reason,
    'wireguard-go (userspace): the kernel has no wireguard module loaded ' +
      '(/sys/module/wireguard is missing); `modprobe wireguard` on the node and a restart ' +
      'use kernel WireGuard, `tunnel: wireguard-go` keeps this choice',
  );
  t.is(WIREGUARD_MODULE_DIR, '/sys/module/wireguard');
});

test('tunnel choice - the real filesystem gives one of the two, consistent with /sys', async (t) => {
  const { access } = await import('node:fs/promises');
  const loaded = await access('/sys/module/wireguard').then(
    () => true,
    () => false,
  );
  t.is((await chooseTunnel()).kind, loaded ? 'kernel' : 'wireguard-go');
});
