/** A promise client for the standard grpc.health.v1 service (Check only). */
import {
  makeClientConstructor,
  Metadata,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

type Status = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface RawHealthClient extends Client {
  check(
    req: { service: string },
    md: Metadata,
    opts: { deadline: Date },
    cb: (err: ServiceError | null, res?: { status: Status }) => void,
  ): void;
}

const Ctor = makeClientConstructor(healthService, 'grpc.health.v1.Health') as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options?: Partial<ClientOptions>,
) => RawHealthClient;

export class HealthClient {
  private readonly raw: RawHealthClient;
  constructor(address: string, creds: ChannelCredentials, options?: Partial<ClientOptions>) {
    this.raw = new Ctor(address, creds, options);
  }

  /** The serving status of a service ('' = the whole server). NOT_FOUND if unknown. */
  check(service: string, deadlineMs = 3000): Promise<Status> {
    return new Promise((resolve, reject) => {
      this.raw.check(
        { service },
        new Metadata(),
        { deadline: new Date(Date.now() + deadlineMs) },
        (err, res) => (err ? reject(err) : resolve(res?.status ?? 'UNKNOWN')),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}
