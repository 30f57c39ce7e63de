/**
 * Typed builders of the Grafana dashboard JSON in deploy/grafana (schemaVersion 39):
 * the panel kinds the l2fed dashboards use, each with the options they share, and a
 * layout that numbers panels and places them left to right, row by row, so a
 * dashboard is written as rows of panels with a width and a height. Only data: the JSON
 * files are written by scripts/gen-dashboards.ts (`npm run gen`), and
 * deploy/grafana/dashboard.test.ts checks them against the metrics the code exports.
 */

/** The Prometheus data source, always the `${datasource}` template variable. */
export const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

/** Grafana's grid is 24 columns wide. */
const GRID_WIDTH = 24;

/** One colour band: from `value` up (null: from minus infinity). */
export interface Step {
  readonly color: string;
  readonly value: number | null;
}

/** A Grafana field override of the series of one query (by its refId). */
export interface Override {
  readonly matcher: { readonly id: 'byFrameRefID'; readonly options: string };
  readonly properties: readonly { readonly id: string; readonly value: unknown }[];
}

/** One PromQL query of a panel; `legend` is Grafana's legendFormat (`{{label}}`). */
export interface Query {
  readonly expr: string;
  readonly legend?: string;
}

/** A panel without its place: `layout` gives it an id, the data source and a gridPos. */
export interface PanelBody {
  readonly type: string;
  readonly title: string;
  readonly description: string;
  readonly fieldConfig: unknown;
  readonly options: unknown;
  readonly targets: unknown[];
}

/** A panel and its size in grid units (width of 24, height in rows of ~30 px). */
export interface Cell {
  readonly w: number;
  readonly h: number;
  readonly panel: PanelBody;
}

/** A row header and the panels under it. */
export interface Row {
  readonly title: string;
  readonly cells: readonly Cell[];
}

/** A dashboard variable as Grafana stores it. */
export type Variable = Readonly<Record<string, unknown>>;

export interface DashboardSpec {
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly variables: readonly Variable[];
  readonly rows: readonly Row[];
}

/** `metric{m1,m2}`, or the bare name without matchers. Matchers are PromQL: `code!="OK"`. */
export function selector(metric: string, ...matchers: string[]): string {
  return matchers.length === 0 ? metric : `${metric}{${matchers.join(',')}}`;
}

/** The matcher that applies a multi-value picker: `label=~"$variable"`. */
export function picked(label: string, variable: string = label): string {
  return `${label}=~"$${variable}"`;
}

function targets(queries: readonly Query[], instant = false): unknown[] {
  return queries.map((q, i) => ({
    datasource: DATASOURCE,
    refId: String.fromCharCode(65 + i),
    editorMode: 'code',
    ...(instant ? { range: false, instant: true } : { range: true }),
    expr: q.expr,
    legendFormat: q.legend ?? '',
  }));
}

const reduceLast = { calcs: ['lastNotNull'], fields: '', values: false };

/**
 * A single number. `steps`: colour bands; with more than the base band the background
 * is coloured (an alert-like tile), otherwise only the value.
 */
export function stat(o: {
  title: string;
  description: string;
  unit: string;
  expr: string;
  steps?: readonly Step[];
}): PanelBody {
  const steps = o.steps ?? [{ color: 'green', value: null }];
  return {
    type: 'stat',
    title: o.title,
    description: o.description,
    fieldConfig: {
      defaults: {
        unit: o.unit,
        decimals: 0,
        min: 0,
        color: { mode: 'thresholds' },
        thresholds: { mode: 'absolute', steps },
      },
      overrides: [],
    },
    options: {
      reduceOptions: reduceLast,
      colorMode: steps.length > 1 ? 'background' : 'value',
      graphMode: 'none',
      textMode: 'value',
      justifyMode: 'center',
      orientation: 'auto',
    },
    targets: targets([{ expr: o.expr }]),
  };
}

/** Green from 0, `color` from 1: a count that should be zero. */
export function nonZero(color = 'red'): Step[] {
  return [
    { color: 'green', value: null },
    { color, value: 1 },
  ];
}

/** A discrete state over time; the query's value v is shown as `states[v]`. */
export function stateTimeline(o: {
  title: string;
  description: string;
  states: readonly { text: string; color: string }[];
  queries: readonly Query[];
}): PanelBody {
  const options: Record<string, unknown> = {};
  o.states.forEach((s, index) => (options[String(index)] = { ...s, index }));
  return {
    type: 'state-timeline',
    title: o.title,
    description: o.description,
    fieldConfig: {
      defaults: {
        unit: 'none',
        color: { mode: 'thresholds' },
        thresholds: { mode: 'absolute', steps: [{ color: 'transparent', value: null }] },
        mappings: [{ type: 'value', options }],
        custom: { fillOpacity: 80, lineWidth: 0 },
      },
      overrides: [],
    },
    options: {
      showValue: 'never',
      mergeValues: true,
      rowHeight: 0.9,
      alignValue: 'left',
      legend: { showLegend: true, displayMode: 'list', placement: 'bottom' },
      tooltip: { mode: 'single', sort: 'none' },
    },
    targets: targets(o.queries),
  };
}

