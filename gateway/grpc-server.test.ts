import test from 'ava';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import {
  GatewayServiceClient,
  type GetStateResponse,
  type WatchHealthResponse,
} from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { FakeDataPlane } from './dataplane-fake.js';
import { Gateway } from './gateway.js';
import { configToProto } from './grpc-convert.js';
import { gatewayOverGrpc } from '../test/fixtures/gateway-grpc.js';
import { startGatewayServer } from './grpc-server.js';

const setup = gatewayOverGrpc;

test('grpc - dry run, apply, re-apply over the wire', async (t) => {
  const { plane, config, apply } = await setup(t);
  const dry = await apply({ config: configToProto(config), dryRun: true });
  t.true(dry.steps.includes('plug l2fv100 into ovs:br-cdn vlan 7'));
  t.deepEqual(plane.log.mutations, []);

  const first = await apply({ config: configToProto(config), dryRun: false });
  t.is(first.report?.tunnelMtu, 1420);
  t.deepEqual(first.report?.networks, [{ name: 'cdn', vni: 100, device: 'l2fv100', mtu: 1370 }]);
  t.is(first.report?.publicKey, 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=');
  plane.log.clear();
  const again = await apply({ config: configToProto(config), dryRun: false });
  t.deepEqual(again.steps, []);
  t.deepEqual(plane.log.mutations, []);
  // vxlanPort crosses the wire (0 = the default, so unset above kept DEFAULT_VXLAN_PORT).
  const moved = await apply({
    config: configToProto({ ...config, vxlanPort: 4790 }),
    dryRun: true,
  });
  t.true(
    moved.steps.some((s) => s.includes('dstport 4790')),
    moved.steps.join('\n'),
  );
});

test('grpc - a bad config is INVALID_ARGUMENT naming the field', async (t) => {
  const { plane, config, apply } = await setup(t);
  const pb = configToProto(config);
  pb.networks[0]!.vni = 0;
  pb.networks[0]!.segment = undefined;
  const err = await t.throwsAsync<ServiceError>(apply({ config: pb, dryRun: false }));
  t.is(err?.code, status.INVALID_ARGUMENT);
  t.regex(err?.details ?? '', /networks\[0\]\.vni: vni out of range/);
  t.regex(err?.details ?? '', /networks\[0\]\.segment: segment is required/);
  t.deepEqual(plane.log.mutations, []);
});

test('grpc - a missing segment bridge is FAILED_PRECONDITION', async (t) => {
  const { plane, config, apply } = await setup(t);
  plane.ovs.bridges.clear();
  const err = await t.throwsAsync<ServiceError>(
    apply({ config: configToProto(config), dryRun: false }),
  );
  t.is(err?.code, status.FAILED_PRECONDITION);
});

test('grpc - WatchHealth streams checks; GetState returns the last report', async (t) => {
  const { client, config, apply, monitor } = await setup(t);
  await apply({ config: configToProto(config), dryRun: false });
  const stream = client.watchHealth({});
  const first = new Promise<WatchHealthResponse>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  stream.on('error', () => undefined); // the cancel below ends the stream with CANCELLED
  await new Promise((r) => setTimeout(r, 100)); // let the subscription reach the server
  await monitor.check();
  const h = (await first).health;
  t.is(h?.peers[0]?.status, 'down');
  t.is(h?.networks[0]?.device, 'l2fv100');
  stream.cancel();
  const state = await new Promise<GetStateResponse>((resolve, reject) =>
    client.getState({}, (err, res) => (err ? reject(err) : resolve(res))),
  );
  t.is(state.report?.identity, 'madrid');
  t.is(state.health?.peers[0]?.name, 'bristol');
});

test('grpc - RotateKey before any apply is FAILED_PRECONDITION, after it returns a new key', async (t) => {
  const { runner, client, config, apply } = await setup(t);
  const rotate = () =>
    new Promise<string>((resolve, reject) =>
      client.rotateKey({}, (err, res) => (err ? reject(err) : resolve(res.publicKey))),
    );
  const err = await t.throwsAsync<ServiceError>(rotate());
  t.is(err?.code, status.FAILED_PRECONDITION);
  await apply({ config: configToProto(config), dryRun: false });
  const NEXT = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
  runner.once('wg pubkey', { stdout: NEXT });
  t.is(await rotate(), NEXT);
  const state = await new Promise<GetStateResponse>((resolve, reject) =>
    client.getState({}, (e, res) => (e ? reject(e) : resolve(res))),
  );
  t.is(state.pendingPublicKey, NEXT, 'pending until the next Apply');
});

test('grpc - on a unix socket: 0600, a stale socket is replaced, anything else refused, removed on close', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const gateway = new Gateway({
    runner: new FakeRunner(),
    backends: () => new FakeDataPlane().backends(),
  });
  const socket = join(dir, 'run', 'gateway.sock');
  const first = await startGatewayServer({ gateway, socket });
  t.is(first.address, `unix:${socket}`);
  t.is((await stat(socket)).mode & 0o777, 0o600, 'only root may talk to the gateway');
  t.is((await stat(join(dir, 'run'))).mode & 0o777, 0o700);
  // A killed gateway leaves its socket behind: the next start must still bind.
  const second = await startGatewayServer({ gateway, socket });
  const client = new GatewayServiceClient(second.address, credentials.createInsecure());
  const state = await new Promise<GetStateResponse>((resolve, reject) =>
    client.getState({}, (e, res) => (e ? reject(e) : resolve(res))),
  );
  t.is(state.report, undefined);
  client.close();
  await second.close();
  await first.close();
  await t.throwsAsync(stat(socket), undefined, 'the socket is removed on close');
  const notSocket = join(dir, 'plain-file');
  await writeFile(notSocket, 'x');
  await t.throwsAsync(startGatewayServer({ gateway, socket: notSocket }), {
    message: /exists and is not a socket/,
  });
});
