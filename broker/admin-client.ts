import { credentials as grpcCredentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { InfoServiceClient, type GetVersionResponse } from '../proto/gen/l2fed/admin/v1/info.js';

/** Asks an admin server for its version; rejects after deadlineMs. */
export function getVersion(
  address: string,
  opts: { credentials?: ChannelCredentials; deadlineMs?: number } = {},
): Promise<GetVersionResponse> {
  const client = new InfoServiceClient(
    address,
    opts.credentials ?? grpcCredentials.createInsecure(),
  );
  const deadline = new Date(Date.now() + (opts.deadlineMs ?? 5000));
  return new Promise<GetVersionResponse>((resolve, reject) => {
    client.getVersion({}, new Metadata(), { deadline }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}
