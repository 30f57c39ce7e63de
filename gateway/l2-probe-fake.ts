/** Records probe sends; devices listed in `failing` fail, `unavailable` fails them all. */
import type { L2Prober, ProbeSendResult } from './l2-probe.js';

export class FakeL2Prober implements L2Prober {
  readonly sends: { identity: string; devices: string[]; netns: string | undefined }[] = [];
  failing = new Set<string>();
  unavailable: string | undefined;

  send(
    identity: string,
    devices: readonly string[],
    netns: string | undefined,
  ): Promise<ProbeSendResult> {
    this.sends.push({ identity, devices: [...devices], netns });
    if (this.unavailable) {
      return Promise.resolve({ sent: new Set(), failed: new Map(), unavailable: this.unavailable });
    }
    const failed = new Map(
      devices.filter((d) => this.failing.has(d)).map((d) => [d, 'fake failure'] as const),
    );
    return Promise.resolve({ sent: new Set(devices.filter((d) => !failed.has(d))), failed });
  }
}
