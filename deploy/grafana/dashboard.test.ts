/**
 * Offline checks of the Grafana dashboards in deploy/grafana/ (every *.json there:
 * l2fed-gateways.json, l2fed-control-plane.json) against the metrics the code really
 * exports. The exported names, types and labels come from the prom-client registries
 * themselves (a fresh `GatewayMetrics`, `BrokerMetrics`, `AgentMetrics`), never from a
 * list kept here; every PromQL `expr` (panels and template variables) is parsed with the Prometheus
 * project's own grammar (@prometheus-io/lezer-promql). Each check collects every problem
 * and compares the list with [], so a failure names all of them.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual as isDeepEqual } from 'node:util';
import { parser } from '@prometheus-io/lezer-promql';
import type { Registry } from 'prom-client';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { BrokerMetrics } from '../../broker/metrics.js';
import { AgentMetrics } from '../../cluster-agent/metrics.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARD_DIR = 'deploy/grafana';
/** Every dashboard file; each is checked on its own, and together they show every metric. */
const DASHBOARD_FILES = readdirSync(join(ROOT, DASHBOARD_DIR))
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => `${DASHBOARD_DIR}/${f}`);

/**
 * Every prom-client registry of the production code, by the file that builds it. The
 * "prom-client users" test fails when another file starts exporting metrics, so the new
 * registry gets added here (and to the dashboard) instead of being missed.
 */
const REGISTRIES: Record<string, () => Registry> = {
  'gateway/metrics.ts': () => new GatewayMetrics('dashboard-test').registry,
  'broker/metrics.ts': () => new BrokerMetrics().registry,
  'cluster-agent/metrics.ts': () => new AgentMetrics('dashboard-test').registry,
};
const PRODUCTION_DIRS = ['cli', 'lab', 'cluster-agent', 'broker', 'gateway', 'lib'];

/** Labels Prometheus adds to every scraped series (the target's). */
const TARGET_LABELS = ['job', 'instance'];

/** Grafana's built-in interval variables: only ever used as a range, e.g. `[$__rate_interval]`. */
const INTERVAL_VARIABLES = new Set(['__rate_interval', '__interval', '__range']);

/**
 * Label → the template variable that selects on it; every selector of a metric with that
 * label must use it (the gateway's `gateway` and the agent's `cluster` are both the cluster id).
 */
const SCOPE: Record<string, string> = {
  gateway: 'cluster',
  cluster: 'cluster',
  peer: 'peer',
  network: 'network',
};

/**
 * Unit ids from Grafana's packages/grafana-data/src/valueFormats/categories.ts (the
 * categories a network dashboard uses). An unknown id is NOT an error in Grafana: it is
 * silently printed as a suffix, so a typo like "Bsp" would render "12 Bsp". Add an id here
 * only after checking it in that file.
 */
const GRAFANA_UNITS = new Set([
  // Misc
  'none',
  'short',
  'percent',
  'percentunit',
  'dB',
  'hex',
  'sci',
  'locale',
  // Data
  'bits',
  'bytes',
  'kbytes',
  'mbytes',
  'gbytes',
  'decbits',
  'decbytes',
  'deckbytes',
  'decmbytes',
  'decgbytes',
  // Data rate
  'pps',
  'bps',
  'Bps',
  'KBs',
  'Kbits',
  'MBs',
  'Mbits',
  'GBs',
  'Gbits',
  // Time
  'hertz',
  'ns',
  'µs',
  'ms',
  's',
  'm',
  'h',
  'd',
  'dtdurationms',
  'dtdurations',
  'dthms',
  'dateTimeAsIso',
  'dateTimeFromNow',
  // Throughput
  'cps',
  'ops',
  'reqps',
  'cpm',
  'opm',
]);
/** Grafana's custom units (valueFormats.ts getValueFormat): `suffix:B`, `count:frames`… */
const CUSTOM_UNIT = /^(suffix|prefix|si|count):\S.*$/;

const PROMETHEUS_DS = { type: 'prometheus', uid: '${datasource}' };

interface Series {
  /** The metric as the code declares it (a histogram's _bucket/_sum/_count map to it). */
  readonly metric: string;
  readonly labels: ReadonlySet<string>;
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: unknown;
  fieldConfig?: { defaults?: { unit?: unknown } };
  targets?: { expr?: unknown; datasource?: unknown; legendFormat?: unknown; refId?: unknown }[];
  panels?: Panel[];
}

