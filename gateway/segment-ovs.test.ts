/**
 * OVS port settings (`ovsPorts`, OvsSegment's `interface` option) against what the OVS
 * offers: a port type the running OVS does not list in `iface_types` (AF_XDP on an OVS
 * built without it) is refused before any change, naming the setting and the fix,
 * instead of a raw ovs-vsctl error or a port that silently carries nothing. Fakes only;
 * test/integration/gateway-afxdp.test.ts runs the real OVS.
 */
import test from 'ava';
import { FakeRunner } from '../lib/runner-fake.js';
import { PreconditionError } from './errors.js';
import { OvsSegment } from './segment-ovs.js';

const table = (headings: string[], data: unknown[][]) => JSON.stringify({ headings, data });
const EMPTY = table(['name'], []);
/** `list Open_vSwitch` iface_types of OVS 3.1 on Debian 12 (built with AF_XDP). */
const WITH_AFXDP = [
  'afxdp',
  'afxdp-nonpmd',
  'erspan',
  'geneve',
  'gre',
  'internal',
  'patch',
  'system',
  'tap',
  'vxlan',
];
const WITHOUT_AFXDP = WITH_AFXDP.filter((t) => !t.startsWith('afxdp'));

function ovs(types: string[]) {
  const isTypes = (a: readonly string[]) => a.includes('Open_vSwitch');
  return new FakeRunner()
    .on(isTypes, { stdout: table(['iface_types'], [[['set', types]]]) })
    .on(() => true, { stdout: EMPTY });
}

const AFXDP = { type: 'afxdp', options: { 'xdp-mode': 'generic' } };

test('ovs ports - a type this OVS does not offer is refused before any change, naming the setting and the fix', async (t) => {
  const runner = ovs(WITHOUT_AFXDP);
  const seg = new OvsSegment({ runner, netns: undefined }, { interface: AFXDP });
  const err = await t.throwsAsync(seg.read([]), { instanceOf: PreconditionError });
  t.regex(err.message, /^ovsPorts\.type: "afxdp" is not a port type of this Open vSwitch/);
  t.regex(err.message, /iface_types: erspan, geneve/);
  t.regex(err.message, /remove ovsPorts .* default \(system\) ports/);
  t.regex(err.message, /Open vSwitch built with AF_XDP/);
  t.deepEqual(runner.mutatingCommands(), []);
  // Still refused on the next read: nothing was cached.
  await t.throwsAsync(seg.read([]), { instanceOf: PreconditionError });
});

test('ovs ports - another type missing names it and no AF_XDP advice', async (t) => {
  const seg = new OvsSegment(
    { runner: ovs(WITH_AFXDP), netns: undefined },
    { interface: { type: 'dpdk' } },
  );
  const err = await t.throwsAsync(seg.read([]), { instanceOf: PreconditionError });
  t.regex(err.message, /"dpdk" is not a port type/);
  t.notRegex(err.message, /AF_XDP/);
});

test('ovs ports - an OVS that has not listed its types yet (vswitchd not started) is refused, not guessed', async (t) => {
  const seg = new OvsSegment({ runner: ovs([]), netns: undefined }, { interface: AFXDP });
  const err = await t.throwsAsync(seg.read([]), { instanceOf: PreconditionError });
  t.regex(err.message, /ovs-vswitchd/);
});

test('ovs ports - an offered type is checked once; system ports are never checked', async (t) => {
  const runner = ovs(WITH_AFXDP);
  const seg = new OvsSegment({ runner, netns: undefined }, { interface: AFXDP });
  await seg.read([]);
  await seg.read([]);
  const typeReads = runner.calls.filter((c) => c.argv.includes('Open_vSwitch'));
  t.is(typeReads.length, 1);
  const plain = ovs(WITH_AFXDP);
  await new OvsSegment({ runner: plain, netns: undefined }).read([]);
  await new OvsSegment({ runner: plain, netns: undefined }, { interface: { type: 'system' } }).read(
    [],
  );
  t.false(plain.calls.some((c) => c.argv.includes('Open_vSwitch')));
});
