/**
 * Endpoint fail-over: when a peer lists several endpoints and the tunnel to it does not
 * work, move it to the next listed endpoint (round robin). The decision is a pure
 * function of the previous state and one observation, so tables with a fake clock test
 * it; the health monitor feeds it on every check and runs the switch it asks for.
 *
 * Thresholds come from WireGuard's own timers (whitepaper, section 6 "Timers"):
 * - A session without a handshake for REJECT_AFTER_TIME (180 s) carries no data any more,
 *   whatever the traffic; so "working" = a handshake within the last 180 s. An active
 *   initiator re-keys after 120 s, so a working tunnel under traffic never gets there.
 * - While there is something to send (the health check's own in-tunnel probe guarantees
 *   it, and so does persistent keepalive), WireGuard retries the handshake every
 *   REKEY_TIMEOUT (5 s). An endpoint gets 3 of those attempts (15 s) after the tunnel was
 *   last seen working, or after we switched to it, before we move on.
 * - A full round over every endpoint without a handshake doubles that time (15, 30, 60,
 *   capped at 120 s), so a peer that is down everywhere is not hammered.
 * - A path that breaks under a live session: WireGuard re-initiates a handshake when
 *   data it sent got no answer for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s). So when the
 *   last in-tunnel probe got nothing back and the handshake is older than
 *   BROKEN_PATH_SECONDS (those 15 s plus one retry), no re-handshake has succeeded since
 *   the path broke: the tunnel counts as not working, without waiting for the 180 s.
 * - Once a handshake succeeds we stay: a working tunnel is never moved.
 * - A peer with one endpoint only moves when WireGuard roamed elsewhere (NAT) and that
 *   stopped working: it goes back to the advertised endpoint.
 *
 * Fast rule (issue 15), for a peer on one of several listed endpoints when the health
 * monitor runs its liveness echo (a small in-tunnel echo every 250 ms, `echoes`): the
 * path is dead when every echo for deadPathSeconds (1.5 s, at least deadPathEchoes of
 * them) went unanswered and no handshake completed in that time (the handshake time has
 * 1 s resolution, so the count restarts after the second that held one). The handshake
 * timers cannot tell this: a live session re-handshakes only 15 s after its data goes
 * unanswered. The peer moves on at once; with a live session (handshake within 180 s)
 * the keys move with it and the next packet flows, without a session the entry is
 * renewed (`renew`) so WireGuard initiates at once instead of at its next 5 s retry.
 * Losses sporadic enough to leave an answer every 1.5 s never move a peer. A peer down
 * everywhere backs off: each full round doubles the time (1.5, 3, 6 … s, capped at
 * maxDwellSeconds); an answer resets it. A roamed endpoint (unlisted) is left to the
 * slow rule: it is the only address a NATed peer can be reached at.
 *
 * NAT (endpointToKeep): WireGuard sets a peer's endpoint to the source of its last
 * authenticated packet, so behind a port-translating NAT it learns the translated address
 * (roaming). A handshake within REJECT_AFTER_TIME proves that endpoint; no rewrite of the
 * peer (apply, reconcile, restart, handshake watch) may replace it while it is proven.
 * Once it is stale (or, for the health monitor, the path is broken as above) the peer
 * goes back to its advertised endpoints.
 */

/** WireGuard retries a handshake after this many seconds. */
export const REKEY_TIMEOUT_SECONDS = 5;
/** WireGuard drops a session this many seconds after its handshake. */
export const REJECT_AFTER_TIME_SECONDS = 180;
/** Unanswered data for KEEPALIVE_TIMEOUT (10 s) + REKEY_TIMEOUT makes WireGuard re-handshake. */
export const BROKEN_PATH_SECONDS = 10 + 2 * REKEY_TIMEOUT_SECONDS;

export interface FailoverPolicy {
  /** Seconds an endpoint gets without a working tunnel before the next is tried. */
  readonly dwellSeconds: number;
  /** Upper bound of the dwell after it doubled for full rounds without success. */
  readonly maxDwellSeconds: number;
  /** A handshake older than this means no session. */
  readonly staleSeconds: number;
  /** Fast rule: seconds of unanswered liveness echoes that make a path dead. */
  readonly deadPathSeconds: number;
  /** Fast rule: unanswered liveness echoes in a row needed as well (one loss never moves). */
  readonly deadPathEchoes: number;
}