interface Variable {
  name: string;
  type: string;
  query?: unknown;
  definition?: unknown;
  datasource?: unknown;
}

interface Dashboard {
  panels: Panel[];
  templating: { list: Variable[] };
}

function loadDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as Dashboard;
}

/** Every dashboard with its file name, the prefix of each problem found in it. */
const dashboards = () => DASHBOARD_FILES.map((file) => ({ file, d: loadDashboard(file) }));

/** Rows and their nested (collapsed) panels, flattened. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function describe(p: Panel): string {
  return `panel ${String(p.id)} "${p.title ?? ''}"`;
}

/**
 * The series names a scrape shows, from the registries: for a histogram the _bucket (with
 * `le`), _sum and _count series; for a summary the quantiles (`quantile`), _sum and _count.
 * Labels: the metric's labelNames, the registry's default labels, the target's labels.
 */
async function exportedSeries(): Promise<Map<string, Series>> {
  const out = new Map<string, Series>();
  for (const [source, make] of Object.entries(REGISTRIES)) {
    const registry = make();
    const metrics = await registry.getMetricsAsJSON();
    // prom-client has no getter for default labels; a fresh registry's only series are the
    // unlabelled ones, and every series carries the default labels: take what all share.
    let defaults: Set<string> | undefined;
    for (const m of metrics) {
      for (const v of m.values) {
        const keys = new Set(Object.keys(v.labels).filter((k) => k !== 'le' && k !== 'quantile'));
        defaults = defaults ? new Set([...defaults].filter((k) => keys.has(k))) : keys;
      }
    }
    for (const m of metrics) {
      const declared = (registry.getSingleMetric(m.name) as unknown as { labelNames?: unknown })
        ?.labelNames;
      if (!Array.isArray(declared)) {
        throw new Error(`${source}: ${m.name} has no labelNames array (prom-client changed?)`);
      }
      const labels = new Set<string>([
        ...(declared as string[]),
        ...(defaults ?? []),
        ...TARGET_LABELS,
      ]);
      const add = (name: string, extra: string[] = []) => {
        if (out.has(name)) throw new Error(`${source}: ${name} is exported twice`);
        out.set(name, { metric: m.name, labels: new Set([...labels, ...extra]) });
      };
      // Typed as a numeric enum by prom-client, but the value is the exposition's type name.
      const type = m.type as unknown as string;
      if (!['counter', 'gauge', 'histogram', 'summary'].includes(type)) {
        throw new Error(`${source}: ${m.name} has type ${String(type)} (prom-client changed?)`);
      }
      if (type === 'histogram') {
        add(`${m.name}_bucket`, ['le']);
        add(`${m.name}_sum`);
        add(`${m.name}_count`);
      } else if (type === 'summary') {
        add(m.name, ['quantile']);
        add(`${m.name}_sum`);
        add(`${m.name}_count`);
      } else {
        add(m.name);
      }
    }
  }
  return out;
}

interface Selector {
  readonly name: string | undefined;
  readonly matchers: readonly { label: string; op: string; value: string }[];
}

interface ParsedQuery {
  readonly selectors: readonly Selector[];
  /** Labels named in by/without/on/ignoring/group_left/group_right. */
  readonly groupingLabels: readonly string[];
  readonly errors: readonly string[];
}

for (const name of ['VectorSelector', 'Identifier', 'UnquotedLabelMatcher', 'GroupingLabels']) {
  // A grammar update that renamed these would make the walk below find nothing.
  if (!parser.nodeSet.types.some((t) => t.name === name)) {
    throw new Error(`@prometheus-io/lezer-promql has no node type ${name}: update parseQuery`);
  }
}

/**
 * Replaces Grafana variables the way Grafana does before the query reaches Prometheus:
 * interval variables by a duration, template variables by a marker `__var_<name>__` (inside
 * a label value string, as all of ours are) so matchers can be traced to their variable.
 */
function interpolate(expr: string, variables: ReadonlySet<string>, errors: string[]): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, a, b, c) => {
    const name = (a ?? b ?? c) as string;
    if (INTERVAL_VARIABLES.has(name)) return '5m';
    if (variables.has(name)) return `__var_${name}__`;
    errors.push(`unknown variable ${whole}`);
    return whole;
  });
}

