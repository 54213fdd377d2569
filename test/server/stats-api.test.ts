/**
 * `GET /api/stats` over runs recorded here with known durations, tokens and rows, crashed and
 * stuck runs, and the Jaeger link `GET /api/runs/:id` builds from `RUNTRAIL_JAEGER_URL`. Runs
 * are recorded through a real SDK provider and the real processor, into a real store.
 */

import { afterEach, describe, expect, it } from "vitest";
import type { GroupStatsJson } from "../../src/query/run-stats.js";
import { RUN_STATUSES } from "../../src/record/run-status.js";
import { reapCrashedRuns } from "../../src/store/reap.js";
import {
  DAY,
  finish,
  HOUR,
  MINUTE,
  type RecordedRun,
  type RunSpec,
  recorder,
  recordRun,
  runIdOfTrace,
  SECOND,
  span,
} from "../cli/_fixtures.js";
import { tempStore } from "../helpers/temp-dir.js";
import type { Traced } from "../helpers/tracing.js";
import { getJson, servedPerTest } from "./_fixtures.js";

const { serve, stop } = servedPerTest();

type Group = GroupStatsJson;

const groupsOf = (body: Record<string, unknown>) => body.groups as Group[];
const groupOf = (body: Record<string, unknown>, key: string) => {
  const group = groupsOf(body).find((g) => g.key === key);
  if (group === undefined) throw new Error(`no group ${key} in ${JSON.stringify(body)}`);
  return group;
};

/** Counts of every status, zero but for those given. */
function statusCounts(counts: Record<string, number>): Record<string, number> {
  return { ...Object.fromEntries(RUN_STATUSES.map((status) => [status, 0])), ...counts };
}

/**
 * DuckDB's `quantile_cont`: over the values sorted, the value at position (n - 1) * q, counted
 * from 0, interpolated linearly between its neighbours.
 */
function quantileCont(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const below = sorted[Math.floor(at)] as number;
  const above = sorted[Math.ceil(at)] as number;
  return below + (at - Math.floor(at)) * (above - below);
}

/** Calls, input and output tokens of the GenAI calls the specs' stages make. */
function llmOf(specs: readonly RunSpec[]) {
  const calls = specs.flatMap((s) => (s.stages ?? []).flatMap((stage) => stage.llm ?? []));
  const input = calls.reduce((n, c) => n + c.input, 0);
  const output = calls.reduce((n, c) => n + c.output, 0);
  return { calls: calls.length, input, output };
}

/**
 * A run whose rows are declared by its stages, not by the run span: the first stage that
 * declares rows in gives the run's, the last that declares rows out gives the run's.
 */
function recordRunWithStageRows(t: Traced, pipeline: string, start: number): RecordedRun {
  const root = span(t, pipeline, start);
  const stages = [
    { name: "extract", attributes: { "runtrail.rows.in": 500 } },
    { name: "transform", attributes: { "runtrail.rows.in": 480, "runtrail.rows.out": 470 } },
    { name: "load", attributes: { "runtrail.rows.out": 450 } },
  ];
  stages.forEach((stage, i) => {
    const at = start + 100 + i * SECOND;
    span(t, stage.name, at, root, stage.attributes).end(at + SECOND);
  });
  root.end(start + 6 * SECOND);
  const traceId = root.spanContext().traceId;
  return { runId: runIdOfTrace(traceId), traceId, root, spec: { pipeline, start, ms: 6000 } };
}

