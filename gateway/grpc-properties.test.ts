/**
 * Property tests at the gateway's gRPC boundary (Apply), over a real socket with the data
 * plane faked: a valid config with one field changed to any value its proto type allows,
 * and random bytes as the request. Every answer is OK or a known refusal that names what
 * was wrong; a refused Apply changes nothing in the data plane.
 */
import test, { type ExecutionContext } from 'ava';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { checkProperty } from '../test/fixtures/property.js';
import { gatewayOverGrpc } from '../test/fixtures/gateway-grpc.js';
import type { ApplyRequest } from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { configToProto } from './grpc-convert.js';

const APPLY = '/l2fed.gateway.v1.GatewayService/Apply';

/** The shared gateway-over-gRPC fixture plus a raw client for undecodable requests. */
async function setup(t: ExecutionContext) {
  const g = await gatewayOverGrpc(t);
  const raw = new Client(g.address, credentials.createInsecure());
  t.teardown(() => raw.close());
  const applyBytes = (bytes: Buffer) =>
    new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest(
        APPLY,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
  return { ...g, applyBytes };
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Every leaf path of a proto object (arrays by index), and each array itself. */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return [at, ...v.flatMap((x, i) => paths(x, [...at, i]))];
  if (v && typeof v === 'object')
    return Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]));
  return [at];
}

/** A value the proto field's type allows, biased to edge cases. */
function sameTypeValue(old: Json): fc.Arbitrary<Json> {
  if (typeof old === 'string')
    return fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('', ' ', 'x'.repeat(300), '../etc', '198.19.255.1', '[::1]:0', 'l2fv7'),
    );
  if (typeof old === 'number')
    return fc.oneof(
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      fc.constantFrom(0, 1, 4094, 4095, 65_535, 65_536, 16_777_215, 16_777_216),
    );
  if (typeof old === 'boolean') return fc.boolean();
  if (Array.isArray(old)) return fc.constantFrom<Json>([], [...old, ...old]);
  return fc.constant(old);
}

function setAt(root: Json, path: (string | number)[], value: Json): Json {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, Json>;
  let cur = copy;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, Json>;
  cur[path.at(-1)!] = value;
  return copy;
}

test('gateway grpc properties - a valid config with one field changed: applied, or refused naming it with the data plane untouched', async (t) => {
  const { plane, config, apply } = await setup(t);
  const base = configToProto(config) as unknown as Json;
  await apply({ config: configToProto(config), dryRun: false });
  const mutated = fc
    .constantFrom(...paths(base))
    .chain((path) => {
      let old: Json = base;
      for (const k of path) old = (old as Record<string | number, Json>)[k]!;
      return sameTypeValue(old).map((value) => ({ path, value }));
    })
    .map(({ path, value }) => ({ path, config: setAt(base, path, value) }));
  const allowed = new Set([status.OK, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION]);
  await checkProperty(
    t,
    'one-field-mutated Apply',
    fc.asyncProperty(mutated, async ({ path, config: pb }) => {
      plane.log.clear();
      try {
        await apply({ config: pb as unknown as ApplyRequest['config'], dryRun: false });
      } catch (err) {
        const e = err as ServiceError;
        if (!allowed.has(e.code))
          throw new Error(`${path.join('.')}: code ${e.code}: ${e.details}`);
        if (plane.log.mutations.length)
          throw new Error(`refused (${e.details}) but ran ${plane.log.mutations.join('; ')}`);
        if (e.code === status.INVALID_ARGUMENT && !/\w+(\[\d+\])?(\.\w+)*: \S/.test(e.details))
          throw new Error(`refusal names no field: ${e.details}`);
        return;
      }
      // Accepted: the next apply of the original config brings the data plane back.
      await apply({ config: configToProto(config), dryRun: false });
    }),
  );
  plane.log.clear();
  t.deepEqual((await apply({ config: configToProto(config), dryRun: false })).steps, []);
  t.deepEqual(plane.log.mutations, [], 'the data plane is back where it started');
});

test('gateway grpc properties - random bytes as an Apply request: a known refusal, nothing changed', async (t) => {
  const { plane, config, apply, applyBytes } = await setup(t);
  await apply({ config: configToProto(config), dryRun: false });
  plane.log.clear();
  await checkProperty(
    t,
    'random-bytes Apply',
    fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
      try {
        await applyBytes(Buffer.from(bytes));
      } catch (err) {
        const e = err as ServiceError;
        const known =
          e.code === status.INVALID_ARGUMENT ||
          e.code === status.FAILED_PRECONDITION ||
          (e.code === status.INTERNAL && /deserializ/i.test(e.details));
        if (!known) throw new Error(`code ${e.code}: ${e.details}`);
        if (plane.log.mutations.length) throw new Error(`ran ${plane.log.mutations.join('; ')}`);
        return;
      }
      throw new Error('random bytes were applied');
    }),
  );
  t.deepEqual(plane.log.mutations, []);
});