/** Parses one PromQL expression (after interpolate) into its selectors and grouping labels. */
function parseQuery(expr: string): ParsedQuery {
  const tree = parser.parse(expr);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const errors: string[] = [];
  const text = (n: { from: number; to: number }) => expr.slice(n.from, n.to);
  tree.iterate({
    enter(ref) {
      const n = ref.node;
      if (n.type.isError) {
        errors.push(
          `syntax error at ${n.from}: ${JSON.stringify(expr.slice(n.from, n.from + 20))}`,
        );
      } else if (n.name === 'VectorSelector') {
        const id = n.getChild('Identifier');
        const matchers = (
          n.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []
        ).map((m) => ({
          label: text(m.getChild('LabelName')!),
          op: text(m.getChild('MatchOp')!),
          value: JSON.parse(text(m.getChild('StringLiteral')!).replace(/^'|'$/g, '"')) as string,
        }));
        if (n.getChild('LabelMatchers')?.getChild('QuotedLabelMatcher')) {
          errors.push(`quoted label names in ${text(n)} are not checked: use plain names`);
        }
        selectors.push({ name: id ? text(id) : undefined, matchers });
      } else if (n.name === 'GroupingLabels') {
        for (const l of n.getChildren('LabelName')) groupingLabels.push(text(l));
      }
    },
  });
  return { selectors, groupingLabels, errors };
}

/**
 * Every problem of one query: syntax, metric names the code does not export, labels that
 * no selected metric has. `scoped`: each selector must filter every label of SCOPE that
 * its metric has with `=~"$<variable>"`, so the pickers at the top apply to every panel.
 */
