/**
 * The thin seam to `@kubernetes/client-node`: paths, the list function and a Watch that
 * asks for bookmarks. Everything Kubernetes-specific that the source and the status writer
 * share lives here.
 */
import {
  ApiException,
  CustomObjectsApi,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, KINDS, type CustomKind } from './constants.js';

/** REST path of a kind's collection, e.g. /apis/l2fed.io/v1alpha1/federatednetworks. */
export function collectionPath(kind: CustomKind): string {
  return `/apis/${API_GROUP}/${API_VERSION}/${KINDS[kind].plural}`;
}

/** A list function for ListWatch over one cluster-scoped custom kind. */
export function listFunction(
  api: CustomObjectsApi,
  kind: CustomKind,
): () => Promise<KubernetesListObject<KubernetesObject>> {
  return async () =>
    (await api.listClusterCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      plural: KINDS[kind].plural,
    })) as KubernetesListObject<KubernetesObject>;
}

export function customObjectsApi(kc: KubeConfig): CustomObjectsApi {
  return kc.makeApiClient(CustomObjectsApi);
}

/**
 * A Watch that requests bookmarks (ListWatch does not), so that the resourceVersion it
 * resumes from stays fresh and a reconnect after a quiet spell does not need a full re-list,
 * and that sets a server-side timeout so a silently dead connection is replaced.
 */
export class BookmarkingWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly timeoutSeconds: number,
  ) {
    super(config);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: this.timeoutSeconds },
      callback,
      done,
    );
  }
}

/** The HTTP status in an error from client-node (ApiException or a watch error), if any. */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (typeof err === 'object' && err !== null) {
    const e = err as { statusCode?: unknown; code?: unknown };
    if (typeof e.statusCode === 'number') return e.statusCode;
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
}
