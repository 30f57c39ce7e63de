/**
 * The long-lived probe helper (gateway/prober.ts) against real namespaces: one process
 * for any number of echoes and frame sends; ICMP echo with RTT and loss; don't-fragment
 * at the asked size (a size over the route MTU fails with DF, passes without); IPv6;
 * restarted after it dies; gone after close().
 */
import type { ExecutionContext } from 'ava';
import { ExecaRunner, RecordingRunner, type CommandRunner } from '../../lib/runner.js';
import { NetnsSet } from '../../lib/netns.js';
import { shortId } from '../../lib/short-id.js';
import { HelperProber } from '../../gateway/prober.js';
import { HELPER_SCRIPT } from '../../gateway/prober-helper.js';
import { createInterface } from 'node:readline';
import { requireNft } from '../../gateway/firewall-nft.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'python3'] });

/** Two throwaway namespaces joined by a veth (pa 198.19.255.1/24 in a; pb in b, no address). */
async function pair(t: ExecutionContext, runner: CommandRunner) {
  t.timeout(60_000);
  const netns = new NetnsSet(runner, `l2fed-pr${shortId()}`);
  t.teardown(() => netns.dispose());
  const a = await netns.add('a');
  const b = await netns.add('b');
  await netns.veth({ ns: a, ifname: 'pa' }, { ns: b, ifname: 'pb' });
  await netns.addr(a, 'pa', '198.19.255.1/24');
  return { netns, a, b };
}

test('prober helper - echoes, DF sizes, IPv6, frames: one process; restarts; closes', async (t) => {
  t.timeout(60_000);
  const runner = new RecordingRunner(new ExecaRunner());
  const netns = new NetnsSet(runner, `l2fed-pr${shortId()}`);
  t.teardown(() => netns.dispose());
  const a = await netns.add('a');
  const b = await netns.add('b');
  await netns.veth({ ns: a, ifname: 'pa' }, { ns: b, ifname: 'pb' }, { mtu: 1400 });
  await netns.addr(a, 'pa', '198.19.255.1/24');
  await netns.addr(b, 'pb', '198.19.255.2/24');
  await netns.addr(a, 'pa', 'fd00:18::1/64');
  await netns.addr(b, 'pb', 'fd00:18::2/64');
  const helper = new HelperProber(runner);
  t.teardown(() => helper.close());
  runner.clear();

  t.true(await helper.ready(a), helper.lastError);
  const small = await helper.echo({ address: '198.19.255.2', count: 3 }, a);
  t.like(small, { sent: 3, received: 3, loss: 0 });
  t.true((small.rttMs ?? 0) > 0);
  // The route MTU is 1400: DF at 1400 crosses, DF at 1401 cannot leave (EMSGSIZE: sent,
  // unanswered, as ping counts it).
  t.like(await helper.echo({ address: '198.19.255.2', count: 2, size: 1400 }, a), {
    received: 2,
  });
  t.like(await helper.echo({ address: '198.19.255.2', count: 2, size: 1401 }, a), {
    sent: 2,
    received: 0,
    loss: 1,
  });
  t.like(await helper.echo({ address: 'fd00:18::2', count: 2, size: 1400 }, a), { received: 2 });
  t.like(await helper.echo({ address: 'fd00:18::2', count: 2, size: 1401 }, a), { received: 0 });
  // Nobody there: all lost, within ~1.2 s (2 × 0.2 s apart, 1 s wait).
  const started = Date.now();
  t.like(await helper.echo({ address: '198.19.255.9', count: 2 }, a), { received: 0, loss: 1 });
  t.true(Date.now() - started < 3000, `${Date.now() - started} ms`);
  // Many at once, one process.
  const many = await Promise.all(
    Array.from({ length: 40 }, () => helper.echo({ address: '198.19.255.2', count: 3 }, a)),
  );
  t.true(many.every((r) => r.received === 3));
  const frames = await helper.send('site-a', ['pa', 'nope0'], a);
  t.deepEqual([...frames.sent], ['pa']);
  t.regex(frames.failed.get('nope0') ?? '', /No such device/);
  t.deepEqual(
    runner.calls.map((c) => [c.argv[0], c.netns]),
    [['python3', a]],
    'one helper started, nothing else ran',
  );

  // Killed behind its back: the next call starts a new one.
  const pids = await runner.run(['ip', 'netns', 'pids', a]);
  t.is(pids.stdout.trim().split(/\s+/).length, 1);
  await runner.run(['kill', pids.stdout.trim()]);
  await new Promise((r) => setTimeout(r, 200));
  t.true(await helper.ready(a), helper.lastError);
  t.like(await helper.echo({ address: '198.19.255.2', count: 1 }, a), { received: 1 });
  await helper.close();
  const after = await runner.run(['ip', 'netns', 'pids', a]);
  t.is(after.stdout.trim(), '', 'close() leaves no process behind');
});