function queryProblems(
  where: string,
  expr: string,
  exported: ReadonlyMap<string, Series>,
  variables: ReadonlySet<string>,
  o: { scoped: boolean; legend?: string; extraLabels?: readonly string[] },
): string[] {
  const problems: string[] = [];
  const say = (m: string) => problems.push(`${where}: ${m}`);
  const varErrors: string[] = [];
  const q = parseQuery(interpolate(expr, variables, varErrors));
  for (const e of [...varErrors, ...q.errors]) say(e);
  if (q.selectors.length === 0) say('selects no metric');
  const labels = new Set<string>();
  for (const s of q.selectors) {
    if (s.name === undefined || s.matchers.some((m) => m.label === '__name__')) {
      say('a selector without a plain metric name ({__name__=…}): name the metric');
      continue;
    }
    const series = exported.get(s.name);
    if (!series) {
      say(`${s.name} is not exported by the code (${Object.keys(REGISTRIES).join(', ')})`);
      continue;
    }
    for (const l of series.labels) labels.add(l);
    for (const m of s.matchers) {
      if (!series.labels.has(m.label)) say(`${s.name} has no label ${m.label}`);
    }
    if (o.scoped) {
      for (const [label, variable] of Object.entries(SCOPE)) {
        if (!series.labels.has(label)) continue;
        const ok = s.matchers.some(
          (m) => m.label === label && m.op === '=~' && m.value === `__var_${variable}__`,
        );
        if (!ok) say(`${s.name} is not filtered by ${label}=~"$${variable}"`);
      }
    }
  }
  for (const l of [...q.groupingLabels, ...(o.extraLabels ?? [])]) {
    if (!labels.has(l)) say(`label ${l} is on none of the selected metrics`);
  }
  for (const [, l] of (o.legend ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
    if (!labels.has(l!)) say(`legend {{${l}}}: label is on none of the selected metrics`);
  }
  return problems;
}

/** label_values(<selector>, <label>): the only variable query form the dashboard uses. */
function variableQuery(v: Variable): string | undefined {
  const q = v.query;
  if (typeof q === 'string') return q;
  if (q && typeof q === 'object' && typeof (q as { query?: unknown }).query === 'string') {
    return (q as { query: string }).query;
  }
  return undefined;
}

test('dashboard - the data source is a Prometheus template variable used by every panel and query', (t) => {
  const problems: string[] = [];
  for (const { file, d } of dashboards()) {
    const say = (m: string) => problems.push(`${file}: ${m}`);
    const ds = d.templating.list.find((v) => v.name === 'datasource');
    if (ds?.type !== 'datasource' || ds.query !== 'prometheus') {
      say('templating: no variable "datasource" of type datasource with query prometheus');
    }
    for (const p of allPanels(d)) {
      if (p.type === 'row') {
        if (p.targets?.length) say(`${describe(p)}: a row has queries`);
        continue;
      }
      if (!isDeepEqual(p.datasource, PROMETHEUS_DS)) {
        say(`${describe(p)}: datasource ${JSON.stringify(p.datasource)}`);
      }
      if (!p.targets?.length) say(`${describe(p)}: no queries`);
      for (const target of p.targets ?? []) {
        if (target.datasource !== undefined && !isDeepEqual(target.datasource, PROMETHEUS_DS)) {
          say(
            `${describe(p)} ${String(target.refId)}: datasource ${JSON.stringify(target.datasource)}`,
          );
        }
      }
    }
    for (const v of d.templating.list) {
      if (v.type === 'query' && !isDeepEqual(v.datasource, PROMETHEUS_DS)) {
        say(`variable ${v.name}: datasource ${JSON.stringify(v.datasource)}`);
      }
    }
  }
  t.deepEqual(problems, []);
});

test('dashboard - panel ids are unique and every panel has a Grafana unit', (t) => {
  const problems: string[] = [];
  const uids = new Map<unknown, string>();
  for (const { file, d } of dashboards()) {
    const say = (m: string) => problems.push(`${file}: ${m}`);
    const uid = (d as { uid?: unknown }).uid;
    if (typeof uid !== 'string' || uid === '') say('no uid');
    else if (uids.has(uid)) say(`uid ${uid} also used by ${uids.get(uid)}`);
    else uids.set(uid, file);
    const seen = new Map<number, string>();
    for (const p of allPanels(d)) {
      if (typeof p.id !== 'number') say(`${describe(p)}: no numeric id`);
      else if (seen.has(p.id)) say(`${describe(p)}: id also used by ${seen.get(p.id)}`);
      else seen.set(p.id, describe(p));
      if (p.type === 'row') continue; // a row shows no values
      const unit = p.fieldConfig?.defaults?.unit;
      if (typeof unit !== 'string' || unit === '') {
        say(`${describe(p)}: fieldConfig.defaults.unit is not set`);
      } else if (!GRAFANA_UNITS.has(unit) && !CUSTOM_UNIT.test(unit)) {
        say(`${describe(p)}: unit "${unit}" is not a Grafana unit id (see GRAFANA_UNITS)`);
      }
    }
  }
  t.deepEqual(problems, []);
});

test('dashboard - every query names metrics and labels the code exports', async (t) => {
  const exported = await exportedSeries();
  const problems: string[] = [];
  for (const { file, d } of dashboards()) {
    const variables = new Set(d.templating.list.map((v) => v.name));
    let queries = 0;
    for (const p of allPanels(d)) {
      for (const target of p.targets ?? []) {
        const where = `${file}: ${describe(p)} ${String(target.refId)}`;
        if (typeof target.expr !== 'string' || target.expr.trim() === '') {
          problems.push(`${where}: no expr`);
          continue;
        }
        queries += 1;
        problems.push(
          ...queryProblems(where, target.expr, exported, variables, {
            scoped: true,
            legend: typeof target.legendFormat === 'string' ? target.legendFormat : '',
          }),
        );
      }
    }
    for (const v of d.templating.list.filter((x) => x.type === 'query')) {
      const where = `${file}: variable ${v.name}`;
      const q = variableQuery(v);
      const m = q === undefined ? null : /^label_values\((.+),\s*(\w+)\s*\)$/s.exec(q);
      if (!m) {
        problems.push(
          `${where}: query is not label_values(<selector>, <label>): ${JSON.stringify(q)}`,
        );
        continue;
      }
      if (v.definition !== q) problems.push(`${where}: definition differs from the query`);
      queries += 1;
      problems.push(
        ...queryProblems(where, m[1]!, exported, variables, {
          scoped: false,
          extraLabels: [m[2]!],
        }),
      );
    }
    if (queries === 0) problems.push(`${file}: the dashboard has no queries`);
  }
  t.deepEqual(problems, []);
  t.true(DASHBOARD_FILES.length >= 2, `dashboards found: ${DASHBOARD_FILES.join(', ')}`);
});

test('dashboard - every metric the code exports is on a dashboard', async (t) => {
  const exported = await exportedSeries();
  const shown = new Set<string>();
  for (const { d } of dashboards()) {
    const variables = new Set(d.templating.list.map((v) => v.name));
    for (const p of allPanels(d)) {
      for (const target of p.targets ?? []) {
        if (typeof target.expr !== 'string') continue;
        for (const s of parseQuery(interpolate(target.expr, variables, [])).selectors) {
          const series = s.name === undefined ? undefined : exported.get(s.name);
          if (series) shown.add(series.metric);
        }
      }
    }
  }
  const metrics = new Set([...exported.values()].map((s) => s.metric));
  t.deepEqual(
    [...metrics].filter((m) => !shown.has(m)).sort(),
    [],
    `metrics with no panel in ${DASHBOARD_FILES.join(' or ')}: add a panel (and document it in docs/)`,
  );
});

test('dashboard - the prom-client users of the production code are the registries checked here', (t) => {
  const users: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (
        /(?<!\.test|-fake)\.ts$/.test(e.name) &&
        /from ['"]prom-client['"]/.test(readFileSync(path, 'utf8'))
      ) {
        users.push(relative(ROOT, path));
      }
    }
  };
  for (const d of PRODUCTION_DIRS) walk(join(ROOT, d));
  t.deepEqual(
    users.sort(),
    Object.keys(REGISTRIES).sort(),
    'a file uses prom-client: add its registry to REGISTRIES in this test and its metrics to the dashboard',
  );
});

