/**
 * Writes the Grafana dashboards deploy/grafana/<uid>.json from their typed definitions
 * (deploy/grafana/l2fed-*.ts, built with deploy/grafana/panels.ts), formatted the way
 * prettier formats the repository, so the output is the same bytes on every run. Part of
 * `npm run gen` (scripts/gen); scripts/gen-check fails when the committed files differ.
 *
 *   npx tsx scripts/gen-dashboards.ts [base dir, default: the repository]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as prettier from 'prettier';
import { dashboard, type DashboardSpec } from '../deploy/grafana/panels.js';
import { gatewaysDashboard } from '../deploy/grafana/l2fed-gateways.js';
import { controlPlaneDashboard } from '../deploy/grafana/l2fed-control-plane.js';

const ROOT = join(import.meta.dirname, '..');
export const DASHBOARD_DIR = join('deploy', 'grafana');
const DASHBOARDS: readonly DashboardSpec[] = [gatewaysDashboard, controlPlaneDashboard];

/** deploy/grafana/<uid>.json → its text. */
export async function renderDashboards(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const spec of DASHBOARDS) {
    const file = join(DASHBOARD_DIR, `${spec.uid}.json`);
    if (out.has(file)) throw new Error(`two dashboards have the uid ${spec.uid}`);
    // The repository's prettier options, whatever the output dir.
    const filepath = join(ROOT, file);
    const options = await prettier.resolveConfig(filepath);
    const json = JSON.stringify(dashboard(spec), null, 2);
    out.set(file, await prettier.format(json, { ...options, filepath }));
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const base = resolve(process.argv[2] ?? ROOT);
  await mkdir(join(base, DASHBOARD_DIR), { recursive: true });
  for (const [file, text] of await renderDashboards()) {
    await writeFile(join(base, file), text);
    console.log(`wrote ${join(base, file)}`);
  }
}
