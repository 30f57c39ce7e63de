/**
 * The status sink for the Kubernetes source: CRD status subresources. Its own file so
 * an agent reading a folder never loads the Kubernetes client (~0.4 s of CPU per start).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { FileStatusSink, type AgentSummary, type StatusSink } from './status-sink.js';
import {
  KubeStatusWriter,
  type NetworkStatusInput,
  type PeeringStatusInput,
} from './status-writer.js';

/** What KubeStatusSink does with the agent's own summary (no CRD holds it). */
export interface KubeSummaryOptions {
  /** Logs the summary when what an operator acts on changes (not on every apply). */
  readonly log?: { info(obj: object, msg: string): void };
  /** `statusDir` of the config: `agent.json` is written here too, as in folder mode. */
  readonly summaryDir?: string;
}

/**
 * CRD status subresources through KubeStatusWriter. The agent summary (rotation wait,
 * refused peer map, dropped peers, errors) has no CRD, so it goes to the log, and to
 * `statusDir/agent.json` when the config names a statusDir.
 */
export class KubeStatusSink implements StatusSink {
  private readonly writer: KubeStatusWriter;
  private readonly summaryFile: FileStatusSink | undefined;
  private lastLogged: string | undefined;

  constructor(
    kubeConfig: KubeConfig,
    private readonly summary: KubeSummaryOptions = {},
  ) {
    this.writer = new KubeStatusWriter(kubeConfig);
    this.summaryFile = summary.summaryDir ? new FileStatusSink(summary.summaryDir) : undefined;
  }

  async writeNetwork(name: string, status: NetworkStatusInput): Promise<void> {
    await this.writer.writeNetworkStatus(name, status);
  }

  async writePeering(name: string, status: PeeringStatusInput): Promise<void> {
    await this.writer.writePeeringStatus(name, status);
  }

  prune(): Promise<void> {
    return Promise.resolve(); // a deleted object takes its status with it
  }

  async writeAgent(summary: AgentSummary): Promise<void> {
    // The time of the last apply moves on every apply; the rest changes when something
    // an operator acts on does.
    const { lastApply: _lastApply, ...gateway } = summary.gateway;
    const actionable = { ...summary, gateway };
    const key = JSON.stringify(actionable);
    if (key !== this.lastLogged) {
      this.lastLogged = key;
      this.summary.log?.info({ agentStatus: actionable }, 'agent status');
    }
    await this.summaryFile?.writeAgent(summary);
  }
}
