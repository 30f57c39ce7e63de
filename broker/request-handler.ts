/**
 * Turns one NATS request into one reply: size check, subject parse, JSON parse,
 * schema validation, then the operation. Every failure becomes a structured
 * `{ ok: false, error: { code, message, field? } }` reply; nothing is written to KV
 * before validation passes, and no thrown value escapes (the broker never crashes
 * on input).
 */
import type { z } from 'zod';
import {
  parseRequestSubject,
  REQUEST_SCHEMAS,
  type Reply,
  type Results,
  type Verb,
} from './protocol.js';
import {
  BadJsonError,
  InvalidRequestError,
  PayloadTooLargeError,
  UnknownSubjectError,
  toErrorBody,
} from './errors.js';
import type { Federation } from './federation.js';

const SCHEMA_HINT = 'see docs/broker.md (Protocol) for the request schema';

/** Explains the first schema issue in words a user can act on. */
function explain(error: z.ZodError): InvalidRequestError {
  const issue = error.issues[0]!;
  const field = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return new InvalidRequestError(`unknown field(s) ${keys}; remove them (${SCHEMA_HINT})`, {
      field: field ? `${field}.${issue.keys[0]}` : issue.keys[0]!,
    });
  }
  // Our own messages (custom / regex / refine) already say what to do; zod's generic
  // ones ("expected string, received number") get a pointer to the schema.
  const hint = issue.code === 'custom' || issue.code === 'invalid_format' ? '' : `; ${SCHEMA_HINT}`;
  return new InvalidRequestError(
    `${field || 'body'}: ${issue.message}${hint}`,
    field ? { field } : undefined,
  );
}

/** Parses and validates a request body for `verb`. Throws typed errors. */
export function decodeRequest<V extends Verb>(
  verb: V,
  data: Uint8Array,
  maxBytes: number,
): z.output<(typeof REQUEST_SCHEMAS)[V]> {
  if (data.length > maxBytes) throw new PayloadTooLargeError(data.length, maxBytes);
  const text = new TextDecoder().decode(data).trim();
  let json: unknown = {};
  if (text !== '') {
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new BadJsonError(
        `request body is not valid JSON (${(err as Error).message}); send a JSON object`,
        { cause: err },
      );
    }
  }
  const r = REQUEST_SCHEMAS[verb].safeParse(json);
  if (!r.success) throw explain(r.error);
  return r.data as z.output<(typeof REQUEST_SCHEMAS)[V]>;
}

/** Handles one request; always resolves to a reply. */
export async function handleRequest(
  federation: Federation,
  subject: string,
  data: Uint8Array,
  maxBytes: number,
): Promise<Reply<Results[Verb]>> {
  try {
    const parsed = parseRequestSubject(subject);
    if (parsed.type === 'error')
      throw new UnknownSubjectError(subject, parsed.message, parsed.field);
    const { clusterId: id, verb } = parsed;
    switch (verb) {
      case 'register':
        return ok(await federation.register(id, decodeRequest(verb, data, maxBytes)));
      case 'rotate-key':
        return ok(await federation.rotateKey(id, decodeRequest(verb, data, maxBytes)));
      case 'deregister':
        decodeRequest(verb, data, maxBytes);
        return ok(await federation.deregister(id));
      case 'exports': {
        const req = decodeRequest(verb, data, maxBytes);
        return ok(await federation.setExports(id, req.networks, req.mtu));
      }
      case 'peerings':
        return ok(await federation.setPeerings(id, decodeRequest(verb, data, maxBytes).peerings));
      case 'get':
        decodeRequest(verb, data, maxBytes);
        return ok(await federation.get(id));
      case 'health':
        return ok(await federation.setHealth(id, decodeRequest(verb, data, maxBytes)));
      case 'announce-key':
        return ok(await federation.announceKey(id, decodeRequest(verb, data, maxBytes)));
      case 'ack-key':
        return ok(await federation.ackKey(id, decodeRequest(verb, data, maxBytes)));
    }
  } catch (err) {
    return { ok: false, error: toErrorBody(err) };
  }
}

const ok = <T>(result: T): Reply<T> => ({ ok: true, result });
