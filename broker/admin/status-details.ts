/**
 * google.rpc.Status with google.rpc.BadRequest details, hand-encoded in protobuf wire
 * format for the `grpc-status-details-bin` trailer (what grpcurl and other gRPC
 * clients decode), and decoded again for the l2fed CLI. Hand-written because the
 * google/rpc protos are not part of our generated code; the messages are tiny.
 */
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';

/** One wrong request field: its path (e.g. "read_mask.paths[0]") and what to do. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export const BAD_REQUEST_TYPE_URL = 'type.googleapis.com/google.rpc.BadRequest';

/** Serialises google.rpc.Status{code, message, details: [Any(BadRequest)]}. */
export function encodeBadRequestStatus(
  code: number,
  message: string,
  violations: readonly FieldViolation[],
): Buffer {
  const badRequest = new BinaryWriter();
  for (const v of violations) {
    badRequest.uint32(10).fork().uint32(10).string(v.field).uint32(18).string(v.description).join();
  }
  const any = new BinaryWriter()
    .uint32(10)
    .string(BAD_REQUEST_TYPE_URL)
    .uint32(18)
    .bytes(badRequest.finish());
  const st = new BinaryWriter().uint32(8).int32(code).uint32(18).string(message);
  st.uint32(26).bytes(any.finish());
  return Buffer.from(st.finish());
}

function fields(buf: Uint8Array, onField: (no: number, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(buf);
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    if (!onField(no, r)) r.skip(wireType);
  }
}

/** Field violations from a `grpc-status-details-bin` value; [] when there are none. */
export function decodeFieldViolations(bin: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  fields(bin, (no, r) => {
    if (no !== 3) return false;
    let typeUrl = '';
    let value: Uint8Array = new Uint8Array();
    fields(r.bytes(), (n, a) => {
      if (n === 1) typeUrl = a.string();
      else if (n === 2) value = a.bytes();
      else return false;
      return true;
    });
    if (typeUrl !== BAD_REQUEST_TYPE_URL) return true;
    fields(value, (n, b) => {
      if (n !== 1) return false;
      let field = '';
      let description = '';
      fields(b.bytes(), (m, v) => {
        if (m === 1) field = v.string();
        else if (m === 2) description = v.string();
        else return false;
        return true;
      });
      out.push({ field, description });
      return true;
    });
    return true;
  });
  return out;
}
