/**
 * The built CLI (node bin/l2fed.js → dist/cli/main.js) against a running broker with
 * real NATS: table and JSON output of the read commands, actions, diagnose, topology,
 * completion, and what errors say. dist/ is rebuilt first when older than the sources.
 */
import { execa } from 'execa';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { testWith } from '../fixtures/privileges.js';
import { DIAGNOSE_STEPS_BEFORE_MTU, seedScenario, startAdminFixture } from '../fixtures/admin.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { startAuthedNats } from '../fixtures/broker.js';

const test = testWith({ tools: ['nats-server'] });
const root = join(import.meta.dirname, '..', '..');
const built = join(root, 'dist', 'cli', 'main.js');

function newestSource(dirs: string[]): number {
  let newest = 0;
  for (const d of dirs)
    for (const f of readdirSync(join(root, d), { recursive: true, encoding: 'utf8' }))
      if (f.endsWith('.ts') && !f.endsWith('.test.ts'))
        newest = Math.max(newest, statSync(join(root, d, f)).mtimeMs);
  return newest;
}

test.before(async () => {
  if (
    existsSync(built) &&
    statSync(built).mtimeMs >= newestSource(['cli', 'broker', 'lib', 'proto/gen'])
  )
    return;
  // tsc exits non-zero on type errors elsewhere but still emits; the CLI must exist.
  await execa('npx', ['tsc', '-p', 'tsconfig.build.json'], {
    cwd: root,
    reject: false,
    timeout: 120_000,
  });
  if (!existsSync(built))
    throw new Error('npx tsc -p tsconfig.build.json did not produce dist/cli/main.js');
});

function l2fed(args: string[], env: Record<string, string> = {}) {
  return execa('node', [join(root, 'bin', 'l2fed.js'), ...args], {
    reject: false,
    timeout: 30_000,
    env: { NO_COLOR: '1', ...env },
  });
}

test('cli - get, describe, status and diagnose against a running broker (table and JSON)', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const env = { L2FED_SERVER: fx.address };

  const clusters = await l2fed(['get', 'clusters'], env);
  t.is(clusters.exitCode, 0, clusters.stderr);
  const lines = clusters.stdout.split('\n');
  t.regex(lines[0]!, /^CLUSTER\s+STATUS\s+ENDPOINTS\s+TRANSIT\s+EXPORTS\s+PEERS\s+HEALTH\s+AGE$/);
  t.regex(
    lines[3]!,
    /^madrid\s+ready\s+198\.18\.0\.\d+:51820\s+100\.64\.\d+\.\d+\s+cdn\(\d+\),iot\(\d+\)\s+2\/2\s+no-report\s+\d+s$/,
  );

  const json = await l2fed(['--server', fx.address, 'get', 'peerings', '-o', 'json']);
  t.is(json.exitCode, 0, json.stderr);
  const peerings = JSON.parse(json.stdout) as {
    name: string;
    state: string;
    reason: string;
    active: boolean;
  }[];
  t.deepEqual(
    peerings.map((p) => [p.name, p.state, p.active ?? false]), // proto3 JSON omits false
    [
      ['athens:bristol', 'PEERING_STATE_WAITING_FOR_CONSENT', false],
      ['athens:madrid', 'PEERING_STATE_NO_COMMON_NETWORK', true],
      ['bristol:madrid', 'PEERING_STATE_ACTIVE', true],
    ],
  );
  t.is(peerings[0]!.reason, 'waiting for bristol to declare athens');

  const nets = await l2fed(['get', 'networks', '--cluster', 'bristol'], env);
  t.regex(
    nets.stdout,
    /^NETWORK\s+VNI\s+MTU\s+MTU SET BY\s+MEMBERS\s+AGE\ncdn\s+\d+\s+-\s+-\s+bristol,madrid\s+\d+s$/,
  );
  const yaml = await l2fed(['get', 'networks', '-o', 'yaml'], env);
  t.regex(yaml.stdout, /- name: cdn\n\s+vni: \d+/);

  const desc = await l2fed(['describe', 'cluster', 'madrid'], env);
  t.is(desc.exitCode, 0, desc.stderr);
  t.regex(desc.stdout, /^id: madrid$/m);
  t.regex(desc.stdout, /Peerings:\n\s+PEERING\s+STATE/);
  const descJson = JSON.parse(
    (await l2fed(['describe', 'peering', 'madrid:bristol', '-o', 'json'], env)).stdout,
  ) as {
    networks: { name: string }[];
  };
  t.deepEqual(
    descJson.networks.map((n) => n.name),
    ['cdn'],
  );

  await fx.writeHealth('madrid', {
    reportedAt: new Date().toISOString(),
    peers: [{ cluster: 'bristol', state: 'up', rttMs: 0.8, lossPct: 0, lastHandshakeAgeSec: 5 }],
    networks: [{ name: 'cdn', vni: 1, state: 'up' }],
  });
  await fx.writeHealth('bristol', {
    reportedAt: new Date().toISOString(),
    peers: [{ cluster: 'madrid', state: 'up', rttMs: 0.9, lossPct: 0, lastHandshakeAgeSec: 7 }],
    networks: [{ name: 'cdn', vni: 1, state: 'down', reason: 'probe frames of 1400 bytes lost' }],
  });
  const status = await l2fed(['status'], env);
  t.is(status.exitCode, 1, 'athens:bristol waits for consent, athens:madrid has no report');
  t.regex(status.stdout, /^CLUSTERS$/m);
  t.regex(status.stdout, /! peering athens:bristol: waiting for bristol to declare athens/);
  t.regex(
    status.stdout,
    /^VERDICT: (WARNING|PROBLEM) — 3 clusters, 3 networks, 1\/3 peerings active/m,
  );
  const statusJson = JSON.parse((await l2fed(['status', '-o', 'json'], env)).stdout) as {
    verdict: { level: string };
  };
  t.not(statusJson.verdict.level, 'ok');

  const waiting = await l2fed(['diagnose', 'athens', 'bristol'], env);
  t.is(waiting.exitCode, 1);
  t.regex(waiting.stdout, /✘ consent\s+waiting for bristol to declare athens/);
  t.regex(waiting.stdout, /first broken link: consent/);
  const mtu = JSON.parse(
    (await l2fed(['diagnose', 'madrid', 'bristol', '-o', 'json'], env)).stdout,
  ) as {
    brokenLink: string;
    steps: { step: string; ok: boolean; detail: string }[];
  };
  t.is(mtu.brokenLink, 'mtu');
  t.regex(
    mtu.steps.at(-1)!.detail,
    /bristol: frames of cdn .* do not cross \(down: probe frames of 1400 bytes lost\)/,
  );
  t.deepEqual(
    mtu.steps.filter((s) => s.ok).map((s) => s.step),
    [...DIAGNOSE_STEPS_BEFORE_MTU],
  );
});

