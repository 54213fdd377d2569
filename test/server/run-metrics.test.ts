import { randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import type { RunStatus, StageStatus } from "../../src/record/run-status.js";
import { prefersOpenMetrics, RunMetrics } from "../../src/server/run-metrics.js";
import { withStore } from "../../src/store/open-store.js";
import type { StoreSession } from "../../src/store/store-session.js";
import { writeRows } from "../../src/store/write-rows.js";
import { promtool, promtoolMissing } from "../helpers/promtool.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** The tests' "now" when the metrics are created, in epoch ms. */
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
/** What Prometheus sends when it scrapes. */
const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

// --- rows ----------------------------------------------------------------------------------

interface RunSpec {
  pipeline?: string;
  status?: RunStatus;
  tenant?: string | null;
  /** Epoch ms. */
  start: number;
  /** Milliseconds; none for a running run. */
  ms?: number;
  llmCalls?: number;
  inputTokens?: number;
  outputTokens?: number;
  rowsIn?: number | null;
  rowsOut?: number | null;
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/** A run row with every field; times in epoch microseconds, as the store takes them. */
function runRow(spec: RunSpec): RunRow {
  const finished = spec.ms !== undefined;
  const input = spec.inputTokens ?? 0;
  const output = spec.outputTokens ?? 0;
  return blankRun({
    run_id: randomUUID(),
    trace_id: hex(16),
    span_id: hex(8),
    tenant_id: spec.tenant ?? null,
    pipeline: spec.pipeline ?? "etl",
    service_name: "svc",
    status: spec.status ?? (finished ? "completed" : "running"),
    started_at: spec.start * 1000,
    finished_at: finished ? (spec.start + (spec.ms ?? 0)) * 1000 : null,
    duration_seconds: finished ? (spec.ms ?? 0) / 1000 : null,
    rows_in: spec.rowsIn ?? null,
    rows_out: spec.rowsOut ?? null,
    llm_calls: spec.llmCalls ?? 0,
    tokens: input + output,
    input_tokens: input,
    output_tokens: output,
    owner_host: "host",
    owner_pid: 1,
    owner_started_at: spec.start * 1000,
    last_heartbeat: spec.start * 1000,
  });
}

/** The same run, finished `ms` after it started. */
function finished(run: RunRow, ms: number, status: RunStatus = "completed"): RunRow {
  const finishedAt = run.started_at + ms * 1000;
  return {
    ...run,
    status,
    finished_at: finishedAt,
    duration_seconds: ms / 1000,
    last_heartbeat: finishedAt,
  };
}

function stageRow(
  run: RunRow,
  name: string,
  seq: number,
  start: number,
  ms: number | undefined,
  status?: StageStatus,
): StageRow {
  return blankStage({
    run_id: run.run_id,
    span_id: hex(8),
    parent_span_id: run.span_id,
    name,
    seq,
    status: status ?? (ms === undefined ? "running" : "completed"),
    started_at: start * 1000,
    finished_at: ms === undefined ? null : (start + ms) * 1000,
    duration_seconds: ms === undefined ? null : ms / 1000,
  });
}

/** Appends new runs and stages. */
function add(session: StoreSession, newRuns: RunRow[], stages: StageRow[] = []): Promise<void> {
  return writeRows(session, { runs: [], newRuns, stages });
}

/** Rewrites runs that are stored already (a running run that finished). */
function update(session: StoreSession, runs: RunRow[], stages: StageRow[] = []): Promise<void> {
  return writeRows(session, { runs, stages: [], stagesToMerge: stages });
}

/** A clock the test moves by hand. */
function clock(start = T0): { now: () => number; set: (ms: number) => void } {
  let at = start;
  return {
    now: () => at,
    set: (ms) => {
      at = ms;
    },
  };
}

function metricsAt(now: () => number, extra: { lookbackMs?: number } = {}): RunMetrics {
  return new RunMetrics({ stuckAfterMs: HOUR, now, processMetrics: false, ...extra });
}

// --- a strict parser of the text format 0.0.4 ------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`not a number: ${JSON.stringify(text)} in ${JSON.stringify(line)}`);
  }
  return Number(text);
}