export const DEFAULT_FAILOVER_POLICY: FailoverPolicy = {
  dwellSeconds: 3 * REKEY_TIMEOUT_SECONDS,
  maxDwellSeconds: 120,
  staleSeconds: REJECT_AFTER_TIME_SECONDS,
  deadPathSeconds: 1.5,
  deadPathEchoes: 4,
};

/** The liveness echoes of one peer since the last switch (health-monitor.ts counts them). */
export interface EchoRun {
  /** The latest echo was answered: the path works. */
  readonly answered: boolean;
  /** Echoes unanswered in a row since the last answer (or switch). */
  readonly lost: number;
  /** Unix seconds the first of those was sent (meaningless while lost is 0). */
  readonly lostSince: number;
}

/** One observation of one peer. */
export interface FailoverInput {
  /** Unix seconds. */
  readonly now: number;
  /** The configured endpoints, in order. */
  readonly endpoints: readonly string[];
  /** The endpoint WireGuard uses now (`wg show dump`); undefined = none. */
  readonly current: string | undefined;
  /** Unix seconds of the last handshake; 0 = never. */
  readonly latestHandshake: number;
  /** The last in-tunnel probe got no answer at all (undefined = no probe yet). */
  readonly probeFailed?: boolean;
  /** The liveness echoes (fast rule); undefined = not probed, only the slow rules apply. */
  readonly echoes?: EchoRun;
}

/** What the fail-over remembers about one peer between checks. Plain data. */
export interface FailoverState {
  /** The endpoint list this state belongs to; a new list starts over. */
  readonly endpoints: readonly string[];
  /** Index of the endpoint in use; -1 = none of the listed ones (roamed elsewhere). */
  readonly index: number;
  /** Unix seconds since which the endpoint in use has had its chance. */
  readonly since: number;
  /** Switches since the tunnel last worked (for the dwell back-off). */
  readonly attempts: number;
  /** Every switch so far (kept across endpoint list changes). */
  readonly failovers: number;
}

export interface FailoverDecision {
  readonly state: FailoverState;
  /** Set when the peer should move to this endpoint now. */
  readonly switchTo: string | undefined;
  /** Whether the tunnel counts as working (handshake within staleSeconds). */
  readonly working: boolean;
  /**
   * With switchTo: there is no session to carry over, so renew the entry (remove + add)
   * and WireGuard initiates a handshake at once instead of at its next retry.
   */
  readonly renew: boolean;
}

/** Whether a handshake at `latestHandshake` (0 = never) still holds a session at `now`. */
export function handshakeWorks(now: number, latestHandshake: number, staleSeconds: number) {
  return latestHandshake > 0 && now - latestHandshake <= staleSeconds;
}

/** The dwell after `attempts` switches without success among `n` endpoints. */
export function dwellFor(attempts: number, n: number, p: FailoverPolicy): number {
  const rounds = Math.floor(attempts / Math.max(1, n));
  return Math.min(p.maxDwellSeconds, p.dwellSeconds * 2 ** Math.min(rounds, 16));
}

/** Fast rule: seconds of unanswered echoes after `attempts` switches without an answer. */
export function deadPathFor(attempts: number, n: number, p: FailoverPolicy): number {
  const rounds = Math.floor(attempts / Math.max(1, n));
  return Math.min(p.maxDwellSeconds, p.deadPathSeconds * 2 ** Math.min(rounds, 16));
}

/**
 * Fast rule: when the unanswered run counts from (unix s): its first echo, or the second
 * after the last handshake if that may be later (a handshake proves the path).
 */
