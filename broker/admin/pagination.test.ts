import test from 'ava';
import { paginate } from './pagination.js';
import { InvalidArgumentError } from './errors.js';

const items = ['a', 'b', 'c', 'd', 'e'];
const id = (s: string) => s;

test('pagination - pages follow the token to the end; totals count everything', (t) => {
  const p1 = paginate(items, { pageSize: 2, pageToken: '' }, id, 'q');
  t.deepEqual(p1.items, ['a', 'b']);
  t.is(p1.totalSize, 5);
  const p2 = paginate(items, { pageSize: 2, pageToken: p1.nextPageToken }, id, 'q');
  t.deepEqual(p2.items, ['c', 'd']);
  const p3 = paginate(items, { pageSize: 2, pageToken: p2.nextPageToken }, id, 'q');
  t.deepEqual(p3.items, ['e']);
  t.is(p3.nextPageToken, '');
});

test('pagination - keys, not offsets: a deleted item does not shift the next page', (t) => {
  const p1 = paginate(items, { pageSize: 2, pageToken: '' }, id, 'q');
  const p2 = paginate(['a', 'c', 'd', 'e'], { pageSize: 2, pageToken: p1.nextPageToken }, id, 'q');
  t.deepEqual(p2.items, ['c', 'd']);
});

test('pagination - default size, and refusals name the field', (t) => {
  t.is(
    paginate(
      Array.from({ length: 150 }, (_, i) => String(i).padStart(3, '0')),
      { pageSize: 0, pageToken: '' },
      id,
      'q',
    ).items.length,
    100,
  );
  const neg = t.throws(() => paginate(items, { pageSize: -1, pageToken: '' }, id, 'q'), {
    instanceOf: InvalidArgumentError,
  });
  t.is(neg?.violations[0]?.field, 'page_size');
  const other = paginate(items, { pageSize: 1, pageToken: '' }, id, 'q').nextPageToken;
  const e = t.throws(() => paginate(items, { pageSize: 1, pageToken: other }, id, 'other'), {
    instanceOf: InvalidArgumentError,
  });
  t.is(e?.violations[0]?.field, 'page_token');
  t.throws(() => paginate(items, { pageSize: 1, pageToken: '%%%' }, id, 'q'), {
    instanceOf: InvalidArgumentError,
  });
});
