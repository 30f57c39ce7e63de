/** FirewallBackend on nftables: `nft -j list table` to read, one `nft -f -` script to change. */
import { CommandError, MissingToolError } from '../lib/errors.js';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { change, read, type Host } from './host.js';
import {
  FIREWALL_FAMILY,
  FIREWALL_TABLE,
  firewallRemoveScript,
  firewallScript,
  parseNftTable,
  vxlanSourceChangeScript,
  type FirewallBackend,
  type FirewallSpec,
  type ObservedFirewall,
  type VxlanSourceChange,
} from './firewall.js';

/** `nft` is not installed: the gateway refuses to run VXLAN without its guard. */
export class MissingNftError extends MissingToolError {
  override name = 'MissingNftError';
  constructor() {
    super('nft', 'nftables');
    this.message =
      'nft is not installed; the gateway needs it to let VXLAN in only through the tunnel ' +
      '(docs/gateway.md, "VXLAN only through the tunnel"): apt-get install --no-install-recommends nftables';
  }
}

/** Where Debian's nftables puts `nft`; the default of NftFirewall. */
export const DEFAULT_NFT = '/usr/sbin/nft';

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'];

/**
 * A host tool in the system directories only, never from PATH: under npm/npx, PATH
 * starts with node_modules/.bin, and `node_modules/.bin/nft` is @vercel/nft (a JS file
 * tracer) that exits 0 with no output.
 */
export async function findSystemTool(tool: string): Promise<string | undefined> {
  for (const dir of SYSTEM_DIRS) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/**
 * The absolute path of `nft`, or MissingNftError.
 * @param find tool lookup; tests pass one that finds nothing.
 */
export async function requireNft(
  find: (tool: string) => Promise<string | undefined> = findSystemTool,
): Promise<string> {
  const path = await find('nft');
  if (!path) throw new MissingNftError();
  return path;
}

/** Runs `nft` by absolute path (see findSystemTool), inside the data-plane namespace. */
export class NftFirewall implements FirewallBackend {
  constructor(
    private readonly host: Host,
    private readonly nft: string = DEFAULT_NFT,
  ) {}

  async read(): Promise<ObservedFirewall | undefined> {
    const argv = [this.nft, '-j', 'list', 'table', FIREWALL_FAMILY, FIREWALL_TABLE];
    const r = await read(this.host, argv, { allowFailure: true });
    if (r.exitCode === 0) return parseNftTable(r.stdout);
    // Absent table: exit 1, "Error: No such file or directory". Anything else (no
    // permission, no nf_tables in the kernel) must not look like "absent".
    if (r.exitCode === 1 && /No such file or directory/.test(r.stderr)) return undefined;
    throw new CommandError(argv, r.exitCode, r.stderr, false, { netns: this.host.netns });
  }

  async set(spec: FirewallSpec, elements?: VxlanSourceChange): Promise<void> {
    const input = elements ? vxlanSourceChangeScript(elements) : firewallScript(spec);
    await change(this.host, [this.nft, '-f', '-'], { input });
  }

  async remove(): Promise<void> {
    await change(this.host, [this.nft, '-f', '-'], { input: firewallRemoveScript() });
  }
}
