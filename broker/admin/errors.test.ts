import test from 'ava';
import { status } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  toGrpcStatus,
} from './errors.js';
import { ConflictError, NotRegisteredError, StoreUnavailableError } from '../errors.js';
import { decodeFieldViolations, encodeBadRequestStatus } from './status-details.js';

const CASES: [string, unknown, status][] = [
  ['not found', new NotFoundError('x'), status.NOT_FOUND],
  ['already exists', new AlreadyExistsError('x'), status.ALREADY_EXISTS],
  ['failed precondition', new FailedPreconditionError('x'), status.FAILED_PRECONDITION],
  ['permission denied', new PermissionDeniedError('x'), status.PERMISSION_DENIED],
  [
    'store unavailable',
    new StoreUnavailableError('read', new Error('timeout')),
    status.UNAVAILABLE,
  ],
  ['nats timeout', Object.assign(new Error('TIMEOUT'), { code: 'TIMEOUT' }), status.UNAVAILABLE],
  ['broker not registered', new NotRegisteredError('oslo'), status.NOT_FOUND],
  ['broker conflict', new ConflictError('k', 3), status.ABORTED],
  ['anything else', new Error('boom'), status.INTERNAL],
];

for (const [name, err, code] of CASES)
  test(`admin errors - ${name} maps to ${status[code]}`, (t) => {
    t.is(toGrpcStatus(err).code, code);
  });

test('admin errors - INVALID_ARGUMENT carries BadRequest field violations in the trailer', (t) => {
  const st = toGrpcStatus(new InvalidArgumentError([{ field: 'reason', description: 'say why' }]));
  t.is(st.code, status.INVALID_ARGUMENT);
  t.is(st.details, 'reason: say why');
  const bin = st.metadata!.get('grpc-status-details-bin')[0] as Buffer;
  t.deepEqual(decodeFieldViolations(bin), [{ field: 'reason', description: 'say why' }]);
});

test('admin errors - status details round-trip several violations', (t) => {
  const v = [
    { field: 'a', description: 'first' },
    { field: 'b.c[0]', description: 'second, with ünicode' },
  ];
  t.deepEqual(decodeFieldViolations(encodeBadRequestStatus(3, 'm', v)), v);
  t.deepEqual(decodeFieldViolations(new Uint8Array()), []);
});
