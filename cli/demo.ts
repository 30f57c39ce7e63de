/**
 * The foundation demo: the smallest honest end-to-end piece until the lab exists.
 * It starts a real nats-server with JetStream, the broker's admin gRPC server, and two
 * network namespaces joined by a veth, shows each one working, and removes all of it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, StringCodec } from 'nats';
import { NatsServer } from '../lib/nats-process.js';
import { NetnsSet } from '../lib/netns.js';
import { ExecaRunner } from '../lib/runner.js';
import { startAdminServer } from '../broker/admin-server.js';
import { getVersion } from '../broker/admin-client.js';
import { describeError } from '../lib/errors.js';

const ok = (msg: string) => console.log(`  \u2714 ${msg}`);
const step = (msg: string) => console.log(`\u25b6 ${msg}`);

export async function runDemo(): Promise<number> {
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const dir = await mkdtemp(join(tmpdir(), 'l2fed-demo-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    step('nats-server with JetStream (the broker state store)');
    const nats = await NatsServer.start({ dir: join(dir, 'nats') });
    cleanups.push(() => nats.stop());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const kv = await nc.jetstream().views.kv('l2fed_demo');
    const sc = StringCodec();
    await kv.create('vni.cdn', sc.encode('4097'));
    const lost = await kv.create('vni.cdn', sc.encode('4098')).then(
      () => false,
      () => true,
    );
    ok(`${nats.url} (nats-server ${nc.info?.version ?? '?'}, JetStream KV ready)`);
    ok(`KV create is first-writer-wins: second allocation of "cdn" refused = ${lost}`);

    step('broker admin API (gRPC)');
    console.warn('  ! the demo binds the admin API without authentication, on 127.0.0.1 only');
    const admin = await startAdminServer({
      address: '127.0.0.1:0',
      auth: { type: 'insecure' },
    });
    cleanups.push(() => admin.stop());
    const v = await getVersion(admin.address);
    ok(`${admin.address} answers: ${v.component} ${v.version} (${v.api})`);

    step('two network namespaces joined by a veth (198.18.0.0/15, lab-only addresses)');
    const ns = new NetnsSet(new ExecaRunner(), `l2fed-demo${process.pid}`);
    cleanups.push(() => ns.dispose());
    const a = await ns.add('a');
    const b = await ns.add('b');
    await ns.veth({ ns: a, ifname: 'eth0' }, { ns: b, ifname: 'eth0' });
    await ns.addr(a, 'eth0', '198.18.0.1/30');
    await ns.addr(b, 'eth0', '198.18.0.2/30');
    const ping = await ns.exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '198.18.0.2']);
    const summary = ping.stdout.split('\n').find((l) => l.includes('packets transmitted'));
    ok(`${a} -> ${b}: ${summary ?? 'ping ok'}`);

    console.log(
      '\nThe data plane (WireGuard + VXLAN + OVS gateways) and the lab come in later releases.',
    );
    return 0;
  } catch (err) {
    console.error(`demo failed: ${describeError(err)}`);
    return 1;
  } finally {
    step('cleaning up');
    for (const c of cleanups.reverse()) {
      await c().catch((e: unknown) => console.error(`  cleanup: ${describeError(e)}`));
    }
    ok('nothing left behind');
  }
}
