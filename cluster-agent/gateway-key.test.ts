import test from 'ava';
import {
  activeKey,
  afterApply,
  announcedKey,
  gatewayKey,
  pendingKey,
  UNKNOWN_KEY,
} from './gateway-key.js';

const A = 'a'.repeat(43) + '=';
const B = 'b'.repeat(43) + '=';

test('gateway key - unknown has no active, pending or announced key', (t) => {
  t.is(activeKey(UNKNOWN_KEY), undefined);
  t.is(pendingKey(UNKNOWN_KEY), undefined);
  t.is(announcedKey(UNKNOWN_KEY), undefined);
});

test('gateway key - a pending key equal to the active one is no rotation', (t) => {
  t.deepEqual(gatewayKey(A, A), { phase: 'in-use', active: A });
  t.deepEqual(gatewayKey(A), { phase: 'in-use', active: A });
});

test('gateway key - while rotating the broker is told the pending key, the tunnel keeps the old', (t) => {
  const k = gatewayKey(A, B);
  t.is(k.phase, 'rotating');
  t.is(activeKey(k), A);
  t.is(announcedKey(k), B);
});

test('gateway key - an apply that switched to the pending key ends the rotation', (t) => {
  t.deepEqual(afterApply(gatewayKey(A, B), B), { phase: 'in-use', active: B });
});

test('gateway key - an apply that kept the old key keeps the rotation pending', (t) => {
  t.deepEqual(afterApply(gatewayKey(A, B), A), { phase: 'rotating', active: A, pending: B });
  t.deepEqual(afterApply(UNKNOWN_KEY, A), { phase: 'in-use', active: A });
});
