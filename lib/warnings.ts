/**
 * Drops one Node.js warning that our gRPC client cannot avoid: grpc-js sets the TLS
 * ServerName (SNI) to the target host even when it is an IP literal, and Node then warns
 * "[DEP0123] Setting the TLS ServerName to an IP address is not permitted by RFC 6066"
 * on every connection (grpc/grpc-node#1919, open). The certificate is still checked
 * against the IP (its IP SAN); only the SNI field is affected. Every other warning is
 * emitted as before. Idempotent.
 */
export function quietTlsIpServerNameWarning(): void {
  if (patched) return;
  patched = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = (warning: unknown, ...rest: unknown[]) => {
    const code =
      typeof rest[0] === 'object' && rest[0] !== null
        ? (rest[0] as { code?: unknown }).code
        : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  };
}

let patched = false;