test('cli - actions, audit, topology, watch, completion and error messages', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const env = { L2FED_SERVER: fx.address };

  const noReason = await l2fed(['cordon', 'madrid'], env);
  t.is(noReason.exitCode, 1);
  t.regex(noReason.stderr, /required option '--reason <text>' not specified/);
  const cordon = await l2fed(['cordon', 'madrid', '--reason', 'maintenance'], env);
  t.is(cordon.exitCode, 0, cordon.stderr);
  t.regex(cordon.stdout, /^cordoned madrid; removed from all peer maps \(audit \S+ by insecure\)$/);
  const again = await l2fed(['cordon', 'madrid', '--reason', 'x'], env);
  t.is(again.exitCode, 1);
  t.regex(again.stderr, /^l2fed: ALREADY_EXISTS: cluster "madrid" is already cordoned/);
  const release = await l2fed(['release', 'network', 'cdn', '--reason', 'x'], env);
  t.regex(
    release.stderr,
    /FAILED_PRECONDITION: network "cdn" .* still exported by bristol, madrid/,
  );
  const audit = JSON.parse((await l2fed(['get', 'audit', '-o', 'json'], env)).stdout) as {
    action: string;
  }[];
  t.deepEqual(
    audit.map((a) => a.action),
    ['CordonCluster'],
  );

  const dot = await l2fed(['topology'], env);
  t.regex(dot.stdout, /^graph l2fed \{/);
  t.regex(
    dot.stdout,
    /"madrid" \[label="madrid\\n100\.64\.[\d.]+", style="rounded,dashed", color=orange\];/,
  );
  t.regex(dot.stdout, /"bristol" -- "madrid" \[label="cordoned", style=dashed\];/);
  const dir = await makeRunDir('cli');
  t.teardown(() => dir.remove());
  const mmd = join(dir.path, 'fed.mmd');
  t.is((await l2fed(['topology', '-f', 'mermaid', '--out', mmd], env)).exitCode, 0);
  const { readFile } = await import('node:fs/promises');
  t.regex(await readFile(mmd, 'utf8'), /^flowchart LR\n {2}athens\["athens<br\/>100\.64/);

  // --initial prints the 3 current clusters first: then the stream is surely open.
  const watch = l2fed(
    ['watch', '--kinds', 'cluster', '--initial', '-o', 'json', '--for', '25'],
    env,
  );
  let seen = '';
  watch.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
  const until = async (re: RegExp) => {
    const end = Date.now() + 20_000;
    while (!re.test(seen) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  };
  await until(/(EVENT_KIND_CLUSTER[^]*){3}/);
  await fx.clusters.athens!.request('register', {
    publicKey: (await fx.clusters.athens!.request('get')).cluster!.publicKey,
    endpoints: ['198.18.9.9:51820'],
  });
  await until(/198\.18\.9\.9:51820/);
  watch.kill('SIGINT'); // the CLI cancels the stream and prints a resume token
  const w = await watch;
  t.is(w.exitCode, 0, w.stderr);
  const events = w.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; summary: string });
  t.true(
    events.some(
      (e) =>
        e.kind === 'EVENT_KIND_CLUSTER' &&
        /cluster athens registered \(198\.18\.9\.9:51820/.test(e.summary),
    ),
  );
  t.regex(w.stderr, /resume with: l2fed watch --resume \S+/);

  const comp = await l2fed(['completion', 'bash']);
  t.regex(comp.stdout, /complete -o default -F _l2fed l2fed/);
  t.regex(comp.stdout, /"get"\) words="[^"]*clusters networks peerings tunnels audit/);

  const down = await l2fed(['get', 'clusters', '--timeout', '3'], { L2FED_SERVER: '127.0.0.1:1' });
  t.is(down.exitCode, 1);
  t.regex(
    down.stderr,
    /UNAVAILABLE: .*\n\s+hint: is the broker running with its admin API on 127\.0\.0\.1:1\? Check --server \(or L2FED_SERVER\)/,
  );
  // A filter a kind cannot apply is refused, not ignored (which listed every cluster).
  const unfiltered = await l2fed(['get', 'clusters', '--cluster', 'madrid'], env);
  t.is(unfiltered.exitCode, 1, unfiltered.stdout);
  t.regex(unfiltered.stderr, /--cluster narrows only networks, peerings, tunnels, not clusters/);
  t.is(unfiltered.stdout, '');
  const badKind = await l2fed(['get', 'pods'], env);
  t.regex(
    badKind.stderr,
    /unknown kind "pods"; use one of clusters, networks, peerings, tunnels, audit/,
  );
  const tokenFile = join(dir.path, 'token');
  await writeFile(tokenFile, 'x'.repeat(40));
  const violations = await l2fed(
    ['--token-file', tokenFile, 'describe', 'cluster', 'Not_A_Name'],
    env,
  );
  t.regex(
    violations.stderr,
    /INVALID_ARGUMENT: .*\n\s+field id: "Not_A_Name" is not a valid cluster name/,
  );
});

