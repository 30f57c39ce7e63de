/**
 * A gRPC server interceptor that reports every admin call once, when it ends: its method
 * (`<package>.<Service>/<Method>`) and status name (OK, UNAUTHENTICATED, …), or CANCELLED
 * when the client went away first. grpc-js answers unknown methods before interceptors
 * run, so the method label only ever holds the served methods (bounded).
 */
import {
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';

/** Called once per call with the method path (no leading "/") and the status name. */
export type CallEndObserver = (method: string, code: string) => void;

const codeName = (code: number): string =>
  Object.entries(status).find(([, v]) => Number(v) === code)?.[0] ?? 'UNKNOWN';

/**
 * The interceptor; put it FIRST in the server's list: it then sees the statuses the
 * later ones (the token check) send as well as the handlers'.
 */
export function callMetricsInterceptor(observe: CallEndObserver): ServerInterceptor {
  return (method, call) => {
    const name = method.path.replace(/^\//, '');
    let ended = false;
    const end = (code: string) => {
      if (ended) return;
      ended = true;
      observe(name, code);
    };
    const listener = new ServerListenerBuilder().withOnCancel(() => end('CANCELLED')).build();
    const responder = new ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((st, next) => {
        end(codeName(st.code));
        next(st);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}
