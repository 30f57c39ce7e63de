import test from 'ava';
import { GatewayMetrics, serveMetrics } from './metrics.js';
import { ConfigError } from './errors.js';
import type { HealthReport, PeerHealth, PeerStatus } from './health.js';

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

/** One peer of a health report; the rest of PeerHealth as a quiet tunnel reports it. */
function peerHealth(
  name: string,
  o: { status?: PeerStatus; rx?: number; tx?: number; key?: string } = {},
): PeerHealth {
  return {
    name,
    publicKey: o.key ?? `key-${name}`,
    endpoint: undefined,
    endpointSource: 'none',
    endpointFailovers: 0,
    handshakeAgeSeconds: 3,
    rxBytes: o.rx ?? 0,
    txBytes: o.tx ?? 0,
    probe: { sent: 1, received: 1, loss: 0, rttMs: 1 },
    status: o.status ?? 'up',
    reason: '',
  };
}

function healthReport(peers: PeerHealth[]): HealthReport {
  return {
    at: '',
    identity: 'madrid',
    tunnel: { kind: 'fake', ifname: 'l2fa', up: true },
    peers,
    networks: [],
  };
}

/** The `# TYPE` line and the samples of one metric, as a scrape shows them, sorted. */
async function scraped(m: GatewayMetrics, name: string): Promise<string[]> {
  const lines = (await m.registry.metrics()).split('\n');
  return [
    ...lines.filter((l) => l === `# TYPE ${name} gauge` || l === `# TYPE ${name} counter`),
    ...lines.filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).sort(),
  ];
}

test('metrics - peer state: one series per state, 1 for the current one, gone with the peer', async (t) => {
  const m = new GatewayMetrics('madrid');
  m.observeHealth(
    healthReport([
      peerHealth('a'),
      peerHealth('b', { status: 'degraded' }),
      peerHealth('c', { status: 'down' }),
    ]),
  );
  t.deepEqual(await scraped(m, 'l2fed_gateway_peer_state'), [
    '# TYPE l2fed_gateway_peer_state gauge',
    'l2fed_gateway_peer_state{peer="a",state="degraded",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="a",state="down",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="a",state="up",gateway="madrid"} 1',
    'l2fed_gateway_peer_state{peer="b",state="degraded",gateway="madrid"} 1',
    'l2fed_gateway_peer_state{peer="b",state="down",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="b",state="up",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="c",state="degraded",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="c",state="down",gateway="madrid"} 1',
    'l2fed_gateway_peer_state{peer="c",state="up",gateway="madrid"} 0',
  ]);
  // tunnel_up keeps its meaning (the probe passes): 1 for a degraded peer too.
  t.deepEqual(await scraped(m, 'l2fed_gateway_tunnel_up'), [
    '# TYPE l2fed_gateway_tunnel_up gauge',
    'l2fed_gateway_tunnel_up{peer="a",gateway="madrid"} 1',
    'l2fed_gateway_tunnel_up{peer="b",gateway="madrid"} 1',
    'l2fed_gateway_tunnel_up{peer="c",gateway="madrid"} 0',
  ]);
  // b recovers, c leaves the config.
  m.observeHealth(healthReport([peerHealth('a'), peerHealth('b')]));
  t.deepEqual(await scraped(m, 'l2fed_gateway_peer_state'), [
    '# TYPE l2fed_gateway_peer_state gauge',
    'l2fed_gateway_peer_state{peer="a",state="degraded",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="a",state="down",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="a",state="up",gateway="madrid"} 1',
    'l2fed_gateway_peer_state{peer="b",state="degraded",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="b",state="down",gateway="madrid"} 0',
    'l2fed_gateway_peer_state{peer="b",state="up",gateway="madrid"} 1',
  ]);
});