test('prober helper - counters and the nft table as ip -s -j link and nft -j list say, in its namespace, with no process', async (t) => {
  const runner = new RecordingRunner(new ExecaRunner());
  const { netns, a, b } = await pair(t, runner);
  await netns.addr(b, 'pb', '198.19.255.2/24');
  // The absolute path: under npx, a bare `nft` is node_modules/.bin/nft (@vercel/nft).
  const nftBin = await requireNft();
  await runner.run([nftBin, '-f', '-'], {
    netns: a,
    input:
      'table inet l2fed_t {\n set s1 { type ipv4_addr; elements = { 198.19.255.2 } }\n set s2 { type ipv4_addr; counter; elements = { 198.19.255.3 } }\n chain c {\n  type filter hook output priority 0;\n  meta l4proto icmp counter comment "echo out"\n }\n}\n',
  });
  // A VXLAN device with no destination at all: the kernel drops what it would send
  // (tx_dropped), here the IPv6 router solicitations of its link-local address.
  await runner.run(['ip', 'link', 'add', 'l2fv7', 'type', 'vxlan', 'id', '7', 'dstport', '4797'], {
    netns: a,
  });
  await runner.run(['ip', 'link', 'set', 'l2fv7', 'up'], { netns: a });
  await runner.run(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '1', '-I', 'l2fv7', 'ff02::1'], {
    netns: a,
    allowFailure: true,
  });
  const helper = new HelperProber(runner);
  t.teardown(() => helper.close());
  t.true(await helper.ready(a), helper.lastError);
  await helper.echo({ address: '198.19.255.2', count: 3 }, a); // counters and the nft counter move
  runner.clear();
  const links = await helper.links(a);
  const table = await helper.nftList('inet', 'l2fed_t', a);
  const missing = await helper.nftList('inet', 'l2fed_nope', a);
  const sets = await helper.nftList('inet', 'l2fed_t', a, ['s1', 's2']);
  const missingSet = await helper.nftList('inet', 'l2fed_t', a, ['s1', 'nope']);
  const gen = await helper.nftGeneration(a);
  t.deepEqual(runner.calls, [], 'no process started');
  const ip = JSON.parse(
    (await runner.run(['ip', '-s', '-j', 'link', 'show'], { netns: a })).stdout,
  ) as {
    ifname: string;
    flags: string[];
    stats64: { rx: { packets: number }; tx: { packets: number; dropped: number } };
  }[];
  t.deepEqual(
    links.map((l) => l.ifname).sort(),
    ip.map((l) => l.ifname).sort(),
    'the namespace’s devices',
  );
  for (const l of ip) {
    const h = links.find((x) => x.ifname === l.ifname)!;
    t.is(h.flags?.includes('UP'), l.flags.includes('UP'), `${l.ifname} up`);
    // Read before ip's read: never more (pa may send an IPv6 router solicitation between).
    t.true((h.stats64?.tx.packets ?? -1) <= l.stats64.tx.packets, `${l.ifname} tx`);
    if (l.ifname !== 'pa') t.is(h.stats64?.tx.packets, l.stats64.tx.packets, `${l.ifname} tx`);
  }
  t.true((links.find((l) => l.ifname === 'pa')?.stats64?.tx.packets ?? 0) >= 3);
  // tx_dropped: read for VXLAN devices only, as ip reads it.
  const vx = links.find((l) => l.ifname === 'l2fv7')?.stats64?.tx.dropped ?? -1;
  t.true(vx > 0, `l2fv7 tx_dropped ${vx}`);
  t.true(vx <= ip.find((l) => l.ifname === 'l2fv7')!.stats64.tx.dropped);
  t.is(links.find((l) => l.ifname === 'pa')?.stats64?.tx.dropped, undefined);
  const nft = await runner.run([nftBin, '-j', 'list', 'table', 'inet', 'l2fed_t'], { netns: a });
  t.is(table.exitCode, 0, table.stderr);
  t.deepEqual(JSON.parse(table.stdout), JSON.parse(nft.stdout), 'the same JSON as nft -j list');
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /No such file or directory/);
  // Sets one document per line, as nft -j list set says each (not one run of both:
  // nft 1.0.6 then fills its cache for one of them only).
  t.is(sets.exitCode, 0, sets.stderr);
  const each = await Promise.all(
    ['s1', 's2'].map(
      async (n) =>
        JSON.parse(
          (await runner.run([nftBin, '-j', 'list', 'set', 'inet', 'l2fed_t', n], { netns: a }))
            .stdout,
        ) as unknown,
    ),
  );
  t.deepEqual(
    sets.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown),
    each,
  );
  t.is(missingSet.exitCode, 1);
  t.regex(missingSet.stderr, /No such file or directory/);
  // The generation moves with a committed transaction, and only then.
  await helper.echo({ address: '198.19.255.2', count: 1 }, a); // counters move
  t.is(await helper.nftGeneration(a), gen, 'counters and echoes are no transaction');
  await runner.run([nftBin, 'add', 'element', 'inet', 'l2fed_t', 's1', '{ 198.19.255.9 }'], {
    netns: a,
  });
  const moved = await helper.nftGeneration(a);
  t.not(moved, gen, 'an element added is');
  // Another namespace's transaction is not this one's.
  await runner.run([nftBin, 'add', 'table', 'inet', 'l2fed_other'], { netns: b });
  t.is(await helper.nftGeneration(a), moved, 'every namespace has its own');
});

