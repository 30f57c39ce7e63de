import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on host. The port is released before it is
 * returned, so a caller that binds later can still lose a race; callers that start
 * daemons retry on "address in use".
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('freePort: no address'));
      });
    });
  });
}

/** True when err (or the output it carries) says a listen lost a port race. */
export function isAddressInUse(err: unknown): boolean {
  const e = err as { code?: unknown; output?: unknown; message?: unknown } | undefined;
  if (e?.code === 'EADDRINUSE') return true;
  const text = `${typeof e?.message === 'string' ? e.message : ''}\n${typeof e?.output === 'string' ? e.output : ''}`;
  return /EADDRINUSE|address already in use/i.test(text);
}

/**
 * Runs start(port) with a port from freePort(host), and again with a new port (up to
 * attempts times in all) when it fails because the port was taken in between. Any other
 * error, or the last race, is thrown as is.
 */
export async function withFreePort<T>(
  start: (port: number) => Promise<T>,
  opts: { host?: string; attempts?: number } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 5;
  for (let i = 1; ; i++) {
    try {
      return await start(await freePort(opts.host));
    } catch (err) {
      if (i >= attempts || !isAddressInUse(err)) throw err;
    }
  }
}