test('metrics - peer byte counters never go backwards: a rebuilt tunnel (counters back to 0, or a new key) keeps adding', async (t) => {
  const m = new GatewayMetrics('madrid');
  const bytes = async () => [
    ...(await scraped(m, 'l2fed_gateway_peer_received_bytes_total')),
    ...(await scraped(m, 'l2fed_gateway_peer_sent_bytes_total')),
  ];
  // The gateway starts beside a tunnel that already carried traffic: the counters start
  // at WireGuard's values.
  m.observeHealth(healthReport([peerHealth('a', { rx: 1000, tx: 400 }), peerHealth('b')]));
  t.deepEqual(await bytes(), [
    '# TYPE l2fed_gateway_peer_received_bytes_total counter',
    'l2fed_gateway_peer_received_bytes_total{peer="a",gateway="madrid"} 1000',
    'l2fed_gateway_peer_received_bytes_total{peer="b",gateway="madrid"} 0',
    '# TYPE l2fed_gateway_peer_sent_bytes_total counter',
    'l2fed_gateway_peer_sent_bytes_total{peer="a",gateway="madrid"} 400',
    'l2fed_gateway_peer_sent_bytes_total{peer="b",gateway="madrid"} 0',
  ]);
  m.observeHealth(healthReport([peerHealth('a', { rx: 1500, tx: 450 }), peerHealth('b')]));
  // The tunnel is rebuilt: WireGuard counts from 0 again (here already 200 and 30).
  m.observeHealth(healthReport([peerHealth('a', { rx: 200, tx: 30 }), peerHealth('b')]));
  t.deepEqual(await bytes(), [
    '# TYPE l2fed_gateway_peer_received_bytes_total counter',
    'l2fed_gateway_peer_received_bytes_total{peer="a",gateway="madrid"} 1700',
    'l2fed_gateway_peer_received_bytes_total{peer="b",gateway="madrid"} 0',
    '# TYPE l2fed_gateway_peer_sent_bytes_total counter',
    'l2fed_gateway_peer_sent_bytes_total{peer="a",gateway="madrid"} 480',
    'l2fed_gateway_peer_sent_bytes_total{peer="b",gateway="madrid"} 0',
  ]);
  // The peer's key changed (rotation): a new WireGuard peer entry, counted from 0 even
  // though its counters (5000, 40) passed the old entry's before this check.
  m.observeHealth(
    healthReport([peerHealth('a', { rx: 5000, tx: 40, key: 'next' }), peerHealth('b')]),
  );
  t.deepEqual(await bytes(), [
    '# TYPE l2fed_gateway_peer_received_bytes_total counter',
    'l2fed_gateway_peer_received_bytes_total{peer="a",gateway="madrid"} 6700',
    'l2fed_gateway_peer_received_bytes_total{peer="b",gateway="madrid"} 0',
    '# TYPE l2fed_gateway_peer_sent_bytes_total counter',
    'l2fed_gateway_peer_sent_bytes_total{peer="a",gateway="madrid"} 520',
    'l2fed_gateway_peer_sent_bytes_total{peer="b",gateway="madrid"} 0',
  ]);
  // a leaves the config and comes back: its series went with it and starts again.
  m.observeHealth(healthReport([peerHealth('b', { rx: 10, tx: 20 })]));
  t.deepEqual(await bytes(), [
    '# TYPE l2fed_gateway_peer_received_bytes_total counter',
    'l2fed_gateway_peer_received_bytes_total{peer="b",gateway="madrid"} 10',
    '# TYPE l2fed_gateway_peer_sent_bytes_total counter',
    'l2fed_gateway_peer_sent_bytes_total{peer="b",gateway="madrid"} 20',
  ]);
  m.observeHealth(healthReport([peerHealth('a', { rx: 7, tx: 8 }), peerHealth('b')]));
  t.deepEqual(
    (await bytes()).filter((l) => l.includes('peer="a"')),
    [
      'l2fed_gateway_peer_received_bytes_total{peer="a",gateway="madrid"} 7',
      'l2fed_gateway_peer_sent_bytes_total{peer="a",gateway="madrid"} 8',
    ],
  );
  // The gauges these counters replace are gone (docs/upgrading.md).
  const text = await m.registry.metrics();
  t.notRegex(text, /l2fed_gateway_peer_(received|sent)_bytes[{ ]/);
});
