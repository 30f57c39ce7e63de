/**
 * The peers' last handshakes through a WireGuard control socket (the cross-platform UAPI
 * `get=1`, https://www.wireguard.com/xplatform/), read from Node with no process start:
 * the standby-key poll (gateway.ts) asks every 200 ms while a peer's next key waits, and
 * a `wg show` per poll was the slow part of a promotion on a loaded machine. The whole
 * device (parseUapiDump) answers the tunnel reads of every health check and apply, which
 * otherwise start a `wg show dump` each (issue 18).
 */
import { createConnection } from 'node:net';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { WgDump } from './tunnel.js';
import type { ObservedPeer } from './model.js';

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

/** PKCS#8 DER prefix of a raw 32-byte X25519 private key (RFC 8410). */
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * The X25519 public key of a base64 WireGuard private key, as `wg pubkey` prints it,
 * computed in-process. @throws when the key is not 32 bytes.
 */
export function derivePublicKeyLocal(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64, 'base64');
  if (raw.length !== 32) throw new Error('a WireGuard key is 32 bytes');
  const priv = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, raw]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32).toString('base64');
}

/**
 * Parses a whole `get=1` answer into what `wg show IF dump` gives (parseWgDump): base64
 * keys, the interface's public key derived from its private key. undefined without
 * errno=0 (no device, a cut answer).
 */
export function parseUapiDump(text: string): WgDump | undefined {
  if (!/^errno=0$/m.test(text)) return undefined;
  let privateKey: string | undefined;
  let listenPort = 0;
  type Peer = { -readonly [K in keyof ObservedPeer]: ObservedPeer[K] } & { allowedIps: string[] };
  const peers: Peer[] = [];
  const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const peer = peers.at(-1);
    if (key === 'public_key') {
      peers.push({
        publicKey: b64(value),
        endpoint: undefined,
        allowedIps: [],
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
      });
    } else if (!peer) {
      if (key === 'private_key' && !/^0*$/.test(value)) privateKey = b64(value);
      else if (key === 'listen_port') listenPort = Number(value) || 0;
    } else if (key === 'endpoint') peer.endpoint = value;
    else if (key === 'allowed_ip') peer.allowedIps.push(value);
    else if (key === 'last_handshake_time_sec') peer.latestHandshake = Number(value) || 0;
    else if (key === 'rx_bytes') peer.rxBytes = Number(value) || 0;
    else if (key === 'tx_bytes') peer.txBytes = Number(value) || 0;
    else if (key === 'persistent_keepalive_interval') peer.persistentKeepalive = Number(value) || 0;
  }
  return {
    privateKey,
    publicKey: privateKey === undefined ? undefined : derivePublicKeyLocal(privateKey),
    listenPort,
    peers,
  };
}

/** Asks the control socket at `path` for the whole device (parseUapiDump); undefined when it does not answer. */
export async function readUapiDump(path: string, timeoutMs = 1000): Promise<WgDump | undefined> {
  const text = await readUapi(path, timeoutMs);
  return text === undefined ? undefined : parseUapiDump(text);
}

/** Asks the control socket at `path`; undefined when it does not answer within `timeoutMs`. */
export async function readUapiHandshakes(
  path: string,
  timeoutMs = 1000,
): Promise<PeerHandshake[] | undefined> {
  const text = await readUapi(path, timeoutMs);
  return text === undefined ? undefined : parseUapiHandshakes(text);
}

/** The raw `get=1` answer; undefined when the socket is missing or silent past `timeoutMs`. */
function readUapi(path: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (v: string | undefined) => {
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
      if (/(^|\n)errno=-?\d+\n\n$/.test(text)) finish(text);
    });
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(text));
  });
}
