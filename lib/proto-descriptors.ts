import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The committed FileDescriptorSet of one l2fed API (proto/l2fed/<api>, made by
 * `npm run gen`), found from source or from dist/. Server reflection serves it; one set
 * per API so a server lists only the services it really serves.
 */
export function loadDescriptorSet(api: 'admin' | 'gateway'): Buffer {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      return readFileSync(join(dir, 'proto', 'gen', `${api}.binpb`));
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error(`proto/gen/${api}.binpb not found; run "npm run gen"`);
}
