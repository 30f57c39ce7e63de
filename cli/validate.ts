import { formatReport, validate } from '../cluster-agent/validate.js';

/**
 * `l2fed validate DIR`: prints the report; returns 0 when valid, 1 when not, 2 on usage
 * errors. `segment` is how `lab up` will build segments (ovs, the default, or bridge).
 */
export async function runValidate(
  dir: string,
  o: { cluster?: string; output: string; segment?: string },
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
  const report = await validate(dir, { ...(o.cluster ? { clusterId: o.cluster } : {}), segments });
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
