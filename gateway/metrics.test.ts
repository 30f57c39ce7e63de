import test from 'ava';
import { GatewayMetrics, serveMetrics } from './metrics.js';
import { ConfigError } from './errors.js';

test('metrics - reconcile errors are counted by type and served over HTTP', async (t) => {
  const m = new GatewayMetrics('madrid');
  m.observeApply(0.2, 5);
  m.observeApply(0.01, 0, new ConfigError([{ path: 'x', message: 'y' }]));
  const server = await serveMetrics(m.registry);
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  t.is(res.status, 200);
  const text = await res.text();
  t.regex(text, /l2fed_gateway_reconcile_errors_total\{error="ConfigError",gateway="madrid"\} 1/);
  t.regex(text, /l2fed_gateway_reconcile_steps_total\{gateway="madrid"\} 5/);
  t.is((await fetch(`http://127.0.0.1:${server.port}/other`)).status, 404);
});

test('metrics - peers that leave disappear from the series', async (t) => {
  const m = new GatewayMetrics('madrid');
  const peer = (name: string) => ({
    name,
    publicKey: 'k',
    endpoint: undefined,
    endpointSource: 'none' as const,
    endpointFailovers: 0,
    handshakeAgeSeconds: 3,
    rxBytes: 1,
    txBytes: 2,
    probe: { sent: 1, received: 1, loss: 0, rttMs: 1 },
    status: 'up' as const,
    reason: '',
  });
  const report = (names: string[]) => ({
    at: '',
    identity: 'madrid',
    tunnel: { kind: 'fake', ifname: 'l2fa', up: true },
    peers: names.map(peer),
    networks: [],
  });
  m.observeHealth(report(['a', 'b']));
  m.observeHealth(report(['a']));
  const text = await m.registry.metrics();
  t.regex(text, /peer="a"/);
  t.notRegex(text, /peer="b"/);
});
