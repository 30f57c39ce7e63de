/** Host tools l2fed relies on, and the Debian package that provides each. */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { MissingToolError } from './errors.js';

export const TOOL_PACKAGES = {
  'nats-server': 'nats-server',
  ip: 'iproute2',
  bridge: 'iproute2',
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  'ovs-vsctl': 'openvswitch-switch',
  'ovs-vswitchd': 'openvswitch-switch',
  'ovsdb-server': 'openvswitch-switch',
  ethtool: 'ethtool',
  iperf3: 'iperf3',
  ping: 'iputils-ping',
  tcpdump: 'tcpdump',
  openssl: 'openssl',
  nft: 'nftables',
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of a tool on PATH (plus the sbin dirs a non-login shell may lack), or undefined. */
export async function findTool(tool: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SYSTEM_DIRS].filter(Boolean);
  for (const dir of dirs) {
    const p = join(dir, tool);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Throws MissingToolError naming the Debian package when the tool is absent. */
export async function requireTool(tool: Tool): Promise<string> {
  const p = await findTool(tool);
  if (!p) throw new MissingToolError(tool, TOOL_PACKAGES[tool]);
  return p;
}