test('dashboard - the query check catches a misspelt metric, an unknown label and an unfiltered selector', async (t) => {
  // The checks above pass on the real dashboards; this proves they can fail.
  const exported = await exportedSeries();
  const SOURCES = Object.keys(REGISTRIES).join(', ');
  const variables = new Set(['cluster', 'peer', 'network']);
  const check = (expr: string, legend = '') =>
    queryProblems('q', expr, exported, variables, { scoped: true, legend });
  t.deepEqual(check('l2fed_gateway_tunnel_up{gateway=~"$cluster",peer=~"$peer"}'), []);
  t.deepEqual(
    check(
      'rate(l2fed_gateway_peer_sent_byte{gateway=~"$cluster",peer=~"$peer"}[$__rate_interval])',
    ),
    [`q: l2fed_gateway_peer_sent_byte is not exported by the code (${SOURCES})`],
  );
  t.deepEqual(
    check('sum by (le) (rate(l2fed_gateway_reconcile_duration_seconds{gateway=~"$cluster"}[5m]))'),
    [
      `q: l2fed_gateway_reconcile_duration_seconds is not exported by the code (${SOURCES})`,
      'q: label le is on none of the selected metrics',
    ],
  );
  t.deepEqual(check('l2fed_gateway_network_up{gateway=~"$cluster",network=~"$network",peer="x"}'), [
    'q: l2fed_gateway_network_up has no label peer',
  ]);
  t.deepEqual(check('l2fed_gateway_tunnel_up{peer=~"$peer"}', '{{gateway}} {{peers}}'), [
    'q: l2fed_gateway_tunnel_up is not filtered by gateway=~"$cluster"',
    'q: legend {{peers}}: label is on none of the selected metrics',
  ]);
  // The agent's series carry `cluster`; the broker's carry no cluster label at all.
  t.deepEqual(check('l2fed_agent_peer_map_age_seconds{source="broker"}', '{{cluster}}'), [
    'q: l2fed_agent_peer_map_age_seconds is not filtered by cluster=~"$cluster"',
  ]);
  t.deepEqual(check('sum by (cluster) (rate(l2fed_broker_requests_total{verb="get"}[5m]))'), [
    'q: label cluster is on none of the selected metrics',
  ]);
  t.deepEqual(check('{__name__="l2fed_gateway_tunnel_up"}'), [
    'q: a selector without a plain metric name ({__name__=…}): name the metric',
  ]);
  t.true(
    check('sum(l2fed_gateway_tunnel_up{gateway=~"$cluster",peer=~"$peer"}').some((p) =>
      p.includes('syntax error'),
    ),
  );
  t.deepEqual(check('l2fed_gateway_tunnel_up{gateway=~"$clusters",peer=~"$peer"}'), [
    'q: unknown variable $clusters',
    'q: l2fed_gateway_tunnel_up is not filtered by gateway=~"$cluster"',
  ]);
});
