import { beforeAll, describe, expect, it } from "vitest";
import { type TrendBucket, type TrendsOptions, trends } from "../../src/query/trends.js";
import type { RunRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import { DAY, HOUR, MINUTE, SECOND, sharedStore } from "../cli/_fixtures.js";
import { type StoredRunSpec, storedRun, writeRuns } from "../web/_fixtures.js";

/** The tests' "now": 2025-06-01 12:30 UTC, in epoch ms. */
const T0 = Date.UTC(2025, 5, 1, 12, 30);
/** 2025-06-01 12:00 UTC: the start of the current hourly and 6-hourly bucket. */
const NOON = Date.UTC(2025, 5, 1, 12);

const named: Record<string, RunRow> = {};
let db: string;

beforeAll(async () => {
  db = sharedStore();
  const specs: Record<string, Omit<StoredRunSpec, "heartbeat">> = {
    // etl (tenant acme), the current 6-hour bucket (from 12:00): three finished, one running.
    noon10: { pipeline: "etl", status: "completed", start: NOON, seconds: 10, tenant: "acme" },
    noon20: { pipeline: "etl", status: "completed", start: NOON + 5 * MINUTE, seconds: 20 },
    noon30: { pipeline: "etl", status: "failed", start: NOON + 8 * MINUTE, seconds: 30 },
    fresh: { pipeline: "etl", status: "running", start: NOON + 10 * MINUTE, tenant: "acme" },
    // etl, the bucket from 06:00: every kind of ending, and a run stuck since 09:30.
    ok4: { pipeline: "etl", status: "completed", start: NOON - 5 * HOUR, seconds: 4 },
    crashed2: {
      pipeline: "etl",
      status: "crashed",
      start: NOON - 4 * HOUR,
      seconds: 2,
      tenant: "acme",
      reason: "its process (pid 7) is gone",
    },
    timedOut8: { pipeline: "etl", status: "timed_out", start: NOON - 3 * HOUR, seconds: 8 },
    stuck: { pipeline: "etl", status: "running", start: T0 - 3 * HOUR, tenant: "acme" },
    degraded6: { pipeline: "etl", status: "degraded", start: NOON - SECOND, seconds: 6 },
    // etl, two days ago, and eight days ago (outside the 7-day window).
    cancelled: { pipeline: "etl", status: "cancelled", start: T0 - 2 * DAY, seconds: 1 },
    old: { pipeline: "etl", status: "completed", start: T0 - 8 * DAY, seconds: 100 },
    // report (tenant globex): one run now, one crashed three days ago, one stuck for ten days.
    report: {
      pipeline: "report",
      status: "completed",
      start: NOON + MINUTE,
      seconds: 3,
      tenant: "globex",
    },
    reportCrashed: {
      pipeline: "report",
      status: "crashed",
      start: T0 - 3 * DAY,
      seconds: 1,
      tenant: "globex",
      reason: "no heartbeat for 2m 0s",
    },
    reportStuck: { pipeline: "report", status: "running", start: T0 - 10 * DAY, tenant: "globex" },
  };
  // Running runs were last heard from five seconds before "now".
  for (const [name, spec] of Object.entries(specs)) {
    named[name] = storedRun({ ...spec, heartbeat: T0 - 5 * SECOND });
  }
  await writeRuns(db, Object.values(named));
});

function read(options: Partial<TrendsOptions> = {}) {
  return withStore(db, (s) => trends(s, { window: "7d", stuckAfterMs: HOUR, now: T0, ...options }));
}

function id(name: string): string {
  return (named[name] as RunRow).run_id;
}

function bucketAt(buckets: TrendBucket[], ms: number): TrendBucket | undefined {
  return buckets.find((b) => b.start === ms * 1000);
}

describe("trends", () => {
  it("buckets a 7-day window by 6 hours, UTC-aligned, with every bucket present", async () => {
    const t = await read();
    expect(t.bucketMicros).toBe(6 * HOUR * 1000);
    // The window's start, 7 days back, rounded down to its bucket: 2025-05-25 12:00.
    expect(t.since).toBe(Date.UTC(2025, 4, 25, 12) * 1000);
    expect(t.until).toBe(T0 * 1000);
    const etl = t.pipelines.find((p) => p.pipeline === "etl");
    expect(etl?.buckets).toHaveLength(7 * 4 + 1);
    expect(etl?.buckets[0]?.start).toBe(t.since);
    expect(etl?.buckets.at(-1)?.start).toBe(NOON * 1000);
    const steps = etl?.buckets
      .slice(1)
      .map((b, i) => b.start - (etl.buckets[i] as TrendBucket).start);
    expect(new Set(steps)).toEqual(new Set([6 * HOUR * 1000]));
    // Empty buckets are there with zero runs.
    expect(bucketAt(etl?.buckets ?? [], NOON - 12 * HOUR)).toEqual({
      start: (NOON - 12 * HOUR) * 1000,
      runs: 0,
      finished: 0,
      failed: 0,
      failureRate: null,
      p50Seconds: null,
      p95Seconds: null,
    });
    expect(t.pipelines.map((p) => p.pipeline)).toEqual(["etl", "report"]);
    expect(t.pipelineNames).toEqual(["etl", "report"]);
  });

  it("counts runs and failures, and takes percentiles of finished runs only", async () => {
    const etl = (await read()).pipelines.find((p) => p.pipeline === "etl");
    const buckets = etl?.buckets ?? [];
    expect(bucketAt(buckets, NOON)).toEqual({
      start: NOON * 1000,
      runs: 4,
      finished: 3,
      failed: 1,
      failureRate: 1 / 3,
      p50Seconds: 20,
      p95Seconds: expect.closeTo(29, 9), // 20 + 0.9 * (30 - 20), interpolated
    });
    // The run that started a second before noon is in the bucket before; crashed and timed out
    // runs count as failures, degraded ones do not.
    expect(bucketAt(buckets, NOON - 6 * HOUR)).toEqual({
      start: (NOON - 6 * HOUR) * 1000,
      runs: 5,
      finished: 4,
      failed: 2,
      failureRate: 0.5,
      p50Seconds: 5,
      p95Seconds: expect.closeTo(7.7, 9),
    });
    const cancelledBucket = buckets.find((b) => b.runs > 0 && b.start < (NOON - 6 * HOUR) * 1000);
    expect(cancelledBucket).toMatchObject({ runs: 1, failed: 0, failureRate: 0, p50Seconds: 1 });
    // The window as a whole: ten runs (not the one from 8 days ago), eight finished.
    expect(etl?.totals).toMatchObject({ runs: 10, finished: 8, failed: 3, failureRate: 3 / 8 });
    expect(etl?.totals.p50Seconds).toBeCloseTo(7, 6);
    expect(buckets.reduce((sum, b) => sum + b.runs, 0)).toBe(10);
  });

  it("buckets by the hour over 24 hours and by the day over 30 days", async () => {
    const day = await read({ window: "24h" });
    const etl = day.pipelines.find((p) => p.pipeline === "etl");
    expect(day.since).toBe(Date.UTC(2025, 4, 31, 12) * 1000);
    expect(etl?.buckets).toHaveLength(25);
    expect(bucketAt(etl?.buckets ?? [], NOON)).toMatchObject({ runs: 4, failed: 1 });
    expect(bucketAt(etl?.buckets ?? [], NOON - HOUR)).toMatchObject({ runs: 1, failed: 0 });
    expect(bucketAt(etl?.buckets ?? [], NOON - 3 * HOUR)).toMatchObject({ runs: 2, failed: 1 });

    const month = await read({ window: "30d" });
    const etlMonth = month.pipelines.find((p) => p.pipeline === "etl");
    expect(month.since).toBe(Date.UTC(2025, 4, 2) * 1000);
    expect(etlMonth?.buckets).toHaveLength(31);
    expect(bucketAt(etlMonth?.buckets ?? [], Date.UTC(2025, 5, 1))).toMatchObject({
      runs: 9,
      finished: 7,
      failed: 3,
    });
    expect(bucketAt(etlMonth?.buckets ?? [], Date.UTC(2025, 4, 24))).toMatchObject({
      runs: 1,
      p50Seconds: 100,
      p95Seconds: 100,
    });
    expect(etlMonth?.totals.runs).toBe(11);
  });

  it("lists stuck runs at any age and crashed runs in the window, newest first", async () => {
    const t = await read();
    expect(t.stuck.map((r) => r.runId)).toEqual([id("stuck"), id("reportStuck")]);
    expect(t.stuckTotal).toBe(2);
    expect(t.stuck[0]).toEqual({
      runId: id("stuck"),
      pipeline: "etl",
      startedAt: (T0 - 3 * HOUR) * 1000,
      lastHeartbeat: (T0 - 5 * SECOND) * 1000,
      currentStage: null,
    });
    expect(t.crashed.map((r) => r.runId)).toEqual([id("crashed2"), id("reportCrashed")]);
    expect(t.crashedTotal).toBe(2);
    expect(t.crashed[0]).toEqual({
      runId: id("crashed2"),
      pipeline: "etl",
      startedAt: (NOON - 4 * HOUR) * 1000,
      lastHeartbeat: (NOON - 4 * HOUR + 2 * SECOND) * 1000,
      statusReason: "its process (pid 7) is gone",
    });
    // A day's window leaves out the run that crashed three days ago, not the stuck ones.
    const day = await read({ window: "24h" });
    expect(day.crashed.map((r) => r.runId)).toEqual([id("crashed2")]);
    expect(day.stuck).toHaveLength(2);
    // A run is stuck only once it has been running longer than the limit.
    const patient = await read({ stuckAfterMs: 5 * HOUR });
    expect(patient.stuck.map((r) => r.runId)).toEqual([id("reportStuck")]);
    const limited = await read({ limit: 1 });
    expect(limited.stuck).toHaveLength(1);
    expect(limited.stuckTotal).toBe(2);
    expect(limited.crashed).toHaveLength(1);
    expect(limited.crashedTotal).toBe(2);
  });

  it("keeps to a tenant's runs, and to one pipeline when asked", async () => {
    const acme = await read({ tenant: "acme" });
    expect(acme.pipelineNames).toEqual(["etl"]);
    expect(acme.pipelines.map((p) => p.pipeline)).toEqual(["etl"]);
    expect(acme.pipelines[0]?.totals).toMatchObject({ runs: 4, finished: 2, failed: 1 });
    expect(bucketAt(acme.pipelines[0]?.buckets ?? [], NOON)).toMatchObject({ runs: 2 });
    expect(acme.stuck.map((r) => r.runId)).toEqual([id("stuck")]);
    expect(acme.crashed.map((r) => r.runId)).toEqual([id("crashed2")]);

    const globex = await read({ tenant: "globex" });
    expect(globex.pipelines.map((p) => p.pipeline)).toEqual(["report"]);
    expect(globex.stuck.map((r) => r.runId)).toEqual([id("reportStuck")]);
    expect(globex.crashed.map((r) => r.runId)).toEqual([id("reportCrashed")]);

    const nobody = await read({ tenant: "initech" });
    expect(nobody).toMatchObject({ pipelineNames: [], pipelines: [], stuck: [], crashed: [] });
    expect(nobody.stuckTotal).toBe(0);

    const report = await read({ pipeline: "report" });
    expect(report.pipelineNames).toEqual(["etl", "report"]);
    expect(report.pipelines.map((p) => p.pipeline)).toEqual(["report"]);
    expect(report.pipelines[0]?.totals).toMatchObject({ runs: 2, failed: 1, p50Seconds: 2 });
    expect(report.stuck.map((r) => r.runId)).toEqual([id("reportStuck")]);
    expect(report.crashed.map((r) => r.runId)).toEqual([id("reportCrashed")]);
  });
});
