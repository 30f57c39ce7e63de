/**
 * The broker process serves its metrics (`broker/main.ts run --metrics-listen`, run from
 * source with tsx) against a real nats-server with the generated auth: a cluster's
 * register and a refused request show up on GET /metrics, with the federation gauges
 * read from the real KV. Light on purpose: the series themselves are unit-tested
 * (broker/metrics.test.ts); this checks the wiring of a real process.
 */
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { registerBody, startAuthedNats } from '../fixtures/broker.js';
import { BrokerReplyError } from '../../broker/errors.js';

const test = testWith({ tools: ['nats-server'] });
const root = join(import.meta.dirname, '..', '..');

/** Starts `broker run --metrics-listen 127.0.0.1:0` and returns its metrics URL (bounded). */
async function brokerWithMetrics(t: ExecutionContext, natsUrl: string, creds: string) {
  const p = execa(
    'node',
    ['--import', 'tsx', join(root, 'broker', 'main.ts'), 'run', '--metrics-listen', '127.0.0.1:0'],
    {
      cwd: root,
      env: { L2FED_NATS_URL: natsUrl, L2FED_NATS_CREDENTIALS: creds },
      reject: false,
      timeout: 60_000,
    },
  );
  t.teardown(() => {
    p.kill('SIGTERM');
    return p.then(() => undefined);
  });
  let stdout = '';
  const url = await new Promise<string | undefined>((resolve) => {
    p.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /l2fed broker metrics on (http:\/\/\S+\/metrics)/.exec(stdout);
      if (m) resolve(m[1]);
    });
    void p.then(() => resolve(undefined));
  });
  if (!url)
    throw new Error(`broker exited without serving metrics: ${stdout}\n${(await p).stderr}`);
  return url;
}

/** The value of the sample `name{labels}` in exposition text (labels in any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!] as const),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return NaN;
}

test('broker metrics - a real broker process counts requests and reads the federation from KV', async (t) => {
  const nats = await startAuthedNats(['madrid', 'bristol']);
  t.teardown(() => nats.dispose());
  const dir = await makeRunDir('broker-metrics');
  t.teardown(() => dir.remove());
  const creds = join(dir.path, 'broker.creds.json');
  await writeFile(creds, JSON.stringify(nats.auth.broker), { mode: 0o600 });
  const url = await brokerWithMetrics(t, nats.url, creds);

  const [madrid, bristol] = await nats.clusterClients(['madrid', 'bristol']);
  await madrid!.request('register', registerBody(0));
  await madrid!.request('peerings', { peerings: [{ remoteCluster: 'bristol' }] });
  const refused = await t.throwsAsync(bristol!.request('exports', { networks: ['cdn'] }));
  t.true(refused instanceof BrokerReplyError && refused.code === 'NOT_REGISTERED');

  // The first scrape: the federation gauges are read from KV now (then at most every 30 s).
  const text = await (await fetch(url)).text();
  t.is(sample(text, 'l2fed_broker_requests_total', { verb: 'register', code: 'OK' }), 1);
  t.is(sample(text, 'l2fed_broker_requests_total', { verb: 'exports', code: 'NOT_REGISTERED' }), 1);
  t.is(sample(text, 'l2fed_broker_request_duration_seconds_count', { verb: 'peerings' }), 1);
  t.true(
    sample(text, 'l2fed_broker_kv_operations_total', {
      bucket: 'clusters',
      op: 'create',
      result: 'ok',
    }) >= 1,
  );
  t.is(sample(text, 'l2fed_broker_registered_clusters'), 1);
  t.is(sample(text, 'l2fed_broker_peerings', { consent: 'one_sided' }), 1);
  t.is(sample(text, 'l2fed_broker_peerings', { consent: 'mutual' }), 0);
  t.true(sample(text, 'l2fed_broker_federation_read_timestamp_seconds') > 0);
  t.is(sample(text, 'l2fed_broker_federation_read_errors_total'), 0);
});