describe("GET /api/stats", () => {
  it("gives per pipeline the counts by status, failure rate, quantile_cont percentiles, LLM calls, tokens and rows", async () => {
    const db = tempStore();
    const now = Date.now();
    const ago = (minutes: number) => now - minutes * MINUTE;
    const rows = (rowsIn: number, rowsOut: number) => ({
      "runtrail.rows.in": rowsIn,
      "runtrail.rows.out": rowsOut,
    });
    const etl: RunSpec[] = [
      {
        pipeline: "etl",
        start: ago(300),
        ms: 3000,
        stages: [{ name: "extract", ms: 1000, llm: [{ input: 100, output: 20 }] }],
        attributes: rows(1000, 900),
      },
      { pipeline: "etl", start: ago(290), ms: 1500, stages: [{ name: "extract", ms: 1000 }] },
      {
        pipeline: "etl",
        start: ago(280),
        ms: 7000,
        stages: [
          {
            name: "extract",
            ms: 2000,
            llm: [
              { input: 100, output: 20 },
              { input: 200, output: 40 },
            ],
          },
          { name: "load", ms: 3000 },
        ],
      },
      { pipeline: "etl", start: ago(270), ms: 5000 },
      { pipeline: "etl", start: ago(260), ms: 9000 },
      { pipeline: "etl", start: ago(250), ms: 2000, attributes: rows(200, 150) },
      {
        pipeline: "etl",
        start: ago(240),
        ms: 4000,
        stages: [{ name: "extract", ms: 1000, error: new Error("disk full") }],
        error: new Error("disk full"),
      },
      {
        pipeline: "etl",
        start: ago(230),
        ms: 120_000,
        stages: [{ name: "summarize", ms: 60_000, llm: [{ input: 1000, output: 300 }] }],
        attributes: { "runtrail.run.result": "timed_out" },
      },
      {
        pipeline: "etl",
        start: ago(220),
        ms: 8000,
        stages: [
          { name: "fetch", ms: 1000 },
          {
            name: "summarize",
            ms: 2000,
            error: new Error("rate limited"),
            llm: [{ input: 300, output: 50 }],
          },
        ],
      },
    ];
    const report: RunSpec[] = [
      {
        pipeline: "report",
        start: ago(200),
        ms: 10_000,
        stages: [{ name: "write", ms: 5000, llm: [{ input: 50, output: 5 }] }],
        attributes: rows(30, 30),
      },
      {
        pipeline: "report",
        start: ago(190),
        ms: 20_000,
        attributes: { "runtrail.run.result": "rejected" },
      },
      {
        pipeline: "report",
        start: ago(180),
        ms: 40_000,
        attributes: { "runtrail.run.result": "cancelled" },
      },
    ];
    // Outside the default window of 24 hours.
    const old: RunSpec = {
      pipeline: "etl",
      start: now - 3 * DAY,
      ms: 1000,
      stages: [{ name: "extract", ms: 500, llm: [{ input: 999, output: 999 }] }],
      attributes: rows(7777, 7777),
    };
    const t = recorder(db);
    for (const spec of [...etl, ...report, old]) recordRun(t, spec);
    recordRunWithStageRows(t, "etl", ago(210));
    await finish(t);

    const s = await serve(db);
    const { status, body } = await getJson(s.app, "/api/stats");
    expect(status).toBe(200);
    expect(body).toMatchObject({ group_by: "pipeline", until: null, stuck: 0, crashed: 0 });
    expect(groupsOf(body).map((g) => g.key)).toEqual(["etl", "report"]);

    // The nine runs above and the one whose stages declare its rows: 6 s.
    const etlSeconds = [...etl.map((r) => (r.ms as number) / 1000), 6];
    expect(etlSeconds.slice().sort((a, b) => a - b)).toEqual([1.5, 2, 3, 4, 5, 6, 7, 8, 9, 120]);
    const etlLlm = llmOf(etl);
    expect(etlLlm).toEqual({ calls: 5, input: 1700, output: 430 });
    const etlGroup = groupOf(body, "etl");
    expect(etlGroup).toMatchObject({
      runs: 10,
      by_status: statusCounts({ completed: 7, failed: 1, timed_out: 1, degraded: 1 }),
      llm_calls: etlLlm.calls,
      input_tokens: etlLlm.input,
      output_tokens: etlLlm.output,
      tokens: etlLlm.input + etlLlm.output,
      // 1000 and 200 declared by runs, 500 by the first stage that declares rows in.
      rows_in: 1700,
      // 900 and 150 declared by runs, 450 by the last stage that declares rows out.
      rows_out: 1500,
      stuck: 0,
    });
    // Failed and timed out over the ten finished; degraded is not a failure.
    expect(etlGroup.failure_rate).toBeCloseTo(2 / 10, 12);
    const percentiles = (g: Group) => [g.p50_seconds, g.p95_seconds, g.p99_seconds];
    const expectedEtl = [0.5, 0.95, 0.99].map((q) => quantileCont(etlSeconds, q));
    // 5.5, 70.05 and 110.01: interpolated, not values of the runs.
    expect(new Set(expectedEtl).size).toBe(3);
    percentiles(etlGroup).forEach((p, i) => {
      expect(p).toBeCloseTo(expectedEtl[i] as number, 9);
    });

    const reportSeconds = report.map((r) => (r.ms as number) / 1000);
    const reportLlm = llmOf(report);
    const reportGroup = groupOf(body, "report");
    expect(reportGroup).toMatchObject({
      runs: 3,
      by_status: statusCounts({ completed: 1, rejected: 1, cancelled: 1 }),
      failure_rate: 0,
      llm_calls: reportLlm.calls,
      input_tokens: 50,
      output_tokens: 5,
      tokens: 55,
      rows_in: 30,
      rows_out: 30,
      stuck: 0,
    });
    const expectedReport = [0.5, 0.95, 0.99].map((q) => quantileCont(reportSeconds, q));
    expect(new Set(expectedReport).size).toBe(3);
    percentiles(reportGroup).forEach((p, i) => {
      expect(p).toBeCloseTo(expectedReport[i] as number, 9);
    });

    // A wider window takes in the old run, with its tokens and rows.
    const week = await getJson(s.app, "/api/stats?since=7d");
    expect(groupOf(week.body, "etl")).toMatchObject({
      runs: 11,
      llm_calls: etlLlm.calls + 1,
      tokens: etlLlm.input + etlLlm.output + 1998,
      rows_in: 1700 + 7777,
    });
  });

  it("counts a crashed run for its pipeline, and a running run as stuck only past stuck_after", async () => {
    const db = tempStore();
    const now = Date.now();
    const first = recorder(db);
    const crashing = recordRun(first, {
      pipeline: "nightly",
      start: now - 20 * MINUTE,
      stages: [
        { name: "fetch", ms: 1000 },
        { name: "load", ms: 1000, open: true },
      ],
    });
    recordRun(first, { pipeline: "nightly", start: now - 40 * MINUTE, ms: 5000 });
    recordRun(first, { pipeline: "hourly", start: now - 30 * MINUTE, ms: 2000 });
    await finish(first);

    const s = await serve(db);
    // As the server reaps, on another host than the pipeline's: no heartbeat for 10 minutes.
    const reaped = await s.store.write((session) =>
      reapCrashedRuns(session, {
        staleAfterMs: 2 * MINUTE,
        now: Date.now() + 10 * MINUTE,
        host: "another-host",
      }),
    );
    expect(reaped.map((r) => [r.run_id, r.pipeline])).toEqual([[crashing.runId, "nightly"]]);

    const crashed = await getJson(s.app, "/api/stats");
    expect(crashed.status).toBe(200);
    expect(crashed.body).toMatchObject({ crashed: 1, stuck: 0 });
    expect(groupOf(crashed.body, "nightly")).toMatchObject({
      runs: 2,
      by_status: statusCounts({ completed: 1, crashed: 1 }),
      // Crashed is a failure.
      failure_rate: 0.5,
    });
    expect(groupOf(crashed.body, "hourly")).toMatchObject({
      by_status: statusCounts({ completed: 1 }),
    });
    await stop(s);

    // Two runs still running, started 30 and 2 minutes ago, by this (live) process.
    const second = recorder(db);
    recordRun(second, {
      pipeline: "nightly",
      start: now - 30 * MINUTE,
      stages: [{ name: "fetch", ms: 1000, open: true }],
    });
    recordRun(second, {
      pipeline: "nightly",
      start: now - 2 * MINUTE,
      stages: [{ name: "fetch", ms: 1000, open: true }],
    });
    await finish(second);

    const again = await serve(db);
    const stats = (query: string) => getJson(again.app, `/api/stats?${query}`);
    const tenMinutes = await stats("stuck_after=10m");
    expect(tenMinutes.status).toBe(200);
    expect(tenMinutes.body).toMatchObject({ stuck: 1, crashed: 1 });
    expect(groupOf(tenMinutes.body, "nightly")).toMatchObject({
      runs: 4,
      by_status: statusCounts({ running: 2, completed: 1, crashed: 1 }),
      stuck: 1,
      failure_rate: 0.5,
    });
    expect(groupOf(tenMinutes.body, "hourly").stuck).toBe(0);
    // Older than one minute: both; than an hour: neither. Seconds without a unit, too.
    expect((await stats("stuck_after=1m")).body.stuck).toBe(2);
    expect((await stats("stuck_after=1h")).body.stuck).toBe(0);
    expect((await stats("stuck_after=600")).body.stuck).toBe(1);
    // Counted once per run when grouped by stage, too.
    const byStage = await stats("stuck_after=10m&group_by=stage");
    expect(byStage.body).toMatchObject({ group_by: "stage", stuck: 1, crashed: 1 });
  });
});

