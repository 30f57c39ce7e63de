/** A desired-state source whose state the test sets directly, and a common state. */
import { makeState, type DesiredState } from './desired-state.js';
import { SourceEmitter, type DesiredStateSource, type SourceListener } from './source.js';

export class FakeSource implements DesiredStateSource {
  readonly kind = 'folder' as const;
  private readonly emitter = new SourceEmitter();

  constructor(private initial: DesiredState = makeState([], [])) {}

  private started = false;

  start(): Promise<void> {
    this.started = true;
    this.emitter.snapshot(this.initial, 'initial');
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  subscribe(listener: SourceListener): () => void {
    return this.emitter.subscribe(listener);
  }
  current(): DesiredState | undefined {
    return this.emitter.current();
  }
  /** Sets the desired state; emitted at once when started, else at start. */
  set(state: DesiredState): void {
    this.initial = state;
    if (this.started) this.emitter.snapshot(state, 'change');
  }
  fail(error: Error): void {
    this.emitter.error(error);
  }
}

/** madrid exports cdn (Linux bridge) and peers bristol. */
export const CDN_WITH_BRISTOL = makeState(
  [
    {
      apiVersion: 'l2fed.io/v1alpha1',
      kind: 'FederatedNetwork',
      metadata: { name: 'cdn' },
      spec: { segment: { linuxBridge: 'br-cdn' }, mtu: 'auto' },
    },
  ],
  [
    {
      apiVersion: 'l2fed.io/v1alpha1',
      kind: 'ClusterPeering',
      metadata: { name: 'bristol' },
      spec: { remoteCluster: 'bristol' },
    },
  ],
);
