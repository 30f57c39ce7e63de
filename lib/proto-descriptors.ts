import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The committed FileDescriptorSet of every l2fed .proto (made by `npm run gen`),
 * found from source or from dist/. Server reflection serves it.
 */
export function loadDescriptorSet(): Buffer {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      return readFileSync(join(dir, 'proto', 'gen', 'descriptors.binpb'));
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('proto/gen/descriptors.binpb not found; run "npm run gen"');
}
