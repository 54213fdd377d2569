import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../helpers/paths.js";

/**
 * The Grafana part of the compose stack, read as Grafana reads it: the dashboards of
 * grafana/dashboards and the provisioning of grafana/provisioning. Used by the static checks of
 * dashboards.test.ts and by the tests that run the dashboards' queries against Prometheus.
 */

const GRAFANA_DIR = join(ROOT, "grafana");
const DASHBOARDS_DIR = join(GRAFANA_DIR, "dashboards");
export const DATASOURCES_DIR = join(GRAFANA_DIR, "provisioning", "datasources");
export const PROVIDERS_DIR = join(GRAFANA_DIR, "provisioning", "dashboards");

/** A reference to a datasource, as a dashboard holds it. */
export interface DatasourceRef {
  type?: string;
  uid?: string;
}

export interface Target {
  refId?: string;
  datasource?: unknown;
  expr?: unknown;
  exemplar?: unknown;
  hide?: unknown;
  url?: unknown;
  [key: string]: unknown;
}

export interface Panel {
  id?: unknown;
  title?: unknown;
  type?: unknown;
  datasource?: unknown;
  targets?: Target[];
  /** The panels of a row (collapsed rows hold their panels). */
  panels?: Panel[];
  [key: string]: unknown;
}

export interface Variable {
  name?: unknown;
  type?: unknown;
  datasource?: unknown;
  query?: unknown;
  definition?: unknown;
  [key: string]: unknown;
}

export interface Dashboard {
  uid?: unknown;
  title?: unknown;
  panels?: Panel[];
  templating?: { list?: Variable[] };
  [key: string]: unknown;
}

/** A datasource of grafana/provisioning/datasources. */
export interface ProvisionedDatasource {
  name?: unknown;
  uid?: unknown;
  type?: unknown;
  url?: unknown;
  isDefault?: unknown;
  jsonData?: Record<string, unknown>;
  [key: string]: unknown;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function filesOf(dir: string, extensions: readonly string[]): string[] {
  return readdirSync(dir)
    .filter((name) => extensions.some((ext) => name.endsWith(ext)))
    .sort()
    .map((name) => join(dir, name));
}

/** Every dashboard of grafana/dashboards, parsed; throws on a file that is not JSON. */
export function loadDashboards(): { file: string; dashboard: Dashboard }[] {
  return filesOf(DASHBOARDS_DIR, [".json"]).map((file) => {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    if (!isObject(parsed)) throw new Error(`${file}: not a JSON object`);
    return { file, dashboard: parsed as Dashboard };
  });
}

/** The YAML documents of a provisioning folder (`.yml` and `.yaml`). */
export function provisioningFiles(dir: string): { file: string; doc: Record<string, unknown> }[] {
  return filesOf(dir, [".yml", ".yaml"]).map((file) => {
    const doc: unknown = parse(readFileSync(file, "utf8"));
    if (!isObject(doc)) throw new Error(`${file}: not a YAML mapping`);
    return { file, doc };
  });
}

/** Every provisioned datasource. */
export function provisionedDatasources(): ProvisionedDatasource[] {
  const out: ProvisionedDatasource[] = [];
  for (const { file, doc } of provisioningFiles(DATASOURCES_DIR)) {
    const list = doc.datasources ?? [];
    if (!Array.isArray(list)) throw new Error(`${file}: datasources is not a list`);
    for (const ds of list) {
      if (!isObject(ds)) throw new Error(`${file}: a datasource is not a mapping`);
      out.push(ds as ProvisionedDatasource);
    }
  }
  return out;
}

/** A dashboard's title, or its file when it has none. */
export function dashboardTitle(dashboard: Dashboard, file: string): string {
  return typeof dashboard.title === "string" ? dashboard.title : file;
}

/** A panel's title, or its id when it has none. */
export function panelTitle(panel: Panel): string {
  return typeof panel.title === "string" ? panel.title : `panel ${String(panel.id)}`;
}

/** A panel's panels and those of its rows, depth first, the rows included. */
export function allPanels(panels: readonly Panel[] | undefined): Panel[] {
  const out: Panel[] = [];
  for (const panel of panels ?? []) {
    out.push(panel);
    out.push(...allPanels(panel.panels));
  }
  return out;
}

/** A datasource reference in its object form, or undefined for anything else (a name). */
export function datasourceRef(value: unknown): DatasourceRef | undefined {
  if (!isObject(value)) return undefined;
  const ref: DatasourceRef = {};
  if (typeof value.type === "string") ref.type = value.type;
  if (typeof value.uid === "string") ref.uid = value.uid;
  return ref;
}

/** A target's datasource: its own, else its panel's, as Grafana resolves it. */
export function targetDatasource(panel: Panel, target: Target): DatasourceRef | undefined {
  return datasourceRef(target.datasource) ?? datasourceRef(panel.datasource);
}

/** The type of a reference: its own, else that of the provisioned datasource with its uid. */
function typeOf(ref: DatasourceRef | undefined, datasources: readonly ProvisionedDatasource[]) {
  if (ref === undefined) return undefined;
  if (ref.type !== undefined) return ref.type;
  const ds = datasources.find((d) => d.uid === ref.uid);
  return typeof ds?.type === "string" ? ds.type : undefined;
}

export interface PrometheusTarget {
  dashboard: string;
  panel: Panel;
  target: Target;
  expr: string;
}

/** Every target of every panel that queries Prometheus, with its panel. */
export function prometheusTargets(): PrometheusTarget[] {
  const datasources = provisionedDatasources();
  const out: PrometheusTarget[] = [];
  for (const { file, dashboard } of loadDashboards()) {
    const name = dashboardTitle(dashboard, file);
    for (const panel of allPanels(dashboard.panels)) {
      for (const target of panel.targets ?? []) {
        if (typeOf(targetDatasource(panel, target), datasources) !== "prometheus") continue;
        if (typeof target.expr !== "string" || target.expr.trim() === "") continue;
        out.push({ dashboard: name, panel, target, expr: target.expr });
      }
    }
  }
  return out;
}

/**
 * Every PromQL expression of the dashboards' panels (rows' panels included), with the title of
 * its dashboard and of its panel. Template variables are left as written: see
 * {@link withVariables}.
 */
export function dashboardExpressions(): { dashboard: string; panel: string; expr: string }[] {
  return prometheusTargets().map(({ dashboard, panel, expr }) => ({
    dashboard,
    panel: panelTitle(panel),
    expr,
  }));
}

const DURATION_UNITS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
  y: 31_536_000,
};

