/**
 * The gateway.v1 API revision (docs/upgrading.md, Compatibility): why it exists (proto3
 * skips fields a server does not know, so an older gateway drops keep_key and
 * next_public_key without an error) and that the real server reports it.
 */
import test from 'ava';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { ApplyResponse, WireGuard } from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { gatewayOverGrpc } from '../test/fixtures/gateway-grpc.js';
import { GrpcGatewayClient } from './client.js';
import { configToProto, GATEWAY_API_REVISION } from './grpc-convert.js';

test('grpc revision - a field the decoder does not know is dropped without an error (what an older gateway does with keep_key)', (t) => {
  // WireGuard as a gateway without keep_key (field 4) knew it: fields 1-3 and an unknown 9.
  const bytes = WireGuard.encode({
    ifname: 'l2fa',
    listenPort: 51820,
    privateKeyFile: '/k',
    keepKey: false,
  })
    .uint32((9 << 3) | WireType.Varint)
    .uint32(1)
    .finish();
  const decoded = WireGuard.decode(new BinaryReader(bytes));
  t.deepEqual(decoded, { ifname: 'l2fa', listenPort: 51820, privateKeyFile: '/k', keepKey: false });
  // A reply of a gateway older than api_revision decodes as revision 0.
  const old = ApplyResponse.decode(
    ApplyResponse.encode({ steps: [], durationMs: 1, report: undefined, apiRevision: 0 }).finish(),
  );
  t.is(old.apiRevision, 0);
});

test('grpc revision - Apply and dry-run replies carry the API revision', async (t) => {
  const { config, apply, address } = await gatewayOverGrpc(t);
  t.is(GATEWAY_API_REVISION, 1);
  const dry = await apply({ config: configToProto(config), dryRun: true });
  t.is(dry.apiRevision, GATEWAY_API_REVISION);
  const done = await apply({ config: configToProto(config), dryRun: false });
  t.is(done.apiRevision, GATEWAY_API_REVISION);
  // The agent's client hands it on.
  const client = new GrpcGatewayClient(address);
  t.teardown(() => client.close());
  t.is((await client.apply(config)).apiRevision, GATEWAY_API_REVISION);
});
