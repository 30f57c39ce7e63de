/**
 * Network namespaces that l2fed creates (lab clusters, pods, test hosts). Every name
 * carries a prefix that starts with "l2fed-", so `l2fed cleanup` can find what a
 * crashed run left behind. dispose() removes exactly what this set created.
 */
import type { CommandRunner, RunOptions, RunResult } from './runner.js';

export const NETNS_PREFIX = 'l2fed-';

/** Linux limits interface names to 15 bytes. */
export const IFNAME_MAX = 15;

export interface VethEnd {
  /** Namespace (full name) or undefined for the root namespace. */
  readonly ns: string | undefined;
  readonly ifname: string;
}

export class NetnsSet {
  private readonly created: string[] = [];

  /** @param prefix full prefix, must start with "l2fed-", for example "l2fed-t1a2b". */
  constructor(
    private readonly runner: CommandRunner,
    readonly prefix: string,
  ) {
    if (!prefix.startsWith(NETNS_PREFIX)) {
      throw new Error(`netns prefix "${prefix}" must start with "${NETNS_PREFIX}"`);
    }
  }

  /** The full namespace name for a short name. */
  nameOf(short: string): string {
    return `${this.prefix}-${short}`;
  }

  /** Namespaces created so far, full names, in creation order. */
  get namespaces(): readonly string[] {
    return this.created;
  }

  /** Creates a namespace with loopback up. Returns its full name. */
  async add(short: string): Promise<string> {
    return this.addNamed(this.nameOf(short));
  }

  /** Like add, with the full name given; it must start with this set's prefix. */
  async addNamed(ns: string): Promise<string> {
    if (!ns.startsWith(this.prefix)) {
      throw new Error(`namespace "${ns}" must start with "${this.prefix}"`);
    }
    await this.runner.run(['ip', 'netns', 'add', ns], { mutates: true });
    this.created.push(ns);
    await this.runner.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], { mutates: true });
    return ns;
  }

  /**
   * Creates a veth pair with each end directly in its namespace (no detour through
   * the root namespace, so parallel runs cannot collide on names) and sets both up.
   */
  async veth(a: VethEnd, b: VethEnd, opts: { mtu?: number } = {}): Promise<void> {
    for (const end of [a, b]) {
      if (end.ifname.length > IFNAME_MAX) {
        throw new Error(`interface name "${end.ifname}" is longer than ${IFNAME_MAX} bytes`);
      }
    }
    const nsArgs = (e: VethEnd) => (e.ns ? ['netns', e.ns] : []);
    await this.runner.run(
      [
        'ip',
        'link',
        'add',
        a.ifname,
        ...nsArgs(a),
        'type',
        'veth',
        'peer',
        'name',
        b.ifname,
        ...nsArgs(b),
      ],
      { mutates: true },
    );
    for (const end of [a, b]) {
      const ip = end.ns ? ['ip', '-n', end.ns] : ['ip'];
      if (opts.mtu) {
        await this.runner.run([...ip, 'link', 'set', end.ifname, 'mtu', String(opts.mtu)], {
          mutates: true,
        });
      }
      await this.runner.run([...ip, 'link', 'set', end.ifname, 'up'], { mutates: true });
    }
  }

  /** Adds an address (CIDR, v4 or v6) to an interface in a namespace. */
  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    const extra = cidr.includes(':') ? ['nodad'] : [];
    await this.runner.run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', ifname, ...extra], {
      mutates: true,
    });
  }

  /** Runs a command inside a namespace. */
  exec(
    ns: string,
    argv: readonly string[],
    options: Omit<RunOptions, 'netns'> = {},
  ): Promise<RunResult> {
    return this.runner.run(argv, { ...options, netns: ns });
  }

  /** Kills every process in the namespaces this set made, then deletes them. Idempotent. */
  async dispose(): Promise<void> {
    for (const ns of [...this.created].reverse()) {
      await removeNamespace(this.runner, ns);
    }
    this.created.length = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Kills all processes inside ns (SIGKILL), then deletes it. Missing ns is not an error. */
export async function removeNamespace(runner: CommandRunner, ns: string): Promise<void> {
  const pids = await runner.run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  if (pids.exitCode !== 0) return; // already gone
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  await runner.run(['ip', 'netns', 'del', ns], { mutates: true, allowFailure: true });
}

/** Names of existing namespaces that start with prefix. */
export async function listNamespaces(
  runner: CommandRunner,
  prefix = NETNS_PREFIX,
): Promise<string[]> {
  const r = await runner.run(['ip', '-j', 'netns', 'list'], { allowFailure: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const parsed = JSON.parse(r.stdout) as { name: string }[];
  return parsed.map((n) => n.name).filter((n) => n.startsWith(prefix));
}
