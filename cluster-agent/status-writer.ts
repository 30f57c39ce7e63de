/**
 * Writes the status subresource of FederatedNetwork and ClusterPeering objects with a JSON
 * merge patch (application/merge-patch+json), guarded by the object's resourceVersion so a
 * concurrent writer causes a conflict and a retry, never a lost update. Writing the status
 * an object already has sends nothing.
 */
import {
  PatchStrategy,
  setHeaderOptions,
  type CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, KINDS, type CustomKind } from './constants.js';
import { mergeConditions, type ConditionInput } from './conditions.js';
import { canonicalJson } from './desired-state.js';
import { StatusWriteError } from './errors.js';
import { customObjectsApi, httpStatusOf } from './kube-client.js';
import { clusterPeeringStatus, type ClusterPeeringStatus } from './schema-peering.js';
import { federatedNetworkStatus, type FederatedNetworkStatus } from './schema-network.js';
import type { Condition } from './schema-common.js';

/** Status fields the agent states for a network; observedGeneration is filled in. */
export type NetworkStatusInput = Omit<
  FederatedNetworkStatus,
  'conditions' | 'observedGeneration'
> & {
  readonly conditions: readonly ConditionInput[];
};
export type PeeringStatusInput = Omit<ClusterPeeringStatus, 'conditions' | 'observedGeneration'> & {
  readonly conditions: readonly ConditionInput[];
};

export type StatusWriteResult =
  | { readonly type: 'written'; readonly resourceVersion: string | undefined }
  | { readonly type: 'unchanged' }
  /** The object no longer exists; nothing to report on. */
  | { readonly type: 'gone' };

const SCHEMAS = {
  FederatedNetwork: federatedNetworkStatus,
  ClusterPeering: clusterPeeringStatus,
} as const;
const MAX_CONFLICT_RETRIES = 3;

type StoredObject = KubernetesObject & { status?: Record<string, unknown> };

/**
 * Status write-back for both kinds. Safe to call concurrently: calls for one object race
 * through the resourceVersion precondition and retry on 409. Idempotent.
 */
export class KubeStatusWriter {
  private readonly api: CustomObjectsApi;

  constructor(
    kubeConfig: KubeConfig,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.api = customObjectsApi(kubeConfig);
  }

  writeNetworkStatus(name: string, status: NetworkStatusInput): Promise<StatusWriteResult> {
    return this.write('FederatedNetwork', name, status);
  }

  writePeeringStatus(name: string, status: PeeringStatusInput): Promise<StatusWriteResult> {
    return this.write('ClusterPeering', name, status);
  }

  private async write(
    kind: CustomKind,
    name: string,
    input: { readonly conditions: readonly ConditionInput[] } & Record<string, unknown>,
  ): Promise<StatusWriteResult> {
    const ref = { group: API_GROUP, version: API_VERSION, plural: KINDS[kind].plural, name };
    for (let attempt = 0; ; attempt++) {
      let current: StoredObject;
      try {
        current = (await this.api.getClusterCustomObject(ref)) as StoredObject;
      } catch (err) {
        if (httpStatusOf(err) === 404) return { type: 'gone' };
        throw new StatusWriteError(ref.plural, name, httpStatusOf(err), { cause: err });
      }
      const now = current.status ?? {};
      const generation = current.metadata?.generation;
      const conditions = mergeConditions(
        now.conditions as Condition[] | undefined,
        input.conditions,
        generation,
        this.clock(),
      );
      const next: Record<string, unknown> = { ...input, conditions };
      if (generation !== undefined) next.observedGeneration = generation;
      for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
      // Never send what the CRD would reject: a 422 in production is a bug caught here.
      const checked = SCHEMAS[kind].safeParse(next);
      if (!checked.success) {
        throw new StatusWriteError(ref.plural, name, 422, { cause: checked.error });
      }
      if (canonicalJson(next) === canonicalJson(now)) return { type: 'unchanged' };
      // Merge patch: fields we no longer state are removed by sending null.
      const patch: Record<string, unknown> = { ...next };
      for (const k of Object.keys(now)) if (!(k in next)) patch[k] = null;
      try {
        const written = (await this.api.patchClusterCustomObjectStatus(
          {
            ...ref,
            body: {
              metadata: { resourceVersion: current.metadata?.resourceVersion },
              status: patch,
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )) as StoredObject;
        return { type: 'written', resourceVersion: written.metadata?.resourceVersion };
      } catch (err) {
        const code = httpStatusOf(err);
        if (code === 409 && attempt < MAX_CONFLICT_RETRIES) continue;
        if (code === 404) return { type: 'gone' };
        throw new StatusWriteError(ref.plural, name, code, { cause: err });
      }
    }
  }
}
