/**
 * One broker replica for bench/broker-scale.ts, in its own process: started as
 * `l2fed broker run` starts it (Broker.start on a connection with the broker credentials
 * `broker gen-auth` generated), plus a count of the KV operations on that connection.
 * Every KV operation nats.js makes is one request on it: `$JS.API.DIRECT.GET.…` (a read),
 * `$KV.…` (a write or delete), `$JS.API.CONSUMER.CREATE.…` (a key listing or watch).
 *
 *   L2FED_BENCH_REPLICA='<json: ReplicaArgs>' node --import tsx bench/broker-scale-replica.ts
 *
 * IPC: sends {type: 'ready'}; answers {type: 'stats'} with ReplicaStats; on
 * {type: 'stop'} drains and exits.
 */
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from 'nats';
import { Broker } from '../broker/broker.js';
import { connectOptionsFor, type Credential } from '../broker/auth-config.js';
import type { BrokerConfigInput } from '../broker/config.js';

export interface ReplicaArgs {
  readonly servers: string;
  readonly credential: Credential;
  readonly config: BrokerConfigInput;
  readonly name: string;
}

export interface ReplicaStats {
  /** KV requests by kind since start. */
  readonly reads: number;
  readonly writes: number;
  readonly listings: number;
  readonly other: number;
  /** process.cpuUsage() user + system, ms. */
  readonly cpuMs: number;
  readonly rssBytes: number;
  /** read/write system calls of the process (/proc/self/io syscr, syscw; 0 where absent). */
  readonly readSyscalls: number;
  readonly writeSyscalls: number;
  readonly handled: number;
  readonly failed: number;
  /** KV operations by "<bucket> <op> <result>" (the replica's own metrics, broker/metrics.ts). */
  readonly kvOps: Record<string, number>;
  /** Requests by verb: count and summed handling time (s), from the replica's metrics. */
  readonly verbs: Record<string, { count: number; seconds: number }>;
}

type MetricValues = {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}[];

/** The replica's KV operation counts and per-verb request times. */
async function fromMetrics(broker: Broker): Promise<Pick<ReplicaStats, 'kvOps' | 'verbs'>> {
  const values = async (name: string): Promise<MetricValues> =>
    ((await broker.metrics.registry.getSingleMetric(name)?.get())?.values ?? []) as MetricValues;
  const kvOps: Record<string, number> = {};
  for (const v of await values('l2fed_broker_kv_operations_total'))
    if (v.value > 0) kvOps[`${v.labels.bucket} ${v.labels.op} ${v.labels.result}`] = v.value;
  const verbs: Record<string, { count: number; seconds: number }> = {};
  for (const v of await values('l2fed_broker_request_duration_seconds')) {
    const verb = String(v.labels.verb);
    const e = (verbs[verb] ??= { count: 0, seconds: 0 });
    if (v.metricName?.endsWith('_count')) e.count = v.value;
    else if (v.metricName?.endsWith('_sum')) e.seconds = v.value;
  }
  return { kvOps, verbs };
}

function countRequests(nc: NatsConnection) {
  const n = { reads: 0, writes: 0, listings: 0, other: 0 };
  const request = nc.request.bind(nc);
  nc.request = (subject, ...rest) => {
    if (subject.startsWith('$JS.API.DIRECT.GET.')) n.reads++;
    else if (subject.startsWith('$KV.')) n.writes++;
    else if (subject.startsWith('$JS.API.CONSUMER.CREATE.')) n.listings++;
    else n.other++;
    return request(subject, ...rest);
  };
  return n;
}

/** syscr and syscw of /proc/self/io: mostly socket reads and writes here. */
function syscalls(): { readSyscalls: number; writeSyscalls: number } {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1] ?? 0);
    return { readSyscalls: field('syscr'), writeSyscalls: field('syscw') };
  } catch {
    return { readSyscalls: 0, writeSyscalls: 0 };
  }
}

async function main(): Promise<void> {
  const args = JSON.parse(process.env.L2FED_BENCH_REPLICA ?? '') as ReplicaArgs;
  const nc = await connect({
    servers: args.servers,
    name: `l2fed-broker-${args.name}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    noAsyncTraces: true, // as Broker.start's own connection
    timeout: 60_000,
    ...connectOptionsFor(args.credential),
  });
  const counts = countRequests(nc);
  const broker = await Broker.start({ nc, name: args.name, config: args.config });
  const send = (m: unknown) => process.send?.(m);
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stats') {
      const cpu = process.cpuUsage();
      void fromMetrics(broker).then((metrics) => {
        const stats: ReplicaStats = {
          ...counts,
          cpuMs: (cpu.user + cpu.system) / 1000,
          rssBytes: process.memoryUsage().rss,
          ...syscalls(),
          handled: broker.stats.handled,
          failed: broker.stats.failed,
          ...metrics,
        };
        send({ type: 'stats', stats });
      });
    } else if (m.type === 'stop') {
      void broker
        .stop()
        .then(() => nc.close())
        .finally(() => process.exit(0));
    }
  });
  // The parent going away (killed bench) ends the replica too.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

main().catch((err: unknown) => {
  console.error(`broker-scale replica: ${String(err)}`);
  process.exit(1);
});
