/**
 * EventService.WatchEvents: one JetStream KV watch per requested bucket, merged into
 * the call's stream. Resumable: every event carries a token with the last stream
 * sequence seen per bucket; a new call with it restarts each watch right after.
 * Ends when the client cancels or its deadline passes (grpc-js cancels the call).
 */
import type { KvEntry, QueuedIterator } from 'nats';
import { KvWatchInclude } from 'nats';
import type { EventKind } from '../../proto/gen/l2fed/admin/v1/events.js';
import {
  EventOperation,
  EventServiceService,
  type EventServiceServer,
  type WatchEventsResponse,
} from '../../proto/gen/l2fed/admin/v1/events.js';
import { AdminKv } from './kv.js';
import { InvalidArgumentError } from './errors.js';
import { decodeCursor, encodeCursor, EVENT_SOURCES, summarize, type Cursor } from './events.js';
import { serverStream } from './rpc.js';
import { StoreUnavailableError } from '../errors.js';
import type { AdminContext } from './context.js';
import type { AdminService } from './server.js';

const isStreamMissing = (err: unknown) => /stream not found/i.test(String((err as Error)?.message));

/** The EventService implementation. */
export function eventService(ctx: AdminContext): AdminService {
  const impl: EventServiceServer = {
    watchEvents: serverStream(
      'WatchEvents',
      async (call) => {
        const req = call.request;
        const cursor: Cursor = req.resumeToken ? decodeCursor(req.resumeToken) : {};
        if (req.resumeToken && req.includeInitial)
          throw InvalidArgumentError.field(
            'include_initial',
            'cannot be combined with resume_token',
          );
        req.kinds.forEach((k, i) => {
          if (!EVENT_SOURCES.some((s) => s.kind === k))
            throw InvalidArgumentError.field(`kinds[${i}]`, `unknown event kind ${k}`);
        });
        const sources = EVENT_SOURCES.filter(
          (s) => req.kinds.length === 0 || req.kinds.includes(s.kind),
        );
        const kv = AdminKv.forDeadline(ctx.nc, call.getDeadline(), ctx.natsUp);
        const watches: { kind: EventKind; it: QueuedIterator<KvEntry> }[] = [];
        const stopAll = () => watches.forEach((w) => w.it.stop());
        call.on('cancelled', stopAll);
        const send = (m: WatchEventsResponse) => {
          if (!call.cancelled) call.write(m);
        };
        let pendingInitial = 0;
        const initialDone = () => {
          if (--pendingInitial === 0) send({ event: undefined, initialDone: true });
        };
        try {
          for (const s of sources) {
            const last = cursor[s.kind];
            const initial = !req.resumeToken && req.includeInitial;
            if (initial) pendingInitial++;
            try {
              const it = await (
                await kv.kv(s.bucket)
              ).watch({
                key: '>',
                include: initial ? KvWatchInclude.LastValue : KvWatchInclude.UpdatesOnly,
                ...(last !== undefined ? { resumeFromRevision: last + 1 } : {}),
                ...(initial ? { initializedFn: initialDone } : {}),
              });
              watches.push({ kind: s.kind, it });
            } catch (err) {
              if (s.optional && isStreamMissing(err)) {
                if (initial) initialDone();
                continue;
              }
              throw new StoreUnavailableError(`watch ${s.bucket}`, err);
            }
          }
        } catch (err) {
          stopAll();
          throw err;
        }
        if (call.cancelled) stopAll();
        await Promise.all(
          watches.map(async ({ kind, it }) => {
            for await (const e of it) {
              const value = e.operation === 'PUT' ? (JSON.parse(e.string()) as unknown) : undefined;
              cursor[kind] = e.revision;
              send({
                event: {
                  kind,
                  operation:
                    value === undefined
                      ? EventOperation.EVENT_OPERATION_DELETE
                      : EventOperation.EVENT_OPERATION_PUT,
                  key: e.key,
                  revision: e.revision,
                  time: e.created,
                  summary: summarize(kind, e.key, value),
                  valueJson: value === undefined ? '' : e.string(),
                  resumeToken: encodeCursor(cursor),
                },
                initialDone: false,
              });
            }
          }),
        );
        if (!call.cancelled)
          throw new StoreUnavailableError(
            'watch',
            new Error('the NATS watch ended (connection closed?)'),
          );
      },
      ctx.log,
    ),
  };
  return { definition: EventServiceService, implementation: impl };
}
