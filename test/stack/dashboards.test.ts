import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { RunMetrics } from "../../src/server/run-metrics.js";
import { PROMTOOL, promtoolMissing } from "../helpers/promtool.js";
import { tempDir } from "../helpers/temp-dir.js";
import { environmentOf, mountsOf, services } from "./_compose.js";
import {
  allPanels,
  DATASOURCES_DIR,
  type Dashboard,
  dashboardExpressions,
  dashboardTitle,
  datasourceRef,
  isObject,
  loadDashboards,
  type Panel,
  PROVIDERS_DIR,
  type ProvisionedDatasource,
  panelTitle,
  prometheusTargets,
  promqlMetricNames,
  promqlSelectors,
  provisionedDatasources,
  provisioningFiles,
  targetDatasource,
  variablePromql,
  variableQuery,
  withVariables,
} from "./_dashboards.js";

/** Where docker-compose.yml mounts ./grafana/dashboards in the Grafana container. */
const DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards";
const PROVISIONING_MOUNT = "/etc/grafana/provisioning";
const INFINITY = "yesoreyeram-infinity-datasource";

/** Datasources every Grafana has, which no provisioning declares. */
const BUILT_IN_UIDS = new Set(["-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"]);

/**
 * The OTel Collector's spanmetrics connector's series, which a dashboard may use besides
 * runtrail's own metrics (the Pipeline runs dashboard does not). collector/otel-collector.yaml
 * sets their namespace and their unit, seconds.
 */
const SPANMETRICS = [
  "traces_span_metrics_calls_total",
  "traces_span_metrics_duration_seconds_bucket",
  "traces_span_metrics_duration_seconds_sum",
  "traces_span_metrics_duration_seconds_count",
];

/**
 * The labels of runtrail's run metrics (src/server/run-metrics.ts), so that a matcher on a label
 * a metric does not have (which `=~".*"`, the All of a variable, would match silently) fails
 * here. Prometheus adds `job` and `instance`; histogram buckets have `le`.
 */
const RUN_METRIC_LABELS: Record<string, readonly string[]> = {
  runtrail_runs_total: ["pipeline", "status", "tenant"],
  runtrail_run_duration_seconds: ["pipeline", "status"],
  runtrail_stage_duration_seconds: ["pipeline", "stage", "status"],
  runtrail_llm_calls_total: ["pipeline"],
  runtrail_tokens_total: ["pipeline", "type"],
  runtrail_rows_total: ["pipeline", "direction"],
  runtrail_runs_running: ["pipeline"],
  runtrail_runs_crashed_total: ["pipeline"],
  runtrail_stuck_runs: [],
};
const TARGET_LABELS = ["job", "instance"];

/** The series names runtrail's /metrics serves, from its `# TYPE` lines. */
async function exportedSeries(): Promise<Set<string>> {
  const { body } = await new RunMetrics({ stuckAfterMs: 3_600_000 }).render(undefined);
  const names = new Set<string>();
  for (const [, name = "", kind] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (kind === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    } else if (kind === "summary") {
      for (const suffix of ["", "_sum", "_count"]) names.add(name + suffix);
    } else {
      names.add(name);
    }
  }
  return names;
}

/** The labels a series of a run metric may have, or undefined for other metrics. */
function labelsOf(series: string): readonly string[] | undefined {
  const own = RUN_METRIC_LABELS[series];
  if (own) return [...own, ...TARGET_LABELS];
  const bucket = RUN_METRIC_LABELS[series.replace(/_bucket$/, "")];
  if (bucket && series.endsWith("_bucket")) return [...bucket, "le", ...TARGET_LABELS];
  const other = RUN_METRIC_LABELS[series.replace(/_(sum|count)$/, "")];
  if (other && /_(sum|count)$/.test(series)) return [...other, ...TARGET_LABELS];
  return undefined;
}

/** Every value of every `key` in a JSON tree, with its path. */
function valuesOfKey(tree: unknown, key: string, path = "$"): { path: string; value: unknown }[] {
  const out: { path: string; value: unknown }[] = [];
  if (Array.isArray(tree)) {
    tree.forEach((item, i) => {
      out.push(...valuesOfKey(item, key, `${path}[${i}]`));
    });
  } else if (isObject(tree)) {
    for (const [k, v] of Object.entries(tree)) {
      if (k === key) out.push({ path: `${path}.${k}`, value: v });
      out.push(...valuesOfKey(v, key, `${path}.${k}`));
    }
  }
  return out;
}

/** A panel as error messages name it. */
function panelName(dashboard: string, panel: Panel): string {
  return `${dashboard} / ${panelTitle(panel)}`;
}

let datasources: ProvisionedDatasource[];
let uids: Map<string, string>;
let dashboards: { file: string; dashboard: Dashboard }[];