/** A Prometheus duration ("90s", "5m", "1h30m") in seconds. */
export function durationSeconds(duration: string): number {
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== duration) {
    throw new Error(`not a Prometheus duration: ${duration}`);
  }
  let seconds = 0;
  for (const [, amount = "0", unit = "s"] of parts) {
    seconds += Number(amount) * (DURATION_UNITS[unit] ?? Number.NaN);
  }
  return seconds;
}

/**
 * An expression with its template variables replaced as Grafana would: `$pipeline`,
 * `${pipeline}` (any format, e.g. `${pipeline:regex}`) and `[[pipeline]]` by `values.pipeline`,
 * the same for `tenant`, taken verbatim (give a regex, e.g. ".*" for All); `$__rate_interval`,
 * `$__interval`, `$__range` and `$__auto` by `values.interval` (a Prometheus duration, e.g.
 * "5m"), `$__range_s`/`$__interval_s` by it in seconds and `$__range_ms`/`$__interval_ms` in
 * milliseconds. Throws on any other variable, so that an expression cannot reach Prometheus
 * with a `$` left in it.
 */
export function withVariables(
  expr: string,
  values: { pipeline: string; tenant: string; interval: string },
): string {
  const seconds = durationSeconds(values.interval);
  const known: Record<string, string> = {
    pipeline: values.pipeline,
    tenant: values.tenant,
    __rate_interval: values.interval,
    __interval: values.interval,
    __range: values.interval,
    __auto: values.interval,
    __range_s: String(Math.round(seconds)),
    __interval_s: String(Math.round(seconds)),
    __range_ms: String(Math.round(seconds * 1000)),
    __interval_ms: String(Math.round(seconds * 1000)),
  };
  return expr.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)/g,
    (whole, braced?: string, bracketed?: string, bare?: string) => {
      const name = braced ?? bracketed ?? bare ?? "";
      // $1 and the like: the groups of label_replace's replacement, not variables.
      if (/^\d+$/.test(name)) return whole;
      const value = known[name];
      if (value === undefined) throw new Error(`unknown variable ${whole} in: ${expr}`);
      return value;
    },
  );
}

// --- PromQL ------------------------------------------------------------------------------------

/** PromQL's functions (Prometheus 2 and 3), and `start`/`end` of the `@` modifier. */
const FUNCTIONS = new Set([
  "abs",
  "absent",
  "absent_over_time",
  "acos",
  "acosh",
  "asin",
  "asinh",
  "atan",
  "atanh",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "cos",
  "cosh",
  "count_over_time",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "deg",
  "delta",
  "deriv",
  "double_exponential_smoothing",
  "exp",
  "first_over_time",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_stddev",
  "histogram_stdvar",
  "histogram_sum",
  "holt_winters",
  "hour",
  "idelta",
  "increase",
  "info",
  "irate",
  "label_join",
  "label_replace",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "mad_over_time",
  "max_over_time",
  "min_over_time",
  "minute",
  "month",
  "pi",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rad",
  "rate",
  "resets",
  "round",
  "scalar",
  "sgn",
  "sin",
  "sinh",
  "sort",
  "sort_by_label",
  "sort_by_label_desc",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "tan",
  "tanh",
  "time",
  "timestamp",
  "ts_of_first_over_time",
  "ts_of_last_over_time",
  "ts_of_max_over_time",
  "ts_of_min_over_time",
  "vector",
  "year",
  "start",
  "end",
]);

const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

/** Keywords followed by a list of label names in parentheses (optional for group_*). */
const LABEL_LIST_KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
]);

const KEYWORDS = new Set([
  ...LABEL_LIST_KEYWORDS,
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "atan2",
  "inf",
  "nan",
]);