export function deadSince(echoes: EchoRun, latestHandshake: number): number {
  return latestHandshake > 0 ? Math.max(echoes.lostSince, latestHandshake + 1) : echoes.lostSince;
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * True when decideFailover(prev, input) cannot do anything for a peer: one endpoint, in
 * use, the one `prev` already holds. Its decision is then `prev` itself and no switch,
 * so a health check skips it without building its input (issue 18: most peers of a
 * large federation, every check). Pure.
 */
export function failoverSettled(
  prev: FailoverState | undefined,
  endpoints: readonly string[],
  current: string | undefined,
): boolean {
  return (
    prev !== undefined &&
    endpoints.length === 1 &&
    current === endpoints[0] &&
    prev.index === 0 &&
    sameList(prev.endpoints, endpoints)
  );
}

/**
 * Decides for one peer. Pure. The caller stores `state` only once the switch it asked
 * for has been made (or when there is none), so a failed switch is retried at the next
 * check.
 */
export function decideFailover(
  prev: FailoverState | undefined,
  input: FailoverInput,
  policy: FailoverPolicy = DEFAULT_FAILOVER_POLICY,
): FailoverDecision {
  const { now, endpoints, current } = input;
  const working =
    handshakeWorks(now, input.latestHandshake, policy.staleSeconds) &&
    !(input.probeFailed === true && now - input.latestHandshake > BROKEN_PATH_SECONDS);
  const listed = current === undefined ? -1 : endpoints.indexOf(current);
  let s: FailoverState =
    prev && sameList(prev.endpoints, endpoints)
      ? prev
      : {
          endpoints: [...endpoints],
          // Unlisted at the start: most likely the first endpoint, which the apply set,
          // resolved from its DNS name; none at all: the first is next.
          index: listed >= 0 ? listed : current === undefined ? -1 : 0,
          since: now,
          attempts: 0,
          failovers: prev?.failovers ?? 0,
        };
  // WireGuard roamed (or someone set the peer) to another listed endpoint: that one
  // gets a full chance of its own. An unlisted endpoint (NAT, DNS) keeps our position.
  if (listed >= 0 && listed !== s.index) s = { ...s, index: listed, since: now };
  const e = input.echoes;
  if (e && endpoints.length >= 2 && listed >= 0) {
    const session = handshakeWorks(now, input.latestHandshake, policy.staleSeconds);
    if (e.answered) {
      return {
        state: { ...s, since: now, attempts: 0 },
        switchTo: undefined,
        working,
        renew: false,
      };
    }
    const dead =
      e.lost >= policy.deadPathEchoes &&
      now - deadSince(e, input.latestHandshake) >=
        deadPathFor(s.attempts, endpoints.length, policy);
    if (!dead) return { state: s, switchTo: undefined, working, renew: false };
    const index = (s.index + 1) % endpoints.length;
    return {
      state: { ...s, index, since: now, attempts: s.attempts + 1, failovers: s.failovers + 1 },
      switchTo: endpoints[index],
      working,
      renew: !session,
    };
  }
  // One endpoint in use: nowhere else to go. A roamed one (NAT) that stopped working goes
  // back to the advertised endpoint, after the same dwell and back-off.
  if (endpoints.length < 2 && (listed >= 0 || current === undefined)) {
    return { state: s, switchTo: undefined, working, renew: false };
  }
  if (working) {
    return { state: { ...s, since: now, attempts: 0 }, switchTo: undefined, working, renew: false };
  }
  if (now - s.since < dwellFor(s.attempts, endpoints.length, policy)) {
    return { state: s, switchTo: undefined, working, renew: false };
  }
  const index = (s.index + 1) % endpoints.length;
  return {
    state: { ...s, index, since: now, attempts: s.attempts + 1, failovers: s.failovers + 1 },
    switchTo: endpoints[index],
    working,
    renew: false,
  };
}

/** Where the endpoint WireGuard uses came from. */
export const ENDPOINT_SOURCES = ['advertised', 'roamed', 'none'] as const;
export type EndpointSource = (typeof ENDPOINT_SOURCES)[number];

/**
 * 'advertised' when `current` is one of the configured endpoints, 'roamed' when WireGuard
 * learned another one from the peer's packets (NAT; also a DNS name's resolved address,
 * which the gateway does not resolve to compare), 'none' when there is none. Pure.
 */
export function endpointSource(
  endpoints: readonly string[],
  current: string | undefined,
): EndpointSource {
  if (current === undefined) return 'none';
  return endpoints.includes(current) ? 'advertised' : 'roamed';
}

/**
 * The endpoint a rewrite of the peer entry must keep instead of the first advertised one:
 * the one in use when it is listed (fail-over or roaming chose it), or when a handshake
 * within `staleSeconds` before `now` (unix s) proves it (WireGuard roamed there, e.g.
 * behind NAT). undefined: nothing to keep, set the advertised endpoint. Pure.
 */
export function endpointToKeep(
  endpoints: readonly string[],
  have: { readonly endpoint: string | undefined; readonly latestHandshake: number } | undefined,
  now: number,
  staleSeconds: number = REJECT_AFTER_TIME_SECONDS,
): string | undefined {
  const inUse = have?.endpoint;
  if (inUse === undefined) return undefined;
  if (endpoints.includes(inUse)) return inUse;
  return handshakeWorks(now, have!.latestHandshake, staleSeconds) ? inUse : undefined;
}