beforeAll(() => {
  datasources = provisionedDatasources();
  uids = new Map(datasources.map((ds) => [String(ds.uid), String(ds.type)]));
  dashboards = loadDashboards();
});

/** Problems with a datasource reference: unknown uid, or a type other than the uid's. */
function refProblems(where: string, value: unknown): string[] {
  const ref = datasourceRef(value);
  if (ref === undefined)
    return [`${where}: datasource ${JSON.stringify(value)} is not { type, uid }`];
  if (ref.uid === undefined) return [`${where}: datasource without uid`];
  if (BUILT_IN_UIDS.has(ref.uid)) return [];
  const type = uids.get(ref.uid);
  if (type === undefined) return [`${where}: datasource uid ${ref.uid} is not provisioned`];
  if (ref.type !== undefined && ref.type !== type) {
    return [`${where}: datasource ${ref.uid} is a ${type}, not a ${ref.type}`];
  }
  return [];
}

describe("Grafana provisioning", () => {
  it("provisions datasources with unique uids, one of them the default", () => {
    for (const { file, doc } of provisioningFiles(DATASOURCES_DIR)) {
      expect(doc.apiVersion, file).toBe(1);
    }
    expect(datasources.length).toBeGreaterThan(0);
    for (const ds of datasources) {
      expect(typeof ds.uid === "string" && ds.uid !== "", JSON.stringify(ds)).toBe(true);
      expect(typeof ds.type === "string" && ds.type !== "", JSON.stringify(ds)).toBe(true);
      expect(typeof ds.name === "string" && ds.name !== "", JSON.stringify(ds)).toBe(true);
    }
    expect(uids.size).toBe(datasources.length);
    expect(new Set(datasources.map((ds) => ds.name)).size).toBe(datasources.length);
    expect(datasources.filter((ds) => ds.isDefault === true)).toHaveLength(1);
  });

  it("links the Prometheus exemplars' trace_id to a provisioned Jaeger datasource", () => {
    const prometheus = datasources.filter((ds) => ds.type === "prometheus");
    expect(prometheus.length).toBeGreaterThan(0);
    for (const ds of prometheus) {
      const destinations = ds.jsonData?.exemplarTraceIdDestinations;
      expect(Array.isArray(destinations), `${String(ds.uid)}: exemplarTraceIdDestinations`).toBe(
        true,
      );
      if (!Array.isArray(destinations)) continue;
      expect(destinations.length).toBeGreaterThan(0);
      for (const destination of destinations) {
        expect(isObject(destination)).toBe(true);
        if (!isObject(destination)) continue;
        // The exemplar label runtrail puts the run's trace id in.
        expect(destination.name).toBe("trace_id");
        expect(uids.get(String(destination.datasourceUid))).toBe("jaeger");
      }
    }
  });

  it("lets the Infinity datasource reach its own URL, and only the allowed hosts", () => {
    const infinity = datasources.filter((ds) => ds.type === INFINITY);
    for (const ds of infinity) {
      const allowed = ds.jsonData?.allowedHosts;
      expect(Array.isArray(allowed) && allowed.length > 0, String(ds.uid)).toBe(true);
      if (!Array.isArray(allowed)) continue;
      if (typeof ds.url === "string") {
        const url = ds.url;
        expect(
          allowed.some((host) => typeof host === "string" && url.startsWith(host)),
          `${String(ds.uid)}: ${url} is not an allowed host`,
        ).toBe(true);
      }
      // Every query of a panel on this datasource goes to an allowed host (Infinity compares
      // the start of the URL).
      for (const { file, dashboard } of dashboards) {
        for (const panel of allPanels(dashboard.panels)) {
          for (const target of panel.targets ?? []) {
            if (targetDatasource(panel, target)?.uid !== ds.uid) continue;
            const where = panelName(dashboardTitle(dashboard, file), panel);
            expect(typeof target.url, where).toBe("string");
            const url = String(target.url);
            expect(
              allowed.some((host) => typeof host === "string" && url.startsWith(host)),
              `${where}: ${url} is not an allowed host`,
            ).toBe(true);
          }
        }
      }
    }
  });

  it("loads the dashboards from where docker-compose.yml mounts them", () => {
    const providers = provisioningFiles(PROVIDERS_DIR).flatMap(({ file, doc }) => {
      expect(doc.apiVersion, file).toBe(1);
      return Array.isArray(doc.providers) ? doc.providers : [];
    });
    expect(providers.length).toBeGreaterThan(0);
    for (const provider of providers) {
      expect(isObject(provider)).toBe(true);
      if (!isObject(provider)) continue;
      expect(provider.type).toBe("file");
      expect(isObject(provider.options) ? provider.options.path : undefined).toBe(DASHBOARDS_MOUNT);
    }
  });

  it("matches docker-compose.yml: mounts, and the Infinity plugin installed", () => {
    const grafana = services.grafana;
    expect(isObject(grafana), "a grafana service").toBe(true);
    if (grafana === undefined) return;
    const mounts = new Map(mountsOf(grafana).map((m) => [m.source.replace(/\/$/, ""), m.target]));
    expect(mounts.get("./grafana/dashboards")).toBe(DASHBOARDS_MOUNT);
    expect(mounts.get("./grafana/provisioning")).toBe(PROVISIONING_MOUNT);

    const installed = (environmentOf(grafana).GF_INSTALL_PLUGINS ?? "")
      .split(",")
      .map((p) => p.trim().split(/\s+/)[0]);
    expect(installed).toContain(INFINITY);
  });
});