/** `{a="x",b="y"}` from `at` (the `{`): the labels and the index after the `}`. */
function parseLabels(line: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  const fail = (why: string) => new Error(`${why} at ${i} in ${JSON.stringify(line)}`);
  if (line[i] === "}") return { labels, end: i + 1 };
  for (;;) {
    const eq = line.indexOf("=", i);
    if (eq < 0) throw fail("label without =");
    const name = line.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw fail(`bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw fail(`repeated label ${name}`);
    if (line[eq + 1] !== '"') throw fail("label value without quotes");
    let value = "";
    i = eq + 2;
    for (;;) {
      const c = line[i];
      if (c === undefined) throw fail("unterminated label value");
      if (c === '"') break;
      if (c === "\\") {
        const escaped = line[i + 1];
        if (escaped === "\\") value += "\\";
        else if (escaped === '"') value += '"';
        else if (escaped === "n") value += "\n";
        else throw fail("bad escape");
        i += 2;
      } else {
        value += c;
        i += 1;
      }
    }
    labels[name] = value;
    i += 1;
    if (line[i] === "}") return { labels, end: i + 1 };
    if (line[i] !== ",") throw fail("expected , or }");
    i += 1;
  }
}

/** The family a sample belongs to: its own name, or that of the histogram it is a line of. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const type = types.get(base);
    if (type === "histogram" || (type === "summary" && suffix !== "_bucket")) return base;
  }
  return undefined;
}

/**
 * Parses Prometheus text format 0.0.4 strictly: only `# HELP` and `# TYPE` comments, each once
 * per family and before its samples; every sample `name{labels} value` of a declared family,
 * with nothing after the value (so no exemplars), and no series twice.
 */
function parsePrometheusText(body: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const sampled = new Set<string>();
  if (!body.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  for (const line of body.slice(0, -1).split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!match) throw new Error(`unexpected comment ${JSON.stringify(line)}`);
      const [, kind, name = "", rest = ""] = match;
      if (!NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      if (sampled.has(name)) throw new Error(`${kind} of ${name} after its samples`);
      const map = kind === "HELP" ? help : types;
      if (map.has(name)) throw new Error(`second ${kind} of ${name}`);
      if (kind === "TYPE" && !TYPES.has(rest)) throw new Error(`bad type in ${line}`);
      map.set(name, rest);
      continue;
    }
    const nameEnd = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0].length ?? 0;
    if (nameEnd === 0) throw new Error(`no metric name in ${JSON.stringify(line)}`);
    const name = line.slice(0, nameEnd);
    let labels: Record<string, string> = {};
    let rest = line.slice(nameEnd);
    if (rest.startsWith("{")) {
      const parsed = parseLabels(line, nameEnd);
      labels = parsed.labels;
      rest = line.slice(parsed.end);
    }
    const value = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!value) throw new Error(`bad sample ${JSON.stringify(line)}`);
    const family = familyOf(name, types);
    if (family === undefined) throw new Error(`no # TYPE for the sample ${JSON.stringify(line)}`);
    if (!help.has(family)) throw new Error(`no # HELP for the family ${family}`);
    sampled.add(family);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`series twice: ${line}`);
    series.add(key);
    samples.push({ name, labels, value: parseValue(value[1] ?? "", line) });
  }
  return { types, help, samples };
}

/** The value of the sample with exactly these labels, or undefined. */
function sampleValue(
  parsed: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return parsed.samples.find(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want,
  )?.value;
}

function samplesOf(parsed: Exposition, name: string): Sample[] {
  return parsed.samples.filter((s) => s.name === name);
}

async function scrape(metrics: RunMetrics): Promise<Exposition> {
  const { contentType, body } = await metrics.render(undefined);
  expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(body);
}

async function scrapeOpenMetrics(metrics: RunMetrics): Promise<string> {
  const { contentType, body } = await metrics.render(PROMETHEUS_ACCEPT);
  expect(contentType).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
  // OpenMetrics ends with # EOF and has no empty lines.
  expect(body.endsWith("\n# EOF\n")).toBe(true);
  expect(body.slice(0, -1).split("\n")).not.toContain("");
  return body;
}

