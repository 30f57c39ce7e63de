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
import { OvsSegment, parseOvsView } from './segment-ovs.js';

const table = (headings: string[], data: unknown[][]) => JSON.stringify({ headings, data });
const EMPTY = table(['name'], []);
/** iface_types of OVS 3.1 on Debian 12 (this machine; built with AF_XDP). */
const WITH_AFXDP = [
  'afxdp',
  'afxdp-nonpmd',
  'bareudp',
  'erspan',
  'geneve',
  'gre',
  'gtpu',
  'internal',
  'ip6erspan',
  'ip6gre',
  'lisp',
  'patch',
  'stt',
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
  t.regex(err.message, /iface_types: bareudp, erspan, geneve/);
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

/** ovs-vsctl's words when vswitchd could not open a port it added (exit status 0). */
const SETUP_ERROR =
  "ovs-vsctl: Error detected while setting up 'l2fv7': could not add network device l2fv7 to ofproto (Invalid argument).  See ovs-vswitchd log for details.\n" +
  'ovs-vsctl: The default log directory is "/var/log/openvswitch".\n';

test('ovs ports - a port vswitchd could not open fails the attach with its reason and the fix, not a silent success', async (t) => {
  const runner = new FakeRunner().on(() => true, { stderr: SETUP_ERROR });
  const seg = new OvsSegment(
    { runner, netns: undefined },
    { interface: { type: 'afxdp', options: { 'xdp-mode': 'native' } } },
  );
  const err = await t.throwsAsync(seg.attach('l2fv7', { type: 'ovs', bridge: 'br-cdn' }));
  t.regex(err.message, /OVS could not open port l2fv7 \(type=afxdp xdp-mode=native\)/);
  t.regex(err.message, /could not add network device l2fv7 to ofproto \(Invalid argument\)/);
  t.regex(err.message, /ovsPorts/);
  t.regex(err.message, /ovs-vswitchd log/);
});

test('ovs ports - a port whose Interface has an error is not attached (re-plugged, so the error shows again)', (t) => {
  const bridges = table(['name', 'ports'], [['br-cdn', ['set', [['uuid', 'p1']]]]]);
  const ports = table(
    ['_uuid', 'name', 'tag', 'vlan_mode'],
    [[['uuid', 'p1'], 'l2fv7', 0, 'access']],
  );
  const row = (error: unknown) =>
    table(
      ['name', 'type', 'options', 'error'],
      [['l2fv7', 'afxdp', ['map', [['xdp-mode', 'generic']]], error]],
    );
  const want = { type: 'afxdp', options: { 'xdp-mode': 'generic' } };
  const devices = new Set(['l2fv7']);
  const ok = parseOvsView(bridges, ports, { json: row(['set', []]), want }, devices);
  t.is(ok.attachments.length, 1);
  const broken = parseOvsView(
    bridges,
    ports,
    { json: row('could not open network device l2fv7 (Operation not supported)'), want },
    devices,
  );
  t.deepEqual(broken.attachments, []);
});