/**
 * Lines (or bars) over time with a table legend of the last and largest values.
 * `stacking`: written only when given (Grafana's default is none). `thresholds`: drawn
 * as lines.
 */
export function timeseries(o: {
  title: string;
  description: string;
  unit: string;
  queries: readonly Query[];
  legend: 'right' | 'bottom';
  bars?: boolean;
  stacking?: 'none' | 'normal';
  min?: number;
  max?: number;
  decimals?: number;
  thresholds?: readonly Step[];
  overrides?: readonly Override[];
}): PanelBody {
  const custom = {
    drawStyle: o.bars ? 'bars' : 'line',
    lineWidth: 1,
    fillOpacity: o.bars ? 80 : 10,
    showPoints: 'never',
    spanNulls: false,
    ...(o.stacking && { stacking: { mode: o.stacking, group: 'A' } }),
    ...(o.thresholds && { thresholdsStyle: { mode: 'line' } }),
  };
  return {
    type: 'timeseries',
    title: o.title,
    description: o.description,
    fieldConfig: {
      defaults: {
        unit: o.unit,
        color: { mode: 'palette-classic' },
        custom,
        ...(o.min !== undefined && { min: o.min }),
        ...(o.max !== undefined && { max: o.max }),
        ...(o.decimals !== undefined && { decimals: o.decimals }),
        ...(o.thresholds && { thresholds: { mode: 'absolute', steps: o.thresholds } }),
      },
      overrides: o.overrides ?? [],
    },
    options: {
      legend: {
        displayMode: 'table',
        placement: o.legend,
        calcs: ['lastNotNull', 'max'],
        showLegend: true,
      },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    targets: targets(o.queries),
  };
}

/** One horizontal bar per series, of the value now (an instant query). */
export function barGauge(o: {
  title: string;
  description: string;
  unit: string;
  query: Query;
  steps: readonly Step[];
}): PanelBody {
  return {
    type: 'bargauge',
    title: o.title,
    description: o.description,
    fieldConfig: {
      defaults: {
        unit: o.unit,
        decimals: 0,
        color: { mode: 'thresholds' },
        thresholds: { mode: 'absolute', steps: o.steps },
      },
      overrides: [],
    },
    options: {
      reduceOptions: reduceLast,
      orientation: 'horizontal',
      displayMode: 'basic',
      showUnfilled: true,
      valueMode: 'color',
    },
    targets: targets([o.query], true),
  };
}

/** Override: the series of query `refId` drawn below the axis (e.g. tx under rx). */
export function negativeY(refId: string): Override {
  return override(refId, 'custom.transform', 'negative-Y');
}

/** Override: the series of query `refId` dashed. */
export function dashed(refId: string): Override {
  return override(refId, 'custom.lineStyle', { fill: 'dash', dash: [10, 10] });
}

/** Override: the series of query `refId` in one colour. */
export function fixedColor(refId: string, color: string): Override {
  return override(refId, 'color', { mode: 'fixed', fixedColor: color });
}

function override(refId: string, id: string, value: unknown): Override {
  return { matcher: { id: 'byFrameRefID', options: refId }, properties: [{ id, value }] };
}

/** The `datasource` variable every query goes through. */
export const datasourceVariable: Variable = {
  name: 'datasource',
  label: 'Data source',
  type: 'datasource',
  query: 'prometheus',
  current: {},
  hide: 0,
  refresh: 1,
  regex: '',
  options: [],
};

/** A multi-value picker filled from `label_values(<selector>, <label>)`. */
export function labelVariable(o: {
  name: string;
  label: string;
  description: string;
  selector: string;
  of: string;
}): Variable {
  const query = `label_values(${o.selector}, ${o.of})`;
  return {
    name: o.name,
    label: o.label,
    description: o.description,
    type: 'query',
    datasource: DATASOURCE,
    definition: query,
    query: { qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: {},
    options: [],
    regex: '',
    sort: 1,
    hide: 0,
  };
}

/**
 * Panels with ids 1, 2, … in order and their gridPos: each row header takes a full line;
 * its panels go left to right and wrap to a new line (below the tallest of the line)
 * when the next one does not fit. Throws on a panel wider than the grid.
 */
export function layout(rows: readonly Row[]): unknown[] {
  const out: unknown[] = [];
  let id = 0;
  let y = 0;
  for (const row of rows) {
    out.push({
      id: ++id,
      type: 'row',
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: GRID_WIDTH, x: 0, y },
      panels: [],
    });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const { w, h, panel } of row.cells) {
      if (w < 1 || w > GRID_WIDTH) throw new Error(`${panel.title}: width ${w} is not 1..24`);
      if (x + w > GRID_WIDTH) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      const { type, title, description, ...rest } = panel;
      const gridPos = { h, w, x, y };
      out.push({ id: ++id, type, title, description, datasource: DATASOURCE, gridPos, ...rest });
      x += w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return out;
}

/** The whole dashboard object, as written to deploy/grafana/<uid>.json. */
export function dashboard(d: DashboardSpec): Record<string, unknown> {
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: d.tags,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    timezone: 'browser',
    links: [],
    annotations: { list: [] },
    templating: { list: [datasourceVariable, ...d.variables] },
    panels: layout(d.rows),
  };
}
