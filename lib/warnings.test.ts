import test from 'ava';
import { quietTlsIpServerNameWarning } from './warnings.js';

test('warnings - only DEP0123 (TLS ServerName set to an IP) is dropped, in both emitWarning forms', async (t) => {
  const seen: string[] = [];
  process.on('warning', (w) => seen.push(`${(w as { code?: string }).code ?? ''} ${w.message}`));
  quietTlsIpServerNameWarning();
  quietTlsIpServerNameWarning(); // idempotent: one wrapper
  process.emitWarning(
    'Setting the TLS ServerName to an IP address…',
    'DeprecationWarning',
    'DEP0123',
  );
  process.emitWarning('Setting the TLS ServerName to an IP address…', {
    type: 'DeprecationWarning',
    code: 'DEP0123',
  });
  process.emitWarning('something else', 'DeprecationWarning', 'DEP0005');
  process.emitWarning('plain');
  await new Promise((r) => setImmediate(r));
  t.deepEqual(seen, ['DEP0005 something else', ' plain']);
});