/** A vector selector of an expression: its metric name and the labels its matchers name. */
export interface Selector {
  metric: string;
  labels: string[];
}

/** The index just past the string literal that starts at `start`. */
function skipString(expr: string, start: number): number {
  const quote = expr[start];
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) i += quote !== "`" && expr[i] === "\\" ? 2 : 1;
  if (i >= expr.length) throw new Error(`unterminated string at ${start} in: ${expr}`);
  return i + 1;
}

/** The index just past the bracket that closes the one at `start`, skipping strings. */
function skipBracket(expr: string, start: number, open: string, close: string): number {
  let depth = 0;
  let i = start;
  while (i < expr.length) {
    const c = expr[i] ?? "";
    if (c === '"' || c === "'" || c === "`") {
      i = skipString(expr, i);
      continue;
    }
    if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
    i++;
  }
  throw new Error(`unclosed ${open} at ${start} in: ${expr}`);
}

function skipSpace(expr: string, start: number): number {
  let i = start;
  while (i < expr.length && /\s/.test(expr[i] ?? "")) i++;
  return i;
}

/** The label names of the matchers between braces (`{a="x", b=~"y"}`). */
function matcherLabels(body: string): string[] {
  const labels: string[] = [];
  let i = 0;
  while (i < body.length) {
    const c = body[i] ?? "";
    if (c === '"' || c === "'" || c === "`") {
      i = skipString(body, i);
      continue;
    }
    const ident = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(body.slice(i));
    if (ident) {
      const after = skipSpace(body, i + ident[0].length);
      if (/^(=~|!~|!=|=)/.test(body.slice(after))) labels.push(ident[0]);
      i += ident[0].length;
      continue;
    }
    i++;
  }
  return labels;
}

/**
 * The vector selectors of a PromQL expression, found by a small tokenizer: it skips strings,
 * `[...]` ranges, `$variables`, numbers and durations, function and aggregation names, keywords
 * and the label lists of `by (...)`, `on (...)` and the like. An identifier left is a metric name,
 * whether a `{...}` follows it or not. A selector without a metric name (`{__name__=~"..."}`)
 * is left out.
 */
export function promqlSelectors(expr: string): Selector[] {
  const out: Selector[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] ?? "";
    const rest = expr.slice(i);
    if (c === '"' || c === "'" || c === "`") {
      i = skipString(expr, i);
    } else if (c === "#") {
      const eol = expr.indexOf("\n", i);
      i = eol === -1 ? expr.length : eol + 1;
    } else if (c === "[") {
      i = skipBracket(expr, i, "[", "]");
    } else if (c === "{") {
      i = skipBracket(expr, i, "{", "}");
    } else if (c === "$") {
      const variable = /^\$(\{[^}]*\}|\w+)/.exec(rest);
      i += variable ? variable[0].length : 1;
    } else if (
      /[0-9.]/.test(c) &&
      /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?[a-zA-Z0-9]*)/i.test(rest)
    ) {
      const number = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?[a-zA-Z0-9]*)/i.exec(rest);
      i += number?.[0].length ?? 1;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest)?.[0] ?? c;
      const after = skipSpace(expr, i + name.length);
      const next = expr[after];
      const word = name.toLowerCase();
      if (LABEL_LIST_KEYWORDS.has(word)) {
        i = next === "(" ? skipBracket(expr, after, "(", ")") : after;
      } else if (KEYWORDS.has(word) || AGGREGATIONS.has(word)) {
        i = after;
      } else if (FUNCTIONS.has(name) && next === "(") {
        i = after;
      } else if (next === "{") {
        const end = skipBracket(expr, after, "{", "}");
        out.push({ metric: name, labels: matcherLabels(expr.slice(after + 1, end - 1)) });
        i = end;
      } else {
        out.push({ metric: name, labels: [] });
        i = after;
      }
    } else {
      i++;
    }
  }
  return out;
}

/** The metric names of a PromQL expression, each once. */
export function promqlMetricNames(expr: string): string[] {
  return [...new Set(promqlSelectors(expr).map((s) => s.metric))];
}

/**
 * The PromQL in a Prometheus template variable's query: the selector of
 * `label_values(selector, label)`, the expression of `query_result(expr)`, nothing for
 * `label_values(label)`, `label_names()` and `metrics(regex)`.
 */
export function variablePromql(query: string): string | undefined {
  const text = query.trim();
  const labelValues = /^label_values\(\s*(.+)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/s.exec(text);
  if (labelValues) return labelValues[1];
  const queryResult = /^query_result\(\s*(.+)\s*\)$/s.exec(text);
  if (queryResult) return queryResult[1];
  if (/^(label_values|label_names|metrics)\(/.test(text)) return undefined;
  return text;
}

/** The query text of a variable: Grafana 10+ keeps it in `query.query`, older ones in `query`. */
export function variableQuery(variable: Variable): string | undefined {
  if (typeof variable.query === "string") return variable.query;
  if (isObject(variable.query) && typeof variable.query.query === "string") {
    return variable.query.query;
  }
  return undefined;
}