describe("GET /api/runs/:id", () => {
  const saved = process.env.RUNTRAIL_JAEGER_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.RUNTRAIL_JAEGER_URL;
    else process.env.RUNTRAIL_JAEGER_URL = saved;
  });

  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  async function recordOne(): Promise<{ db: string; run: RecordedRun }> {
    const db = tempStore();
    const t = recorder(db, { traceIds: [traceId] });
    const run = recordRun(t, { pipeline: "etl", start: Date.now() - HOUR, ms: 2000 });
    await finish(t);
    return { db, run };
  }

  it("links to the run's trace in Jaeger under RUNTRAIL_JAEGER_URL when no jaegerUrl is given", async () => {
    const { db, run } = await recordOne();
    expect(run.traceId).toBe(traceId);
    process.env.RUNTRAIL_JAEGER_URL = "https://tracing.example/jaeger//";
    const s = await serve(db);
    const { status, body } = await getJson(s.app, `/api/runs/${run.runId}`);
    expect(status).toBe(200);
    expect(body.links).toEqual({
      self: `/api/runs/${run.runId}`,
      jaeger: `https://tracing.example/jaeger/trace/${traceId}`,
    });
    // An option given wins over the variable.
    await stop(s);
    const withOption = await serve(db, { jaegerUrl: "http://jaeger.local:16686" });
    const other = await getJson(withOption.app, `/api/runs/${run.runId}`);
    expect((other.body.links as Record<string, string>).jaeger).toBe(
      `http://jaeger.local:16686/trace/${traceId}`,
    );
  });

  it("gives no Jaeger link without RUNTRAIL_JAEGER_URL or jaegerUrl", async () => {
    const { db, run } = await recordOne();
    delete process.env.RUNTRAIL_JAEGER_URL;
    const s = await serve(db);
    const { status, body } = await getJson(s.app, `/api/runs/${run.runId}`);
    expect(status).toBe(200);
    expect(body.links).toEqual({ self: `/api/runs/${run.runId}` });
  });
});