// --- tests ---------------------------------------------------------------------------------

describe("run metrics from the store", () => {
  it("does not count runs that finished before it was created, but its gauges see running ones", async () => {
    await withStore(tempStore(), async (session) => {
      await add(session, [
        runRow({ start: T0 - 10 * MINUTE, ms: 5 * SECOND }),
        runRow({ start: T0 - 5 * MINUTE, ms: 30 * SECOND, status: "failed", llmCalls: 3 }),
        runRow({ start: T0 - 3 * HOUR }),
        runRow({ start: T0 - 2 * MINUTE }),
        runRow({ start: T0 - MINUTE, pipeline: "chat" }),
      ]);
      const metrics = metricsAt(() => T0);
      await metrics.refresh(session);
      const parsed = await scrape(metrics);
      expect(samplesOf(parsed, "runtrail_runs_total")).toEqual([]);
      expect(samplesOf(parsed, "runtrail_run_duration_seconds_count")).toEqual([]);
      expect(samplesOf(parsed, "runtrail_llm_calls_total")).toEqual([]);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "etl" })).toBe(2);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "chat" })).toBe(1);
      expect(sampleValue(parsed, "runtrail_stuck_runs")).toBe(1);
    });
  });

  it("counts a run that finishes after it was created once, however often it refreshes", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const run = runRow({ start: T0 - MINUTE });
      await add(session, [run]);
      const metrics = metricsAt(time.now);
      await metrics.refresh(session);

      time.set(T0 + 30 * SECOND);
      const done = {
        ...finished(run, 90 * SECOND),
        llm_calls: 4,
        input_tokens: 100,
        output_tokens: 20,
        tokens: 120,
        rows_in: 1000,
        rows_out: 990,
      };
      await update(session, [done]);
      for (let i = 0; i < 3; i++) {
        await metrics.refresh(session);
        time.set(time.now() + 5 * SECOND);
      }
      const parsed = await scrape(metrics);
      expect(samplesOf(parsed, "runtrail_runs_total")).toEqual([
        {
          name: "runtrail_runs_total",
          labels: { pipeline: "etl", status: "completed", tenant: "" },
          value: 1,
        },
      ]);
      const etl = (name: string, labels: Record<string, string> = {}) =>
        sampleValue(parsed, name, { pipeline: "etl", ...labels });
      expect(etl("runtrail_llm_calls_total")).toBe(4);
      expect(etl("runtrail_tokens_total", { type: "input" })).toBe(100);
      expect(etl("runtrail_tokens_total", { type: "output" })).toBe(20);
      expect(etl("runtrail_tokens_total", { type: "total" })).toBe(120);
      expect(etl("runtrail_rows_total", { direction: "in" })).toBe(1000);
      expect(etl("runtrail_rows_total", { direction: "out" })).toBe(990);
      expect(etl("runtrail_run_duration_seconds_count", { status: "completed" })).toBe(1);
      expect(etl("runtrail_run_duration_seconds_sum", { status: "completed" })).toBe(90);
      expect(etl("runtrail_runs_running")).toBe(0);
    });
  });

  it("counts runs that finished after it was created, even when its first refresh comes later", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const metrics = metricsAt(time.now);
      time.set(T0 + MINUTE);
      await add(session, [
        runRow({ start: T0 - MINUTE, ms: 30 * SECOND }),
        runRow({ start: T0 - MINUTE, ms: MINUTE + 30 * SECOND, status: "failed" }),
      ]);
      await metrics.refresh(session);
      const parsed = await scrape(metrics);
      expect(samplesOf(parsed, "runtrail_runs_total").map((s) => s.labels.status)).toEqual([
        "failed",
      ]);
    });
  });

  it("counts a run that finished before it was created if the run reaches the store later", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const metrics = metricsAt(time.now);
      await metrics.refresh(session);
      // Another process's spool, ingested a minute after the run ended.
      time.set(T0 + MINUTE);
      await add(session, [runRow({ start: T0 - 2 * MINUTE, ms: MINUTE + 30 * SECOND })]);
      await metrics.refresh(session);
      const parsed = await scrape(metrics);
      expect(
        sampleValue(parsed, "runtrail_runs_total", {
          pipeline: "etl",
          status: "completed",
          tenant: "",
        }),
      ).toBe(1);
    });
  });

  it("labels runs by pipeline, status and tenant, and counts crashed runs", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const metrics = metricsAt(time.now);
      await metrics.refresh(session);
      time.set(T0 + 10 * MINUTE);
      const at = T0 + MINUTE;
      await add(session, [
        runRow({ start: at, ms: SECOND }),
        runRow({ start: at, ms: SECOND, tenant: "acme" }),
        runRow({ start: at, ms: SECOND, tenant: "acme" }),
        runRow({ start: at, ms: SECOND, status: "failed", tenant: "acme" }),
        runRow({ start: at, ms: SECOND, pipeline: "chat", status: "degraded" }),
        runRow({ start: at, ms: SECOND, pipeline: "chat", status: "crashed" }),
        runRow({ start: at, ms: SECOND, pipeline: "chat", status: "crashed", tenant: "acme" }),
        runRow({ start: at, ms: SECOND, pipeline: "chat", status: "timed_out" }),
      ]);
      await metrics.refresh(session);
      const parsed = await scrape(metrics);
      const counts = samplesOf(parsed, "runtrail_runs_total")
        .map((s) => `${s.labels.pipeline} ${s.labels.status} ${s.labels.tenant || "-"} ${s.value}`)
        .sort();
      expect(counts).toEqual([
        "chat crashed - 1",
        "chat crashed acme 1",
        "chat degraded - 1",
        "chat timed_out - 1",
        "etl completed - 1",
        "etl completed acme 2",
        "etl failed acme 1",
      ]);
      expect(samplesOf(parsed, "runtrail_runs_crashed_total")).toEqual([
        { name: "runtrail_runs_crashed_total", labels: { pipeline: "chat" }, value: 2 },
      ]);
      // Labels carry no run ids or trace ids.
      for (const sample of parsed.samples) {
        for (const name of Object.keys(sample.labels)) {
          expect(["run_id", "trace_id", "span_id"]).not.toContain(name);
        }
      }
    });
  });

  it("fills the duration histograms' buckets, with trace id exemplars only in OpenMetrics", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const metrics = metricsAt(time.now, { lookbackMs: 4 * HOUR });
      await metrics.refresh(session);
      time.set(T0 + 3 * HOUR);
      const at = T0 + MINUTE;
      const runs = [
        runRow({ start: at, ms: 300 }),
        runRow({ start: at, ms: 400 }),
        runRow({ start: at, ms: 4 * SECOND }),
        runRow({ start: at, ms: 90 * MINUTE }),
      ];
      const [first, , , long] = runs;
      if (first === undefined || long === undefined) throw new Error("no runs");
      const stages = [
        stageRow(first, "extract", 1, at, 100),
        stageRow(first, "load", 2, at + 100, 200, "failed"),
        stageRow(long, "extract", 1, at, 20 * MINUTE),
        stageRow(long, "load", 2, at + 20 * MINUTE, undefined),
      ];
      await add(session, runs, stages);
      await metrics.refresh(session);
      await metrics.refresh(session);

      const parsed = await scrape(metrics);
      const bucket = (le: string) =>
        sampleValue(parsed, "runtrail_run_duration_seconds_bucket", {
          pipeline: "etl",
          status: "completed",
          le,
        });
      expect(bucket("0.25")).toBe(0);
      expect(bucket("0.5")).toBe(2);
      expect(bucket("2.5")).toBe(2);
      expect(bucket("5")).toBe(3);
      expect(bucket("3600")).toBe(3);
      expect(bucket("7200")).toBe(4);
      expect(bucket("+Inf")).toBe(4);
      const labels = { pipeline: "etl", status: "completed" };
      expect(sampleValue(parsed, "runtrail_run_duration_seconds_count", labels)).toBe(4);
      expect(sampleValue(parsed, "runtrail_run_duration_seconds_sum", labels)).toBeCloseTo(5404.7);

      const stage = (name: string, status: string, le: string) =>
        sampleValue(parsed, "runtrail_stage_duration_seconds_bucket", {
          pipeline: "etl",
          stage: name,
          status,
          le,
        });
      expect(stage("extract", "completed", "0.1")).toBe(1);
      expect(stage("extract", "completed", "1800")).toBe(2);
      expect(stage("load", "failed", "0.1")).toBe(0);
      expect(stage("load", "failed", "0.25")).toBe(1);
      // The running stage is not counted yet.
      expect(samplesOf(parsed, "runtrail_stage_duration_seconds_count")).toHaveLength(2);

      const { body: text } = await metrics.render(undefined);
      expect(text).not.toContain("# {");
      expect(text).not.toContain("trace_id");

      const om = await scrapeOpenMetrics(metrics);
      const runExemplar = (run: RunRow, le: string, count: number, seconds: number) =>
        new RegExp(
          `^runtrail_run_duration_seconds_bucket\\{le="${le}",pipeline="etl",status="completed"\\} ${count} # \\{trace_id="${run.trace_id}"\\} ${seconds} \\d+(\\.\\d+)?$`,
          "m",
        );
      expect(om).toMatch(runExemplar(long, "7200", 4, 5400));
      expect(om).toMatch(
        new RegExp(
          `^runtrail_stage_duration_seconds_bucket\\{le="0.25",pipeline="etl",stage="load",status="failed"\\} 1 # \\{trace_id="${first.trace_id}"\\} 0.2 `,
          "m",
        ),
      );
      // Counters are named as OpenMetrics has them: the family without _total, samples with it.
      expect(om).toContain("# TYPE runtrail_runs counter\n");
      expect(om).toMatch(/^runtrail_runs_total\{pipeline="etl",status="completed",tenant=""\} 4$/m);

      // Rendering OpenMetrics leaves the text format's counter names as they were.
      const again = await scrape(metrics);
      expect(again.types.get("runtrail_runs_total")).toBe("counter");
      expect(again.types.has("runtrail_runs")).toBe(false);
      expect(
        sampleValue(again, "runtrail_runs_total", {
          pipeline: "etl",
          status: "completed",
          tenant: "",
        }),
      ).toBe(4);
    });
  });

  it("brings the running and stuck gauges down to 0 when the runs finish", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const old = runRow({ start: T0 - 2 * HOUR });
      const young = runRow({ start: T0 - MINUTE, pipeline: "chat" });
      await add(session, [old, young]);
      const metrics = metricsAt(time.now);
      await metrics.refresh(session);
      let parsed = await scrape(metrics);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "etl" })).toBe(1);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "chat" })).toBe(1);
      expect(sampleValue(parsed, "runtrail_stuck_runs")).toBe(1);

      // An hour on, the young run is stuck too.
      time.set(T0 + HOUR);
      await metrics.refresh(session);
      parsed = await scrape(metrics);
      expect(sampleValue(parsed, "runtrail_stuck_runs")).toBe(2);

      // The reaper ends a crashed run at its last sign of life, here five minutes ago.
      await update(session, [finished(old, 2 * HOUR + 55 * MINUTE, "crashed")]);
      await metrics.refresh(session);
      parsed = await scrape(metrics);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "etl" })).toBe(0);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "chat" })).toBe(1);
      expect(sampleValue(parsed, "runtrail_stuck_runs")).toBe(1);
      expect(sampleValue(parsed, "runtrail_runs_crashed_total", { pipeline: "etl" })).toBe(1);

      await update(session, [finished(young, HOUR + MINUTE)]);
      await metrics.refresh(session);
      parsed = await scrape(metrics);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "etl" })).toBe(0);
      expect(sampleValue(parsed, "runtrail_runs_running", { pipeline: "chat" })).toBe(0);
      expect(sampleValue(parsed, "runtrail_stuck_runs")).toBe(0);
    });
  });

  it("counts each run once under concurrent refreshes, and forgets runs past the lookback", async () => {
    await withStore(tempStore(), async (session) => {
      const time = clock();
      const metrics = metricsAt(time.now, { lookbackMs: 10 * MINUTE });
      await metrics.refresh(session);
      time.set(T0 + MINUTE);
      await add(session, [runRow({ start: T0, ms: 30 * SECOND })]);
      await Promise.all([
        metrics.refresh(session),
        metrics.refresh(session),
        metrics.refresh(session),
      ]);
      const count = async () =>
        sampleValue(await scrape(metrics), "runtrail_runs_total", {
          pipeline: "etl",
          status: "completed",
          tenant: "",
        });
      expect(await count()).toBe(1);
      // Past the lookback the run is neither read nor remembered, and not counted again.
      time.set(T0 + HOUR);
      await metrics.refresh(session);
      await metrics.refresh(session);
      expect(await count()).toBe(1);
      // A row that reaches the store later than the lookback after it finished is not counted.
      await add(session, [runRow({ start: T0 + 10 * MINUTE, ms: SECOND })]);
      await metrics.refresh(session);
      expect(await count()).toBe(1);
    });
  });

  it("records a failed refresh and rethrows it", async () => {
    const metrics = metricsAt(() => T0);
    const session = {
      all: () => Promise.reject(new Error("store gone")),
    } as unknown as StoreSession;
    await expect(metrics.refresh(session)).rejects.toThrow("store gone");
    const parsed = await scrape(metrics);
    expect(sampleValue(parsed, "runtrail_metrics_refresh_failures_total")).toBe(1);
  });
});