/** Counts the helper's don't-fragment setsockopt calls; prints the count when it exits. */
const COUNT_DF_SETS = `
import atexit, socket, sys
_df_sets = [0]
_setsockopt = socket.socket.setsockopt
def _counted(self, level, opt, *a):
    if (level, opt) in ((socket.IPPROTO_IP, 10), (socket.IPPROTO_IPV6, 23)):
        _df_sets[0] += 1
    return _setsockopt(self, level, opt, *a)
socket.socket.setsockopt = _counted
atexit.register(lambda: sys.stderr.write("df-sets %d\\n" % _df_sets[0]))
`;

test('prober helper - per-peer cost of a batch: one DF setsockopt per change, not per echo; ≤ 16 reply bytes per peer', async (t) => {
  const runner = new ExecaRunner();
  const { netns, a, b } = await pair(t, runner);
  const peers = Array.from({ length: 20 }, (_, i) => `198.19.255.${i + 2}`);
  for (const addr of peers) await netns.addr(b, 'pb', `${addr}/24`);
  // The real program, with setsockopt counted (what the helper does per echo).
  const proc = runner.spawn(['python3', '-u', '-c', COUNT_DF_SETS + HELPER_SCRIPT], { netns: a });
  t.teardown(() => proc.kill());
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value);
  t.like(JSON.parse(await next()), { ready: true });
  const ask = async (id: number, df: boolean) => {
    const probes = peers.map((addr) => [addr, df ? 1372 : 56, df ? 1 : 0]);
    const req = { id, op: 'echo', count: 3, interval: 0.05, wait: 1, probes };
    proc.stdin.write(JSON.stringify(req) + '\n');
    return next();
  };
  await ask(1, false); // neighbours resolved: the counted batches are answered in full
  const line = await ask(2, true);
  const reply = JSON.parse(line) as { results: [number, number, number | null][] };
  t.deepEqual(
    reply.results.map(([sent, received]) => [sent, received]),
    peers.map(() => [3, 3]),
  );
  t.true(reply.results.every(([, , rtt]) => typeof rtt === 'number' && rtt > 0));
  // [3,3,0.123], per peer: the reply grows by this much, not by {"sent": 3, …} (~50 B).
  const empty = JSON.stringify({ id: 2, results: [] }).length;
  t.true((line.length - empty) / peers.length <= 16, `${line.length} B for ${peers.length}`);
  await ask(3, true);
  proc.stdin.end();
  await proc.exited;
  // 3 batches × 20 peers × 3 echoes = 180 sends; DF changed twice (off, then on).
  t.is(/df-sets (\d+)/.exec(stderr)?.[1], '2', stderr);
});
