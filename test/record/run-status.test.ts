import { type Attributes, context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type Traced, traced } from "../helpers/tracing.js";

const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);

/** Spans with explicit times, so durations are exact and nothing sleeps. */
function span(
  t: Traced,
  name: string,
  startMs: number,
  parent?: Span,
  attributes: Attributes = {},
): Span {
  const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
  return t.tracer.startSpan(name, { startTime: T0 + startMs, attributes }, ctx);
}

function fail(s: Span, error: Error): void {
  s.recordException(error);
  s.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

async function onlyRun(t: Traced, path: string): Promise<RunRow> {
  await t.processor.forceFlush();
  const runs = await storedRuns(path);
  expect(runs).toHaveLength(1);
  return runs[0] as RunRow;
}

describe("run status", () => {
  it("is completed when the run and its stages succeed", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    span(t, "load", 1, root).end(T0 + 10);
    span(t, "save", 11, root).end(T0 + 20);
    root.end(T0 + 25);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "completed",
      pipeline: "nightly",
      duration_seconds: 0.025,
      stages_executed: ["load", "save"],
      stages_failed: [],
      stages_completed: 2,
      retry_count: 0,
      error: null,
      failed_stage: null,
      service_name: "test-service",
    });
    expect(run.run_id.replaceAll("-", "")).toBe(run.trace_id);
    await t.provider.shutdown();
  });

  it("is failed with the exception's type, message and stack when the run span errors", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    const stage = span(t, "summarize", 1, root);
    const error = new TypeError("prompt exceeds model context limit");
    fail(stage, error);
    stage.end(T0 + 5);
    fail(root, error);
    root.end(T0 + 6);
    const run = await onlyRun(t, db);
    expect(run.status).toBe("failed");
    expect(run.error_type).toBe("TypeError");
    expect(run.error_message).toBe("prompt exceeds model context limit");
    expect(run.error).toBe("TypeError: prompt exceeds model context limit");
    expect(run.error_stack).toContain("run-status.test.ts");
    expect(run.failed_stage).toBe("summarize");
    expect(run.stages_failed).toEqual(["summarize"]);
    await t.provider.shutdown();
  });

  it("is failed when the run span records an exception event without an ERROR status", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    root.recordException({ name: "ValueError", message: "bad row 17" });
    root.end(T0 + 3);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "failed",
      error_type: "ValueError",
      error_message: "bad row 17",
    });
    await t.provider.shutdown();
  });

  it("is failed with the status message when the run span errors without an exception", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    root.setStatus({ code: SpanStatusCode.ERROR, message: "upstream returned 503" });
    root.end(T0 + 3);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "failed",
      error: "upstream returned 503",
      error_type: null,
    });
    await t.provider.shutdown();
  });

  it("is degraded when the run succeeds although a stage failed", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    const enrich = span(t, "enrich", 1, root);
    fail(enrich, new Error("media file not found"));
    enrich.end(T0 + 4);
    span(t, "publish", 5, root).end(T0 + 9);
    root.end(T0 + 10);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "degraded",
      failed_stage: "enrich",
      error_message: "media file not found",
      stages_failed: ["enrich"],
      stages_completed: 1,
    });
    await t.provider.shutdown();
  });

  it("is degraded and counts a retry when a failed stage runs again and succeeds", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "nightly", 0);
    const first = span(t, "translate", 1, root);
    fail(first, new Error("timeout"));
    first.end(T0 + 4);
    span(t, "translate", 5, root).end(T0 + 9);
    root.end(T0 + 10);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "degraded",
      retry_count: 1,
      stages_executed: ["translate"],
    });
    const stages = await storedStages(db);
    expect(stages.map((s) => [s.name, s.attempt, s.status])).toEqual([
      ["translate", 1, "failed"],
      ["translate", 2, "completed"],
    ]);
    await t.provider.shutdown();
  });

  it("does not take stages of the same name that all succeed for retries", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "fan-out", 0);
    for (let i = 0; i < 3; i++) span(t, "embed_chunk", 1 + i, root).end(T0 + 2 + i);
    root.end(T0 + 10);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({ status: "completed", retry_count: 0 });
    await t.provider.shutdown();
  });

  it("is rejected or cancelled when the run declares it, with the reason", async () => {
    const db = tempStore();
    const t = traced({ db });
    const rejected = span(t, "ingest", 0, undefined, {
      "runtrail.run.result": "rejected",
      "runtrail.run.result_reason": "content failed the safety check",
    });
    rejected.end(T0 + 2);
    const cancelled = span(t, "ingest", 3, undefined, { "cicd.pipeline.result": "cancellation" });
    cancelled.setStatus({ code: SpanStatusCode.ERROR, message: "stopped by operator" });
    cancelled.end(T0 + 5);
    await t.processor.forceFlush();
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.status, r.status_reason])).toEqual([
      ["rejected", "content failed the safety check"],
      ["cancelled", "stopped by operator"],
    ]);
    await t.provider.shutdown();
  });

  it("is timed_out when the run outlives its declared deadline", async () => {
    const db = tempStore();
    const t = traced({ db });
    const late = span(t, "ingest", 0, undefined, { "runtrail.run.deadline_ms": 100 });
    late.end(T0 + 250);
    const inTime = span(t, "ingest", 300, undefined, { "runtrail.run.deadline_ms": 100 });
    inTime.end(T0 + 350);
    await t.processor.forceFlush();
    const runs = await storedRuns(db);
    expect(runs.map((r) => r.status)).toEqual(["timed_out", "completed"]);
    expect(runs[0]?.status_reason).toBe("deadline of 0.100s exceeded: the run took 0.250s");
    expect(runs[0]?.deadline_at).toBe((T0 + 100) * 1000);
    await t.provider.shutdown();
  });

  it("is running, with its current stage, while the run is open", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = span(t, "ingest", 0, undefined, { "runtrail.run.stages_expected": 3 });
    span(t, "load", 1, root).end(T0 + 2);
    const open = span(t, "summarize", 3, root);
    const run = await onlyRun(t, db);
    expect(run).toMatchObject({
      status: "running",
      current_stage: "summarize",
      stages_completed: 1,
      stages_expected: 3,
      finished_at: null,
      owner_pid: process.pid,
    });
    expect(run.last_heartbeat).not.toBeNull();
    open.end(T0 + 4);
    root.end(T0 + 5);
    expect((await onlyRun(t, db)).status).toBe("completed");
    await t.provider.shutdown();
  });
});