test('cli - broker main run serves the admin API with --insecure-admin (and warns)', async (t) => {
  // As deployed: the accounts `broker gen-auth` makes, the broker on its credentials.
  const nats = await startAuthedNats(['madrid']);
  t.teardown(() => nats.dispose());
  const credsDir = await makeRunDir('cli-creds');
  t.teardown(() => credsDir.remove());
  const natsEnv = {
    L2FED_NATS_URL: nats.url,
    L2FED_NATS_CREDENTIALS: await nats.writeBrokerCredentials(credsDir.path),
  };
  const broker = execa(
    'node',
    [
      join(root, 'dist', 'broker', 'main.js'),
      'run',
      '--admin-listen',
      // Port 0: the broker binds and prints the port, so no other process can take it first.
      '127.0.0.1:0',
      '--insecure-admin',
    ],
    {
      env: natsEnv,
      reject: false,
      timeout: 60_000,
    },
  );
  t.teardown(() => {
    broker.kill('SIGTERM');
    return broker.then(() => undefined);
  });
  let out = '';
  broker.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  let err = '';
  broker.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const end = Date.now() + 20_000;
  while (!out.includes('admin API') && Date.now() < end)
    await new Promise((r) => setTimeout(r, 100));
  const port = /l2fed admin API \(insecure\) on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  t.truthy(port, out);
  t.regex(err, /has NO authentication \(insecure mode was requested\)/);
  const v = await l2fed(['version', '--server', `127.0.0.1:${port}`]);
  t.regex(v.stdout, /\(broker, api l2fed\.admin\.v1/);
  const none = await l2fed(['get', 'clusters'], { L2FED_SERVER: `127.0.0.1:${port}` });
  t.is(none.stdout, 'no clusters');
  t.deepEqual(nats.brokerViolations(), [], 'the broker needed no NATS right it lacks');

  const refused = await execa(
    'node',
    [join(root, 'dist', 'broker', 'main.js'), 'run', '--admin-listen', '127.0.0.1:0'],
    {
      env: natsEnv,
      reject: false,
      timeout: 30_000,
    },
  );
  t.is(refused.exitCode, 1);
  t.regex(
    refused.stderr,
    /admin API on 127\.0\.0\.1:0 has no authentication configured: give --admin-ca, --admin-cert and --admin-key/,
  );
});

test('cli - uncordon, evict and release through the binary; colour only on a terminal', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const env = { L2FED_SERVER: fx.address };

  t.is((await l2fed(['cordon', 'athens', '--reason', 'maintenance'], env)).exitCode, 0);
  const uncordon = await l2fed(['uncordon', 'athens', '--reason', 'done'], env);
  t.is(uncordon.exitCode, 0, uncordon.stderr);
  t.regex(uncordon.stdout, /^uncordoned athens; peer maps restored \(audit \S+ by insecure\)$/);
  const notCordoned = await l2fed(['evict', 'athens', '--reason', 'gone'], env);
  t.is(notCordoned.exitCode, 1);
  t.regex(
    notCordoned.stderr,
    /FAILED_PRECONDITION: cluster "athens" is not cordoned; cordon it first/,
  );
  const evict = await l2fed(['evict', 'athens', '--reason', 'gone', '--force'], env);
  t.is(evict.exitCode, 0, evict.stderr);
  t.regex(
    evict.stdout,
    /deregistered athens; released transit 100\.64\.[\d.]+; released networks web/,
  );
  const gone = await l2fed(['describe', 'cluster', 'athens'], env);
  t.is(gone.exitCode, 1);
  t.regex(gone.stderr, /NOT_FOUND/);
  const vni = await l2fed(['release', 'vni', '4711', '--reason', 'orphaned'], env);
  t.is(vni.exitCode, 1);
  t.regex(vni.stderr, /NOT_FOUND: VNI 4711 is not claimed; nothing to release/);
  const transit = await l2fed(
    ['release', 'transit', '100.64.250.250', '--reason', 'orphaned'],
    env,
  );
  t.is(transit.exitCode, 1);
  t.regex(transit.stderr, /NOT_FOUND: transit address 100\.64\.250\.250 is not claimed/);
  const audit = JSON.parse((await l2fed(['get', 'audit', '-o', 'json'], env)).stdout) as {
    action: string;
  }[];
  t.deepEqual(
    audit.map((a) => a.action),
    ['CordonCluster', 'UncordonCluster', 'EvictCluster'],
  );

  // Colour: ANSI codes on a terminal (util-linux `script` gives the CLI a pty), none in a
  // pipe, none with NO_COLOR.
  const cmd = `node ${join(root, 'bin', 'l2fed.js')} status`;
  const tty = await execa('script', ['-qec', cmd, '/dev/null'], {
    reject: false,
    timeout: 30_000,
    env: { ...env, TERM: 'xterm', NO_COLOR: undefined },
  });
  const ESC = String.fromCharCode(27);
  t.true(new RegExp(`${ESC}\\[3\\dm`).test(tty.stdout), 'coloured on a terminal');
  const piped = await execa('node', [join(root, 'bin', 'l2fed.js'), 'status'], {
    reject: false,
    timeout: 30_000,
    env: { ...env, TERM: 'xterm', NO_COLOR: undefined },
  });
  t.false(piped.stdout.includes(ESC), 'plain in a pipe');
  const noColor = await execa('script', ['-qec', cmd, '/dev/null'], {
    reject: false,
    timeout: 30_000,
    env: { ...env, TERM: 'xterm', NO_COLOR: '1' },
  });
  t.false(noColor.stdout.includes(ESC), 'plain with NO_COLOR');
  t.regex(noColor.stdout, /VERDICT/);
});
