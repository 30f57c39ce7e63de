/**
 * Sends the loop beacons (loop-guard.ts): one frame per VXLAN device to LOOP_BEACON_MAC,
 * EtherType 0x88B5, a fresh random 32-bit nonce right after the EtherType, then
 * "l2fed-loop <identity> <device>" for people reading a capture. Unlike the health probe
 * (01:80:c2:00:00:0e, dropped by every bridge) bridges flood this group address, so a
 * beacon follows any loop; tenants see one per network per check. python3 AF_PACKET, as
 * in l2-probe.ts.
 */
import type { CommandRunner } from '../lib/runner.js';
import type { HelperProber } from './prober.js';
import { parseProbeOutput, type ProbeSendResult } from './l2-probe.js';
import { LOOP_BEACON_ETHERTYPE, LOOP_BEACON_MAC } from './loop-guard.js';

const SENDER = `
import os, socket, sys
identity, devices = sys.argv[1], sys.argv[2:]
dst = bytes.fromhex("${LOOP_BEACON_MAC.replaceAll(':', '')}")
for dev in devices:
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            s.bind((dev, 0))
            src = s.getsockname()[4]
            body = os.urandom(4) + ("l2fed-loop " + identity + " " + dev).encode()[:200]
            s.send(dst + src + (${LOOP_BEACON_ETHERTYPE}).to_bytes(2, "big") + body.ljust(46, b"."))
        finally:
            s.close()
        print("sent", dev, flush=True)
    except OSError as e:
        print("failed", dev, str(e).replace(chr(10), " "), flush=True)
`;

/** Sends one beacon per device; the fake in tests records them. */
export interface LoopBeaconSender {
  send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult>;
  /**
   * `nft -j list table FAMILY NAME` without a process (the probe helper's libnftables),
   * as exit code, stdout and stderr; with `sets`, `list set` of each instead, one JSON
   * document per line. undefined when it cannot (the caller runs nft).
   */
  list?(
    family: string,
    table: string,
    netns: string | undefined,
    sets?: readonly string[],
  ): Promise<{ exitCode: number; stdout: string; stderr: string } | undefined>;
  /**
   * The namespace's nftables ruleset generation, which every committed transaction
   * changes (HelperProber.nftGeneration); undefined when it cannot be read.
   */
  generation?(netns: string | undefined): Promise<number | undefined>;
}

export class PythonLoopBeacon implements LoopBeaconSender {
  constructor(private readonly runner: CommandRunner) {}

  async send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    if (devices.length === 0) return { sent: new Set(), failed: new Map() };
    try {
      const r = await this.runner.run(['python3', '-c', SENDER, identity, ...devices], {
        netns,
        allowFailure: true,
        timeoutMs: 5000,
      });
      const out = parseProbeOutput(r.stdout, devices);
      return r.exitCode !== 0 && out.sent.size === 0
        ? { ...out, unavailable: (r.stderr || `python3 exited ${r.exitCode}`).split('\n')[0]! }
        : out;
    } catch (err) {
      return { sent: new Set(), failed: new Map(), unavailable: String(err).split('\n')[0]! };
    }
  }
}

/**
 * Beacons through the gateway's long-lived probe helper (prober.ts), so a check starts no
 * process; a python3 run per check (PythonLoopBeacon) only while the helper cannot run.
 */
export class HelperLoopBeacon implements LoopBeaconSender {
  private readonly fallback: PythonLoopBeacon;

  constructor(
    private readonly helper: HelperProber,
    runner: CommandRunner,
  ) {
    this.fallback = new PythonLoopBeacon(runner);
  }

  async send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    if (devices.length > 0 && (await this.helper.ready(netns))) {
      const r = await this.helper.beacons(identity, devices, netns);
      if (r.unavailable === undefined) return r;
    }
    return this.fallback.send(identity, devices, netns);
  }

  async list(
    family: string,
    table: string,
    netns: string | undefined,
    sets?: readonly string[],
  ): Promise<{ exitCode: number; stdout: string; stderr: string } | undefined> {
    if (!(await this.helper.ready(netns))) return undefined;
    return this.helper.nftList(family, table, netns, sets).catch(() => undefined);
  }

  async generation(netns: string | undefined): Promise<number | undefined> {
    if (!(await this.helper.ready(netns))) return undefined;
    return this.helper.nftGeneration(netns).catch(() => undefined);
  }
}
