/**
 * Client side of the admin API: channel credentials for mTLS / token / insecure,
 * and small promise wrappers around the generated clients.
 */
import {
  credentials as grpcCredentials,
  InterceptingCall,
  Metadata,
  type ChannelCredentials,
  type ClientOptions,
  type Interceptor,
} from '@grpc/grpc-js';
import { InfoServiceClient, type GetVersionResponse } from '../../proto/gen/l2fed/admin/v1/info.js';

export interface AdminConnection {
  readonly address: string;
  /** CA that signed the server certificate (PEM). Enables TLS. */
  readonly caCert?: Buffer;
  /** Client certificate and key (PEM) for mTLS. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Bearer token, sent as "authorization: Bearer …" on every call. */
  readonly token?: string;
  /** TLS server name to verify, when it differs from the address host. */
  readonly serverName?: string;
}

/** Credentials and options for a generated client constructor. */
export function channelFor(c: AdminConnection): {
  credentials: ChannelCredentials;
  options: Partial<ClientOptions>;
} {
  const credentials = c.caCert
    ? grpcCredentials.createSsl(c.caCert, c.key ?? null, c.cert ?? null)
    : grpcCredentials.createInsecure();
  const options: Partial<ClientOptions> = {};
  if (c.serverName) options['grpc.ssl_target_name_override'] = c.serverName;
  if (c.token) {
    const token = c.token;
    // An interceptor rather than call credentials: grpc-js refuses call credentials on
    // plaintext channels, and token-over-loopback without TLS is a supported setup.
    const addToken: Interceptor = (opts, next) =>
      new InterceptingCall(next(opts), {
        start(metadata: Metadata, listener, nextStart) {
          metadata.set('authorization', `Bearer ${token}`);
          nextStart(metadata, listener);
        },
      });
    options.interceptors = [addToken];
  }
  return { credentials, options };
}

/** Asks an admin server for its version; rejects after deadlineMs. */
export function getVersion(
  conn: AdminConnection | string,
  opts: { deadlineMs?: number } = {},
): Promise<GetVersionResponse> {
  const c = typeof conn === 'string' ? { address: conn } : conn;
  const ch = channelFor(c);
  const client = new InfoServiceClient(c.address, ch.credentials, ch.options);
  const deadline = new Date(Date.now() + (opts.deadlineMs ?? 5000));
  return new Promise<GetVersionResponse>((resolve, reject) => {
    client.getVersion({}, new Metadata(), { deadline }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}