describe("server metrics", () => {
  it("counts requests and ingests", async () => {
    const metrics = metricsAt(() => T0);
    metrics.observeRequest("GET", "/api/runs/:id", 200, 0.003);
    metrics.observeRequest("get", "/api/runs/:id", 200, 0.2);
    metrics.observeRequest("GET", "/api/runs/:id", 404, 0.001);
    metrics.observeRequest("BREW", "/metrics", 405, 0.001);
    metrics.observeIngest("spool", 120, 0.05, true);
    metrics.observeIngest("spool", 30, 0.02, true);
    metrics.observeIngest("otlp", 7, 0.5, false);
    const parsed = await scrape(metrics);
    const route = "/api/runs/:id";
    expect(
      sampleValue(parsed, "runtrail_http_requests_total", { method: "GET", route, status: "200" }),
    ).toBe(2);
    expect(
      sampleValue(parsed, "runtrail_http_requests_total", { method: "GET", route, status: "404" }),
    ).toBe(1);
    expect(
      sampleValue(parsed, "runtrail_http_requests_total", {
        method: "_OTHER",
        route: "/metrics",
        status: "405",
      }),
    ).toBe(1);
    expect(
      sampleValue(parsed, "runtrail_http_request_duration_seconds_count", { method: "GET", route }),
    ).toBe(3);
    expect(
      sampleValue(parsed, "runtrail_http_request_duration_seconds_bucket", {
        method: "GET",
        route,
        le: "0.005",
      }),
    ).toBe(2);
    expect(sampleValue(parsed, "runtrail_ingest_rows_total", { source: "spool" })).toBe(150);
    expect(sampleValue(parsed, "runtrail_ingest_rows_total", { source: "otlp" })).toBe(0);
    expect(
      sampleValue(parsed, "runtrail_ingest_batches_total", { source: "spool", result: "ok" }),
    ).toBe(2);
    expect(
      sampleValue(parsed, "runtrail_ingest_batches_total", { source: "otlp", result: "error" }),
    ).toBe(1);
    expect(sampleValue(parsed, "runtrail_ingest_duration_seconds_count", { source: "otlp" })).toBe(
      1,
    );
    expect(parsed.types.get("runtrail_metrics_refresh_duration_seconds")).toBe("gauge");
  });

  it("keeps each instance's metrics to itself", async () => {
    const a = metricsAt(() => T0);
    const b = metricsAt(() => T0);
    a.observeRequest("GET", "/a", 200, 0.01);
    expect(
      sampleValue(await scrape(a), "runtrail_http_requests_total", {
        method: "GET",
        route: "/a",
        status: "200",
      }),
    ).toBe(1);
    expect(samplesOf(await scrape(b), "runtrail_http_requests_total")).toEqual([]);
  });

  it("answers OpenMetrics to clients that ask for it, the text format to the others", () => {
    expect(prefersOpenMetrics(undefined)).toBe(false);
    expect(prefersOpenMetrics("")).toBe(false);
    expect(prefersOpenMetrics("*/*")).toBe(false);
    expect(prefersOpenMetrics("text/plain;version=0.0.4")).toBe(false);
    expect(prefersOpenMetrics(PROMETHEUS_ACCEPT)).toBe(true);
    expect(prefersOpenMetrics("application/openmetrics-text; version=1.0.0")).toBe(true);
    expect(prefersOpenMetrics("application/openmetrics-text;q=0")).toBe(false);
    expect(prefersOpenMetrics("text/plain, application/openmetrics-text;q=0.5")).toBe(false);
  });
});

