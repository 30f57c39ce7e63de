/**
 * Status conditions (metav1.Condition): the condition types the agent writes, and the merge
 * rule that keeps lastTransitionTime when a condition's status did not change.
 */
import type { Condition } from './schema-common.js';

/** Condition types per kind. Ready summarises; the others say which step is missing. */
export const CONDITION_TYPES = {
  FederatedNetwork: {
    Ready: 'Ready',
    /** The broker allocated a VNI. */
    Allocated: 'Allocated',
    /** The gateway applied the config for this network. */
    Programmed: 'Programmed',
    /** The network's one MTU across its members (issue 12); absent without agreement. */
    MtuAgreed: 'MtuAgreed',
  },
  /** Both kinds, present (False) only while the broker's newest peer map is refused. */
  PeerMapValid: 'PeerMapValid',
  ClusterPeering: {
    Ready: 'Ready',
    /** The remote cluster declares a peering back. */
    Mutual: 'Mutual',
    /** Handshakes are recent and the in-tunnel probe answers. */
    TunnelHealthy: 'TunnelHealthy',
    /**
     * Present (False) only when the gateway config leaves the peer out, or does not carry
     * one of its networks, because its peer-map entry is unusable (reason says why).
     */
    Configured: 'Configured',
    /**
     * Present (False) only while the gateway measures a path MTU to the peer below what
     * one of the peering's networks needs (network MTU + 50 B VXLAN).
     */
    PathMTU: 'PathMTU',
  },
} as const;

/** A condition as the agent states it; the writer fills in the timestamps and generation. */
export interface ConditionInput {
  readonly type: string;
  readonly status: Condition['status'];
  readonly reason: string;
  readonly message: string;
}

/**
 * Merges the desired conditions into the current ones: lastTransitionTime is kept when the
 * status is unchanged and set to `now` otherwise; observedGeneration is `generation`.
 * Conditions not in `desired` are dropped (the agent owns the whole list). Pure; the
 * result is sorted by type so that equal inputs give equal output.
 */
export function mergeConditions(
  current: readonly Condition[] | undefined,
  desired: readonly ConditionInput[],
  generation: number | undefined,
  now: Date,
): Condition[] {
  const byType = new Map((current ?? []).map((c) => [c.type, c]));
  return desired
    .map((d): Condition => {
      const prev = byType.get(d.type);
      const lastTransitionTime =
        prev && prev.status === d.status
          ? prev.lastTransitionTime
          : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
      return {
        type: d.type,
        status: d.status,
        reason: d.reason,
        message: d.message,
        lastTransitionTime,
        ...(generation === undefined ? {} : { observedGeneration: generation }),
      };
    })
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}
