/**
 * Finds and removes what a crashed l2fed run left behind: namespaces named l2fed-*,
 * the daemons l2fed starts (when their command line names an l2fed path or an l2f*
 * interface), stale wireguard-go sockets, run directories, podman containers named
 * l2fed-* (a lab run with --image) and per-namespace /etc/netns/l2fed-* folders (files
 * `ip netns exec` mounts over /etc, e.g. a test's hosts file).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandRunner } from './runner.js';
import { listNamespaces, NETNS_PREFIX, removeNamespace } from './netns.js';
import { listContainers, removeContainer } from './containers.js';

/** Daemons l2fed may start. */
export const DAEMONS = [
  'nats-server',
  'wireguard-go',
  'ovs-vswitchd',
  'ovsdb-server',
  'iperf3',
  // The tests' Kubernetes control plane (test/fixtures/kube-control-plane.ts).
  'etcd',
  'kube-apiserver',
];

/** Interface-name prefix l2fed uses for WireGuard devices (names are machine-wide unique). */
export const WG_IFNAME_PREFIX = 'l2f';

export interface Leftovers {
  readonly namespaces: string[];
  readonly processes: { pid: number; command: string }[];
  readonly wgSockets: string[];
  readonly runDirs: string[];
  /** podman containers whose name starts with the prefix. */
  readonly containers: string[];
  /** /etc/netns/<namespace> folders of namespaces with the prefix. */
  readonly netnsEtc: string[];
}

const NETNS_ETC_DIR = '/etc/netns';

const WG_SOCKET_DIR = '/var/run/wireguard';

async function safeReaddir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Processes among DAEMONS whose argv mentions the prefix (paths) or an l2f* ifname. */
async function findProcesses(prefix: string): Promise<{ pid: number; command: string }[]> {
  const out: { pid: number; command: string }[] = [];
  const marker = prefix === NETNS_PREFIX ? /l2fed-|\bl2f[0-9a-z]/ : new RegExp(escapeRe(prefix));
  for (const entry of await safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
      const isNode = comm === 'node' || comm.startsWith('node ');
      if (!DAEMONS.includes(comm) && !isNode) continue;
      const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      // l2fed's own daemons (lab broker, gateways, agents) are node processes whose
      // config lives in an l2fed- temp dir; other node processes are never touched.
      const ours = isNode ? command.includes(nodeMarker(prefix)) : marker.test(command);
      if (ours) out.push({ pid, command });
    } catch {
      // process exited while we looked
    }
  }
  return out;
}

/** Whether pid has exited: no /proc entry, or a zombie waiting for its parent. */
export async function processExited(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state …": comm may hold spaces and parentheses; the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Waits (bounded by ms) until every pid has exited. */
async function waitUntilGone(pids: readonly number[], ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  let left = [...pids];
  while (left.length > 0 && Date.now() < deadline) {
    const still = await Promise.all(left.map(async (pid) => !(await processExited(pid))));
    left = left.filter((_, i) => still[i]);
    if (left.length > 0) await new Promise((r) => setTimeout(r, 20));
  }
}

function nodeMarker(prefix: string): string {
  return join(tmpdir(), prefix);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Lists leftovers without touching them. */
export async function findLeftovers(
  runner: CommandRunner,
  prefix = NETNS_PREFIX,
): Promise<Leftovers> {
  const namespaces = await listNamespaces(runner, prefix);
  const processes = await findProcesses(prefix);
  const wgSockets =
    prefix === NETNS_PREFIX
      ? (await safeReaddir(WG_SOCKET_DIR))
          .filter((f) => f.startsWith(WG_IFNAME_PREFIX) && f.endsWith('.sock'))
          .map((f) => join(WG_SOCKET_DIR, f))
      : [];
  const runDirs = (await safeReaddir(tmpdir()))
    .filter((f) => f.startsWith(prefix))
    .map((f) => join(tmpdir(), f));
  const containers = await listContainers(runner, prefix);
  const netnsEtc = (await safeReaddir(NETNS_ETC_DIR))
    .filter((f) => f.startsWith(prefix))
    .map((f) => join(NETNS_ETC_DIR, f));
  return { namespaces, processes, wgSockets, runDirs, containers, netnsEtc };
}

export function isClean(l: Leftovers): boolean {
  return (
    l.namespaces.length +
      l.processes.length +
      l.wgSockets.length +
      l.runDirs.length +
      l.containers.length +
      l.netnsEtc.length ===
    0
  );
}

/** Removes leftovers: containers, processes, namespaces, sockets and run dirs. */
export async function cleanup(runner: CommandRunner, prefix = NETNS_PREFIX): Promise<Leftovers> {
  const found = await findLeftovers(runner, prefix);
  // Containers first: they hold mounts of the run dirs and live in the namespaces.
  for (const c of found.containers) await removeContainer(runner, c);
  for (const ns of found.namespaces) await removeNamespace(runner, ns);
  for (const p of found.processes) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // SIGKILL is delivered asynchronously: a process tearing down (a large Node heap on a
  // busy machine) still shows its command line for a moment, so a caller that checks
  // right after would count it as left behind.
  await waitUntilGone(found.processes.map((p) => p.pid));
  for (const s of found.wgSockets) await rm(s, { force: true });
  for (const d of found.runDirs) await rm(d, { recursive: true, force: true });
  for (const d of found.netnsEtc) await rm(d, { recursive: true, force: true });
  return found;
}
