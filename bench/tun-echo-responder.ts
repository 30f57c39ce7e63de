/**
 * Simulated peers' far ends for the benches: a TUN device whose reader answers every
 * ICMP echo request (IPv4) sent into it, the way wireguard-go reads a gateway's in-tunnel
 * echoes from its TUN device and a peer answers them.
 *
 * Why not a veth to a second namespace whose kernel answers: veth hands the request to
 * the far namespace, and its kernel builds and sends the reply, inside the sender's
 * `sendto` (softirq on the sending CPU), so the simulated peer's work was counted as the
 * gateway's helper's (~15 µs per peer per check, 2026-11-30). With a TUN device the
 * request only waits in the device's queue; the reply is built by this process and its
 * delivery runs in this process's `write`, as it runs in wireguard-go's on a node.
 */
import type { CommandRunner, SpawnedProcess } from '../lib/runner.js';

/** Python program: argv[1] = the TUN device to create (IFF_TUN | IFF_NO_PI). */
export const TUN_ECHO_RESPONDER = `
import fcntl, os, select, struct, sys
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TUN | IFF_NO_PI))
os.set_blocking(fd, False)  # a wake-up for stdin alone must not block on the device

def csum(b):
    if len(b) % 2:
        b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF

sys.stdout.write("ready\\n")
sys.stdout.flush()
while True:
    # Exits when its stdin closes (the bench ended, even killed), as the probe helper does.
    if 0 in select.select([0, fd], [], [])[0] and not os.read(0, 4096):
        sys.exit(0)
    while True:  # every request queued on the device, then back to select
        try:
            p = bytearray(os.read(fd, 65536))
        except BlockingIOError:
            break
        if len(p) < 28 or p[0] >> 4 != 4 or p[9] != 1:
            continue  # IPv4 ICMP only
        h = (p[0] & 0xF) * 4
        if p[h] != 8:
            continue  # echo requests only
        p[12:16], p[16:20] = p[16:20], p[12:16]  # the IP header sum does not change
        p[h] = 0  # echo reply
        p[h + 2 : h + 4] = b"\\0\\0"
        p[h + 2 : h + 4] = struct.pack("!H", csum(bytes(p[h:])))
        try:
            os.write(fd, p)
        except OSError:
            pass  # dropped, as a lossy path would
`;

/**
 * Starts the responder in `netns`, creating TUN device `ifname` there (down, no
 * address: the caller configures it). Resolves once the device exists. Rejects when the
 * responder exits or says nothing within 10 s (e.g. no /dev/net/tun). It lives until its
 * stdin closes (this process ended) or it is killed (NetnsSet.dispose() kills it with the
 * namespace).
 */
export async function startTunEchoResponder(
  runner: CommandRunner,
  netns: string,
  ifname: string,
): Promise<SpawnedProcess> {
  if (!runner.spawn) throw new Error('tun echo responder: the runner cannot spawn processes');
  const proc = runner.spawn(['python3', '-u', '-c', TUN_ECHO_RESPONDER, ifname], { netns });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + String(d)).slice(-2000)));
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<boolean>((resolve) => {
    proc.stdout.on('data', (d: Buffer) => {
      if (String(d).includes('ready')) resolve(true);
    });
    void proc.exited.then(() => resolve(false));
    timer = setTimeout(() => resolve(false), 10_000);
  });
  const ok = await ready;
  clearTimeout(timer);
  if (!ok) {
    proc.kill();
    throw new Error(
      `tun echo responder did not start in ${netns}: ${stderr.trim() || 'no answer'}`,
    );
  }
  return proc;
}
