/**
 * The peers' last handshakes through a WireGuard control socket (the cross-platform UAPI
 * `get=1`, https://www.wireguard.com/xplatform/), read from Node with no process start:
 * the standby-key poll (gateway.ts) asks every 200 ms while a peer's next key waits, and
 * a `wg show` per poll was the slow part of a promotion on a loaded machine.
 */
import { createConnection } from 'node:net';

export interface PeerHandshake {
  /** base64, as `wg` prints it. */
  readonly publicKey: string;
  /** Unix seconds; 0 = never. */
  readonly latestHandshake: number;
}

/** Parses a `get=1` answer (key=value lines, hex keys); undefined without errno=0. */
export function parseUapiHandshakes(text: string): PeerHandshake[] | undefined {
  if (!/^errno=0$/m.test(text)) return undefined;
  const peers: { publicKey: string; latestHandshake: number }[] = [];
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      peers.push({ publicKey: Buffer.from(value, 'hex').toString('base64'), latestHandshake: 0 });
    } else if (key === 'last_handshake_time_sec' && peers.length > 0) {
      peers[peers.length - 1]!.latestHandshake = Number(value) || 0;
    }
  }
  return peers;
}

/** Asks the control socket at `path`; undefined when it does not answer within `timeoutMs`. */
export function readUapiHandshakes(
  path: string,
  timeoutMs = 1000,
): Promise<PeerHandshake[] | undefined> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (v: PeerHandshake[] | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const sock = createConnection(path);
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('get=1\n\n'));
    sock.on('data', (d: string) => {
      text += d;
      // The answer ends with errno=N and an empty line.
      if (/(^|\n)errno=-?\d+\n\n$/.test(text)) finish(parseUapiHandshakes(text));
    });
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(parseUapiHandshakes(text)));
  });
}
