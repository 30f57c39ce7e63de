/**
 * Runs a private Open vSwitch (one ovsdb-server + one ovs-vswitchd) as supervised
 * children, for the lab and integration tests: each instance has its own database,
 * run directory and sockets under `dir`, so several can run on one machine, each inside
 * its own network namespace. Bridges use the userspace datapath (`netdev`) where the
 * kernel has no OVS module.
 */
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ExecaRunner, type CommandRunner } from './runner.js';
import { supervise, type SupervisedProcess } from './supervisor.js';
import { requireTool } from './tools.js';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsOptions {
  /** Directory owned by this instance (db, sockets, logs, pid files). */
  readonly dir: string;
  readonly netns?: string;
  readonly runner?: CommandRunner;
  /** Extra Open_vSwitch other_config keys set before ovs-vswitchd starts (read at start). */
  readonly otherConfig?: Readonly<Record<string, string>>;
}

export class OvsInstance {
  private constructor(
    readonly options: OvsOptions,
    private readonly db: SupervisedProcess,
    private readonly vswitchd: SupervisedProcess,
  ) {}

  /** unix socket of the database, for `ovs-vsctl --db=unix:…`. */
  get dbSocket(): string {
    return join(this.options.dir, 'db.sock');
  }

  get pids(): (number | undefined)[] {
    return [this.db.pid, this.vswitchd.pid];
  }

  /** Creates the database and starts both daemons; resolves when ovs-vsctl answers. */
  static async start(options: OvsOptions): Promise<OvsInstance> {
    await requireTool('ovsdb-server');
    await requireTool('ovs-vswitchd');
    const runner = options.runner ?? new ExecaRunner();
    const dir = options.dir;
    await mkdir(dir, { recursive: true });
    const dbFile = join(dir, 'conf.db');
    try {
      await access(dbFile);
    } catch {
      await runner.run(['ovsdb-tool', 'create', dbFile, SCHEMA], { mutates: true });
    }
    const env = { OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir, OVS_SYSCONFDIR: dir };
    const sock = join(dir, 'db.sock');
    const db = await supervise({
      name: 'ovsdb-server',
      argv: [
        'ovsdb-server',
        dbFile,
        `--remote=punix:${sock}`,
        `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
        `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
        '-vconsole:off',
        `--log-file=${join(dir, 'ovsdb-server.log')}`,
      ],
      netns: options.netns,
      env,
    });
    let vswitchd: SupervisedProcess | undefined;
    try {
      await waitFor(async () => {
        const r = await runner.run(['ovs-vsctl', `--db=unix:${sock}`, '--no-wait', 'init'], {
          allowFailure: true,
          mutates: true,
        });
        return r.exitCode === 0;
      }, 10_000);
      for (const [k, v] of Object.entries(options.otherConfig ?? {})) {
        await runner.run(
          [
            'ovs-vsctl',
            `--db=unix:${sock}`,
            '--no-wait',
            'set',
            'Open_vSwitch',
            '.',
            `other_config:${k}=${v}`,
          ],
          { mutates: true },
        );
      }
      vswitchd = await supervise({
        name: 'ovs-vswitchd',
        argv: [
          'ovs-vswitchd',
          `unix:${sock}`,
          `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`,
          `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
          '-vconsole:off',
          `--log-file=${join(dir, 'ovs-vswitchd.log')}`,
        ],
        netns: options.netns,
        env,
      });
      // vswitchd is ready once it has written its "cur_cfg" back.
      await waitFor(async () => {
        const r = await runner.run(
          [
            'ovs-vsctl',
            `--db=unix:${sock}`,
            '--timeout=2',
            'add-br',
            'l2fed-probe',
            '--',
            'set',
            'bridge',
            'l2fed-probe',
            'datapath_type=netdev',
          ],
          { allowFailure: true, netns: options.netns, mutates: true },
        );
        return r.exitCode === 0;
      }, 10_000);
      await runner.run(['ovs-vsctl', `--db=unix:${sock}`, '--if-exists', 'del-br', 'l2fed-probe'], {
        netns: options.netns,
        mutates: true,
      });
    } catch (err) {
      await vswitchd?.stop();
      await db.stop();
      throw err;
    }
    return new OvsInstance(options, db, vswitchd);
  }

  /**
   * Freezes (SIGSTOP) or thaws (SIGCONT) ovs-vswitchd. For benchmarks only: a baseline
   * that does not cross OVS is then measured without OVS's idle CPU use (PMD threads
   * polling with pmd-maxsleep still wake up when idle). The datapath stalls while frozen.
   */
  pause(frozen: boolean): void {
    const pid = this.vswitchd.pid;
    if (pid === undefined || !this.vswitchd.running) return;
    process.kill(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Stops both daemons (SIGTERM, then SIGKILL). Idempotent. Leaves `dir` in place. */
  async stop(): Promise<void> {
    this.pause(false);
    await this.vswitchd.stop();
    await this.db.stop();
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
