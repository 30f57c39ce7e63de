import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import { testWith } from '../fixtures/privileges.js';
import { startAdminFixture, type AdminFixture } from '../fixtures/admin.js';
import {
  EventKind,
  EventOperation,
  type Event,
  type WatchEventsRequest,
} from '../../proto/gen/l2fed/admin/v1/events.js';

const test = testWith({ tools: ['nats-server'] });

/** Collects events until `until` holds (or the deadline ends the stream). */
function watch(
  t: ExecutionContext,
  fx: AdminFixture,
  req: Partial<WatchEventsRequest>,
  until: (events: Event[], initialDone: boolean) => boolean,
  deadlineMs = 8000,
): Promise<{ events: Event[]; error?: ServiceError }> {
  const call = fx.api.events.watchEvents(
    { kinds: [], resumeToken: '', includeInitial: false, ...req },
    new Metadata(),
    { deadline: new Date(Date.now() + deadlineMs) },
  );
  t.teardown(() => call.cancel());
  const events: Event[] = [];
  let initialDone = false;
  return new Promise((resolve) => {
    call.on('data', (m: { event?: Event; initialDone: boolean }) => {
      if (m.event) events.push(m.event);
      if (m.initialDone) initialDone = true;
      if (until(events, initialDone)) {
        call.cancel();
        resolve({ events });
      }
    });
    call.on('error', (error: ServiceError) => resolve({ events, error }));
  });
}

test('admin events - live changes stream in, and a resume token continues after the last one', async (t) => {
  const fx = await startAdminFixture(t, { clusters: ['madrid', 'bristol'] });
  const madrid = fx.clusters.madrid!;
  const first = watch(
    t,
    fx,
    { kinds: [EventKind.EVENT_KIND_EXPORTS, EventKind.EVENT_KIND_NETWORK] },
    (e) => e.some((x) => x.kind === EventKind.EVENT_KIND_EXPORTS),
  );
  await new Promise((r) => setTimeout(r, 300)); // let the watches start
  await madrid.request('exports', { networks: ['cdn'] });
  const { events } = await first;
  const exp = events.find((e) => e.kind === EventKind.EVENT_KIND_EXPORTS)!;
  t.is(exp.summary, 'madrid exports cdn');
  t.is(exp.operation, EventOperation.EVENT_OPERATION_PUT);
  t.true(events.some((e) => e.summary === 'madrid joined network cdn'));
  t.true(exp.revision > 0);

  // While nobody watches: more changes. Resuming must deliver them.
  await madrid.request('exports', { networks: ['cdn', 'iot'] });
  const resumed = await watch(
    t,
    fx,
    { resumeToken: exp.resumeToken, kinds: [EventKind.EVENT_KIND_EXPORTS] },
    (e) => e.some((x) => x.summary === 'madrid exports cdn, iot'),
  );
  t.false(
    resumed.events.some((e) => e.revision <= exp.revision),
    'nothing at or before the token',
  );
  t.true(resumed.events.some((e) => e.summary === 'madrid exports cdn, iot'));
  // Watches run on the broker's connection with its generated (per-bucket) rights.
  t.deepEqual(fx.fed.brokerViolations(), [], 'the broker needed no NATS right it lacks');
});

test('admin events - initial snapshot ends with initial_done; bad requests are refused', async (t) => {
  const fx = await startAdminFixture(t, { clusters: ['madrid', 'bristol'] });
  const snap = await watch(
    t,
    fx,
    { includeInitial: true, kinds: [EventKind.EVENT_KIND_CLUSTER] },
    (_e, done) => done,
  );
  t.deepEqual(snap.events.map((e) => e.summary.split(' (')[0]).sort(), [
    'cluster bristol registered',
    'cluster madrid registered',
  ]);

  const bad = await watch(t, fx, { resumeToken: 'not-a-token' }, () => false);
  t.is(bad.error?.code, status.INVALID_ARGUMENT);
  t.regex(bad.error!.details, /resume_token: is not a token from a WatchEvents event/);

  const ended = await watch(t, fx, {}, () => false, 500);
  t.is(ended.error?.code, status.DEADLINE_EXCEEDED, 'the stream ends at the caller deadline');
});
