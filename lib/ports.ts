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