describe("the exposition", () => {
  /** Every kind of metric with samples, process metrics included. */
  async function populated(): Promise<RunMetrics> {
    const time = clock();
    const metrics = new RunMetrics({ stuckAfterMs: HOUR, now: time.now });
    await withStore(tempStore(), async (session) => {
      await metrics.refresh(session);
      time.set(T0 + 10 * MINUTE);
      const run = runRow({ start: T0, ms: 5 * SECOND, tenant: 'a "quoted" \\ tenant\nx' });
      await add(
        session,
        [
          run,
          runRow({ start: T0 - 2 * HOUR }),
          runRow({ start: T0, ms: SECOND, status: "crashed" }),
        ],
        [stageRow(run, "extract", 1, T0, SECOND)],
      );
      await metrics.refresh(session);
    });
    metrics.observeRequest("GET", "/api/runs/:id", 200, 0.01);
    metrics.observeIngest("otlp", 10, 0.1, true);
    return metrics;
  }

  it("is valid text format 0.0.4 with process metrics, escapes included", async () => {
    const metrics = await populated();
    const parsed = await scrape(metrics);
    expect(parsed.types.get("runtrail_process_cpu_seconds_total")).toBe("counter");
    expect(parsed.types.get("runtrail_process_resident_memory_bytes")).toBe("gauge");
    expect(
      sampleValue(parsed, "runtrail_runs_total", {
        pipeline: "etl",
        status: "completed",
        tenant: 'a "quoted" \\ tenant\nx',
      }),
    ).toBe(1);
    // Every declared family has HELP, and non-histograms have samples of their own name only.
    for (const [name, type] of parsed.types) {
      expect(parsed.help.has(name), name).toBe(true);
      if (type === "counter") expect(name.endsWith("_total"), name).toBe(true);
    }
  });

  it("is checked here by a parser that refuses what the text format does not allow", () => {
    const head = "# HELP a_total A.\n# TYPE a_total counter\n";
    expect(() => parsePrometheusText(`${head}a_total 1\n`)).not.toThrow();
    for (const bad of [
      `${head}a_total 1 # {trace_id="x"} 1 1\n`,
      `${head}b_total 1\n`,
      "# TYPE a_total counter\na_total 1\n",
      `${head}a_total{x="1} 1\n`,
      `${head}a_total{x="1"} one\n`,
      `${head}a_total 1\na_total 2\n`,
      `${head}a_total 1`,
    ]) {
      expect(() => parsePrometheusText(bad), bad).toThrow();
    }
  });

  it("passes promtool check metrics", async (ctx) => {
    const missing = promtoolMissing();
    if (missing) ctx.skip(missing);
    const metrics = await populated();
    const { body } = await metrics.render(undefined);
    const { code, output } = await promtool(body);
    // promtool exits 1 when it cannot parse the input and 3 when its linter finds a problem.
    expect({ code, errors: output.split("\n").filter((line) => /error/i.test(line)) }).toEqual({
      code: 0,
      errors: [],
    });
    expect(output).toBe("");
  });
});
