/**
 * The active per-network data-path probe. Each health check sends one Ethernet frame
 * into every network's VXLAN device; head-end replication carries a copy to every peer
 * of that network, whose VXLAN device counts it on receipt. So a network's receive
 * counter moves every check while the path works, even when no tenant sends anything,
 * and a counter that stays still names a path that does not (health.ts judges it).
 *
 * The frame goes to 01:80:c2:00:00:0e, a link-local group address that 802.1D bridges
 * must not forward: Linux bridges and OVS (forward-bpdu=false, the default) drop it, so
 * tenants never see a probe. The EtherType is IEEE local experimental 0x88B5.
 *
 * Node has no AF_PACKET sockets. The health monitor sends the frames through its
 * long-lived probe helper (prober.ts); PythonL2Prober, one short python3 run per check
 * for all frames, is the fallback where the helper cannot run (python3 is on every
 * Debian host with OVS; the image installs it). Without python3 the probe is off and
 * health says so; nothing else depends on it.
 */
import type { CommandRunner } from '../lib/runner.js';

/** Where probe frames go: the LLDP group address, never forwarded by a bridge. */
export const PROBE_DST_MAC = '01:80:c2:00:00:0e';
export const PROBE_ETHERTYPE = 0x88b5;

// argv: identity, then device names. Prints "sent <dev>" or "failed <dev> <why>" per
// device; one bad device does not stop the others.
const SENDER = `
import socket, sys
identity, devices = sys.argv[1], sys.argv[2:]
dst = bytes.fromhex("${PROBE_DST_MAC.replaceAll(':', '')}")
for dev in devices:
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            s.bind((dev, 0))
            src = s.getsockname()[4]
            body = ("l2fed-probe " + identity + " " + dev).encode()[:200].ljust(46, b".")
            s.send(dst + src + (${PROBE_ETHERTYPE}).to_bytes(2, "big") + body)
        finally:
            s.close()
        print("sent", dev, flush=True)
    except OSError as e:
        print("failed", dev, str(e).replace(chr(10), " "), flush=True)
`;

export interface ProbeSendResult {
  /** Devices a frame left through. */
  readonly sent: ReadonlySet<string>;
  /** Devices the send failed on, with the reason. */
  readonly failed: ReadonlyMap<string, string>;
  /** Set when no probe could be sent at all (python3 missing, runner error). */
  readonly unavailable?: string;
}

/** Sends probe frames; the fake in tests records the devices. */
export interface L2Prober {
  send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult>;
}

/** Parses the sender's output. Pure. Devices it does not mention count as failed. */
export function parseProbeOutput(stdout: string, devices: readonly string[]): ProbeSendResult {
  const sent = new Set<string>();
  const failed = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(sent|failed) (\S+)(?: (.*))?$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'sent') sent.add(m[2]!);
    else failed.set(m[2]!, m[3] ?? 'send failed');
  }
  for (const d of devices) if (!sent.has(d) && !failed.has(d)) failed.set(d, 'no result');
  return { sent, failed };
}

/** The real prober: python3 in the data-plane namespace. */
export class PythonL2Prober implements L2Prober {
  constructor(private readonly runner: CommandRunner) {}

  async send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    if (devices.length === 0) return { sent: new Set(), failed: new Map() };
    let r;
    try {
      r = await this.runner.run(['python3', '-c', SENDER, identity, ...devices], {
        netns,
        allowFailure: true,
        timeoutMs: 5000,
      });
    } catch (err) {
      return { sent: new Set(), failed: new Map(), unavailable: unavailable(String(err)) };
    }
    const out = parseProbeOutput(r.stdout, devices);
    if (r.exitCode !== 0 && out.sent.size === 0) {
      return { ...out, unavailable: unavailable(r.stderr || `python3 exited ${r.exitCode}`) };
    }
    return out;
  }
}

function unavailable(why: string): string {
  return /ENOENT|No such file/.test(why)
    ? 'python3 is not installed (apt-get install --no-install-recommends python3)'
    : why.split('\n')[0]!;
}
