import { formatReport, validate } from '../cluster-agent/validate.js';
import { MIN_UNDERLAY_MTU } from '../gateway/mtu.js';

/** The underlay MTU validate assumes, as the agent does (agent config underlayMtu). */
export const DEFAULT_UNDERLAY_MTU = 1500;

/**
 * `l2fed validate DIR`: prints the report; returns 0 when valid, 1 when not, 2 on usage
 * errors. `segment` is how `lab up` will build segments (ovs, the default, or bridge);
 * `underlayMtu` the gateways' underlay MTU (default 1500) that fixed network MTUs must fit.
 */
export async function runValidate(
  dir: string,
  o: { cluster?: string; output: string; segment?: string; underlayMtu?: string },
): Promise<number> {
  if (o.output !== 'text' && o.output !== 'json') {
    console.error(`l2fed validate: -o must be "text" or "json" (got "${o.output}")`);
    return 2;
  }
  const segments = o.segment ?? 'ovs';
  if (segments !== 'ovs' && segments !== 'bridge') {
    console.error(`l2fed validate: --segment must be "ovs" or "bridge" (got "${segments}")`);
    return 2;
  }
  const underlayMtu = Number(o.underlayMtu ?? DEFAULT_UNDERLAY_MTU);
  if (!Number.isInteger(underlayMtu) || underlayMtu < MIN_UNDERLAY_MTU || underlayMtu > 65_535) {
    console.error(
      `l2fed validate: --underlay-mtu must be a whole number of bytes from ${MIN_UNDERLAY_MTU} to 65535 (got "${o.underlayMtu}")`,
    );
    return 2;
  }
  const report = await validate(dir, {
    ...(o.cluster ? { clusterId: o.cluster } : {}),
    segments,
    underlayMtu,
  });
  if (o.output === 'json') {
    console.log(
      JSON.stringify(
        {
          ok: report.ok,
          layout: report.layout,
          clusters: report.clusters.map((c) => ({ id: c.id, dir: c.dir })),
          problems: report.problems,
        },
        null,
        2,
      ),
    );
  } else {
    console.log(formatReport(dir, report));
  }
  return report.exitCode;
}