describe("Grafana dashboards", () => {
  it("parse, with a unique uid and a title each", () => {
    expect(dashboards.length).toBeGreaterThan(0);
    const seen = new Set<string>();
    for (const { file, dashboard } of dashboards) {
      expect(typeof dashboard.uid === "string" && dashboard.uid !== "", file).toBe(true);
      expect(typeof dashboard.title === "string" && dashboard.title !== "", file).toBe(true);
      expect(seen.has(String(dashboard.uid)), `${file}: uid ${String(dashboard.uid)}`).toBe(false);
      seen.add(String(dashboard.uid));
      expect(allPanels(dashboard.panels).length, file).toBeGreaterThan(0);
    }
  });

  it("give every panel and every target a provisioned datasource, rows' panels included", () => {
    const problems: string[] = [];
    for (const { file, dashboard } of dashboards) {
      for (const panel of allPanels(dashboard.panels)) {
        const where = panelName(dashboardTitle(dashboard, file), panel);
        // A row is a container: it needs a datasource only to repeat, and then a known one.
        if (panel.type === "row") {
          if (panel.datasource != null) problems.push(...refProblems(where, panel.datasource));
          continue;
        }
        problems.push(...refProblems(where, panel.datasource));
        const targets = panel.targets ?? [];
        if (targets.length === 0) problems.push(`${where}: no targets`);
        for (const target of targets) {
          problems.push(...refProblems(`${where} [${String(target.refId)}]`, target.datasource));
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("give every template variable that queries a provisioned datasource", () => {
    const problems: string[] = [];
    for (const { file, dashboard } of dashboards) {
      for (const variable of dashboard.templating?.list ?? []) {
        if (variable.type !== "query") continue;
        const where = `${dashboardTitle(dashboard, file)} / $${String(variable.name)}`;
        problems.push(...refProblems(where, variable.datasource));
      }
    }
    expect(problems).toEqual([]);
  });

  it("refer only to provisioned datasources, anywhere in their JSON", () => {
    const problems: string[] = [];
    for (const { file, dashboard } of dashboards) {
      for (const { path, value } of valuesOfKey(dashboard, "datasource")) {
        if (value === null) continue;
        problems.push(...refProblems(`${file} ${path}`, value));
      }
      for (const { path, value } of valuesOfKey(dashboard, "datasourceUid")) {
        if (typeof value !== "string" || !uids.has(value)) {
          problems.push(`${file} ${path}: datasource uid ${String(value)} is not provisioned`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("the dashboards' PromQL", () => {
  it("finds metric names, not functions, keywords, labels, strings or variables", () => {
    expect(
      promqlMetricNames(
        'sum by (le, pipeline) (rate(a_bucket{pipeline=~"$pipeline", x="}"}[$__rate_interval]))' +
          " / on (pipeline) group_left (stage) b offset 5m or vector(0) * 1e-3" +
          ' + label_replace(c_total{y!~"z"}, "dst", "$1", "src", "(.*)") > bool 0x1F',
      ),
    ).toEqual(["a_bucket", "b", "c_total"]);
    expect(promqlSelectors('sum without (x) (m{a="1",b=~"2"}) unless n')).toEqual([
      { metric: "m", labels: ["a", "b"] },
      { metric: "n", labels: [] },
    ]);
    expect(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${variable} syntax
      withVariables('rate(m{pipeline=~"${pipeline}",tenant=~"$tenant"}[$__rate_interval])', {
        pipeline: "a|b",
        tenant: ".*",
        interval: "5m",
      }),
    ).toBe('rate(m{pipeline=~"a|b",tenant=~".*"}[5m])');
    expect(
      withVariables("x[$__range] / $__range_s", { pipeline: "", tenant: "", interval: "1h" }),
    ).toBe("x[1h] / 3600");
    expect(() =>
      withVariables('m{a=~"$nope"}', { pipeline: "", tenant: "", interval: "1m" }),
    ).toThrow(/unknown variable/);
  });

  it("has expressions, each in a panel of a dashboard", () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(0);
    for (const { dashboard, panel, expr } of expressions) {
      expect(dashboard).not.toBe("");
      expect(panel).not.toBe("");
      expect(expr.trim()).not.toBe("");
    }
  });

  it("uses only metrics runtrail's /metrics serves", async () => {
    const exported = await exportedSeries();
    for (const name of Object.keys(RUN_METRIC_LABELS)) {
      expect(
        exported.has(name) || exported.has(`${name}_bucket`),
        `${name} is not in /metrics any more: update the dashboards and this test`,
      ).toBe(true);
    }
    const allowed = new Set([...exported, ...SPANMETRICS]);
    const unknown: string[] = [];
    for (const { dashboard, panel, expr } of dashboardExpressions()) {
      for (const name of promqlMetricNames(expr)) {
        if (!allowed.has(name)) unknown.push(`${dashboard} / ${panel}: ${name} in ${expr}`);
      }
    }
    for (const { file, dashboard } of dashboards) {
      for (const variable of dashboard.templating?.list ?? []) {
        if (variable.type !== "query") continue;
        const query = variableQuery(variable);
        const promql = query === undefined ? undefined : variablePromql(query);
        for (const name of promql === undefined ? [] : promqlMetricNames(promql)) {
          if (!allowed.has(name)) {
            unknown.push(`${dashboardTitle(dashboard, file)} / $${String(variable.name)}: ${name}`);
          }
        }
      }
    }
    expect(unknown).toEqual([]);
  });

  it("shows every run metric runtrail serves", () => {
    const used = new Set(dashboardExpressions().flatMap(({ expr }) => promqlMetricNames(expr)));
    const missing = Object.keys(RUN_METRIC_LABELS).filter(
      (name) => ![name, `${name}_bucket`, `${name}_sum`, `${name}_count`].some((n) => used.has(n)),
    );
    expect(missing).toEqual([]);
  });

  it("matches only on labels the metrics have", () => {
    const problems: string[] = [];
    for (const { dashboard, panel, expr } of dashboardExpressions()) {
      for (const { metric, labels } of promqlSelectors(expr)) {
        const known = labelsOf(metric);
        if (known === undefined) continue;
        for (const label of labels) {
          if (!known.includes(label)) problems.push(`${dashboard} / ${panel}: ${metric}{${label}}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("uses $pipeline and $tenant only as regex matchers, and intervals only as ranges", () => {
    const problems: string[] = [];
    const interval = String.raw`\$(\{__(rate_interval|interval|range)\}|__(rate_interval|interval|range)\b)`;
    const allowed = [
      new RegExp(String.raw`\[${interval}(:${interval})?\]`, "g"),
      /\bpipeline=~"\$(\{pipeline\}|pipeline\b)"/g,
      /\btenant=~"\$(\{tenant\}|tenant\b)"/g,
    ];
    for (const { dashboard, panel, expr } of dashboardExpressions()) {
      let rest = expr;
      for (const pattern of allowed) rest = rest.replace(pattern, "");
      if (rest.includes("$")) problems.push(`${dashboard} / ${panel}: ${expr}`);
    }
    expect(problems).toEqual([]);
  });

  it("asks for exemplars on the duration panels", () => {
    const duration = prometheusTargets().filter(({ expr }) =>
      /runtrail_(run|stage)_duration_seconds_bucket/.test(expr),
    );
    const names = duration.flatMap(({ expr }) => promqlMetricNames(expr));
    expect(names).toContain("runtrail_run_duration_seconds_bucket");
    expect(names).toContain("runtrail_stage_duration_seconds_bucket");
    for (const { dashboard, panel } of duration) {
      for (const target of panel.targets ?? []) {
        expect(target.exemplar, `${panelName(dashboard, panel)} [${String(target.refId)}]`).toBe(
          true,
        );
      }
    }
  });

  it("parses, with its variables replaced (promtool check rules)", async (ctx) => {
    const missing = promtoolMissing();
    if (missing) ctx.skip(missing);
    const expressions = dashboardExpressions();
    const rules = {
      groups: [
        {
          name: "dashboards",
          rules: expressions.map(({ expr }, i) => ({
            record: `dashboard:expression_${i}`,
            expr: withVariables(expr, { pipeline: "etl|load", tenant: ".*", interval: "5m" }),
          })),
        },
      ],
    };
    const file = join(tempDir(), "dashboards.rules.yml");
    writeFileSync(file, stringify(rules));
    const result = await promisify(execFile)(PROMTOOL, ["check", "rules", file]).then(
      ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({
        code: error.code ?? 1,
        output: `${error.stdout ?? ""}${error.stderr ?? ""}`,
      }),
    );
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain(`SUCCESS: ${expressions.length} rules found`);
  });
});
