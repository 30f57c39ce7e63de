import test from 'ava';
import { validate } from '../cluster-agent/validate.js';
import { GatewayCallError, type GatewayApi, type GatewayStateView } from '../gateway/client.js';
import type { HealthReport } from '../gateway/client.js';
import { planLab } from './plan.js';
import { expectedPeers, judgeGateway, waitForConvergence } from './convergence.js';

async function examplesPlan() {
  const report = await validate('deploy/examples');
  if (!report.ok) throw new Error('examples must validate');
  return planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: 'ab12', segmentKind: 'bridge' },
  );
}

type PeerStatus = 'up' | 'degraded' | 'down';

/** A gateway state with a config applied and these peers in its latest health check. */
function stateWith(peers: Record<string, PeerStatus>): GatewayStateView {
  const health: HealthReport = {
    at: '2026-11-30T12:00:00Z',
    tunnelKind: 'wireguard-go',
    tunnelIfname: 'l2fwab120',
    tunnelUp: true,
    networks: [],
    peers: Object.entries(peers).map(([name, status]) => ({
      name,
      publicKey: '',
      endpoint: '',
      endpointSource: 'advertised',
      pathMtuNeeded: 0,
      pathMtuShortNetworks: [],
      rxBytes: 0,
      txBytes: 0,
      probeSent: 3,
      probeReceived: status === 'down' ? 0 : 3,
      probeLoss: status === 'down' ? 1 : 0,
      status,
      reason:
        status === 'down' ? 'no handshake yet' : status === 'degraded' ? 'probe loss 33 %' : '',
    })),
  };
  return {
    report: {
      identity: 'x',
      publicKey: '',
      tunnelKind: 'wireguard-go',
      tunnelIfname: 'l2fwab120',
      tunnelMtu: 1420,
      networks: [],
    },
    health,
  };
}

/** A gateway whose GetState answers `view` (an Error: the call fails). */
class StubGateway implements GatewayApi {
  constructor(public view: GatewayStateView | Error) {}
  apply(): never {
    throw new Error('not used');
  }
  getState(): Promise<GatewayStateView> {
    return this.view instanceof Error ? Promise.reject(this.view) : Promise.resolve(this.view);
  }
  rotateKey(): never {
    throw new Error('not used');
  }
  close(): void {}
}

const unavailable = new GatewayCallError('GetState', 'UNAVAILABLE', 'connect refused');

test('lab convergence - expected peers come from the active peerings only', async (t) => {
  const plan = await examplesPlan();
  t.deepEqual(Object.fromEntries(expectedPeers(plan)), {
    athens: ['madrid'],
    bristol: ['madrid'],
    madrid: ['athens', 'bristol'],
  });
});

test('lab convergence - a gateway is converged only with exactly its expected peers, none down', (t) => {
  const judge = (view: GatewayStateView | Error) =>
    judgeGateway('madrid', ['athens', 'bristol'], view);
  t.deepEqual(judge(unavailable).waiting, [`gateway not answering: ${unavailable.message}`]);
  t.deepEqual(judge({ report: undefined, health: undefined }).waiting, ['no config applied yet']);
  t.deepEqual(judge({ ...stateWith({}), health: undefined }).waiting, ['no health check yet']);
  const missing = judge(stateWith({ athens: 'up' }));
  t.deepEqual([missing.ok, missing.up, missing.waiting], [false, 1, ['bristol not configured']]);
  t.deepEqual(judge(stateWith({ athens: 'up', bristol: 'down' })).waiting, [
    'bristol down: no handshake yet',
  ]);
  t.deepEqual(judge(stateWith({ athens: 'up', bristol: 'up', rome: 'up' })).waiting, [
    'rome configured, not expected',
  ]);
  // Degraded still answers (a lost probe on a busy machine): the path works.
  const ok = judge(stateWith({ athens: 'up', bristol: 'degraded' }));
  t.deepEqual([ok.ok, ok.up, ok.waiting], [true, 2, []]);
  // No expected peer: converged once a config is applied (the agent registered).
  t.true(judgeGateway('rome', [], { ...stateWith({}), health: undefined }).ok);
  t.false(judgeGateway('rome', [], { report: undefined, health: undefined }).ok);
});

/** A fake clock whose sleep runs `onTick` with the poll number (1, 2, …). */
function clock(onTick: (poll: number) => void) {
  let t = 0;
  let poll = 0;
  return {
    now: () => t,
    sleep: (ms: number) => {
      t += ms;
      onTick(++poll);
      return Promise.resolve();
    },
  };
}

test('lab convergence - ready only once the last gateway holds its last peer, answering', async (t) => {
  const plan = await examplesPlan();
  const gw = {
    athens: new StubGateway({ report: undefined, health: undefined }),
    bristol: new StubGateway(unavailable),
    madrid: new StubGateway(stateWith({ athens: 'down' })),
  };
  // The federation converges one step per poll, the last-started cluster last.
  const steps: (() => void)[] = [
    () => (gw.athens.view = stateWith({ madrid: 'down' })),
    () => (gw.madrid.view = stateWith({ athens: 'up', bristol: 'down' })),
    () => (gw.athens.view = stateWith({ madrid: 'up' })),
    () => (gw.bristol.view = stateWith({ madrid: 'up' })),
    () => (gw.madrid.view = stateWith({ athens: 'up', bristol: 'up' })),
  ];
  const c = clock((poll) => steps[poll - 1]?.());
  const lines: string[] = [];
  const r = await waitForConvergence(plan, new Map(Object.entries(gw)), {
    ...c,
    pollMs: 1000,
    onProgress: (l) => lines.push(l),
  });
  t.true(r.converged);
  t.is(r.ms, 5000, 'the sixth read, after the last step, is the first with all three');
  t.deepEqual(r.pending, []);
  t.regex(
    lines[0]!,
    /^converging: 0\/3 gateways hold every expected peer, answering \(0\/4 peer links answer, 0 s\); waiting for athens: no config applied yet; bristol: gateway not answering/,
  );
  t.regex(lines.at(-1)!, /2\/3 .*waiting for madrid: bristol down: no handshake yet$/);
});

test('lab convergence - gives up after a stall, naming what is missing; slow progress is no stall', async (t) => {
  const plan = await examplesPlan();
  const gw = {
    athens: new StubGateway(stateWith({ madrid: 'down' })),
    bristol: new StubGateway(stateWith({ madrid: 'down' })),
    madrid: new StubGateway(stateWith({ athens: 'down' })),
  };
  // A link comes up every 50 s (each under the 60 s stall bound, 150 s in all), then
  // bristol never gets configured in madrid.
  const c = clock((poll) => {
    if (poll === 5) gw.athens.view = stateWith({ madrid: 'up' });
    if (poll === 10) gw.madrid.view = stateWith({ athens: 'up' });
    if (poll === 15) gw.bristol.view = stateWith({ madrid: 'up' });
  });
  const r = await waitForConvergence(plan, new Map(Object.entries(gw)), {
    ...c,
    pollMs: 10_000,
    stallMs: 60_000,
  });
  t.false(r.converged);
  t.is(r.ms, 150_000 + 60_000, 'the last improvement, then the stall bound');
  t.deepEqual(
    r.pending.map((p) => [p.cluster, p.waiting]),
    [['madrid', ['bristol not configured']]],
  );
});
