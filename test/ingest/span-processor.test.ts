import { join } from "node:path";
import { context, type DiagLogger, DiagLogLevel, diag, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { RunTrailSpanProcessor } from "../../src/ingest/span-processor.js";
import { startFixture } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import { chatCall, traced } from "../helpers/tracing.js";

function captureDiag(): string[] {
  const lines: string[] = [];
  const record = (level: string) => (message: string) => lines.push(`${level} ${message}`);
  const logger: DiagLogger = {
    error: record("error"),
    warn: record("warn"),
    info: record("info"),
    debug: () => undefined,
    verbose: () => undefined,
  };
  diag.setLogger(logger, DiagLogLevel.INFO);
  return lines;
}

afterEach(() => diag.disable());

describe("RunTrailSpanProcessor", () => {
  it("records a run marked inside an HTTP request span, and not the request", async () => {
    const db = tempStore();
    const t = traced({ db, rootSpansAreRuns: false });
    const request = t.tracer.startSpan("POST /ingest");
    const inRequest = trace.setSpan(context.active(), request);
    const run = t.tracer.startSpan("ingest", { attributes: { "runtrail.kind": "run" } }, inRequest);
    const inRun = trace.setSpan(context.active(), run);
    t.tracer.startSpan("parse", {}, inRun).end();
    run.end();
    request.end();
    t.tracer.startSpan("GET /healthz").end();
    await t.processor.forceFlush();
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.pipeline, r.stages_executed])).toEqual([["ingest", ["parse"]]]);
    expect(runs[0]?.run_id.replaceAll("-", "")).toBe(
      run.spanContext().traceId.slice(0, 16) + run.spanContext().spanId,
    );
    await t.provider.shutdown();
  });

  it("takes runs from a predicate, seeing the attributes given at the span's creation", async () => {
    const db = tempStore();
    const t = traced({
      db,
      rootSpansAreRuns: false,
      isRun: (span) => span.attributes["job.kind"] === "pipeline",
    });
    const worker = t.tracer.startSpan("worker loop");
    const job = t.tracer.startSpan(
      "nightly-report",
      { attributes: { "job.kind": "pipeline" } },
      trace.setSpan(context.active(), worker),
    );
    job.end();
    worker.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db)).map((r) => r.pipeline)).toEqual(["nightly-report"]);
    await t.provider.shutdown();
  });

  it("gives runs the processor's tenant unless a run names its own", async () => {
    const db = tempStore();
    const t = traced({ db, tenant: "acme" });
    t.tracer.startSpan("a").end();
    t.tracer.startSpan("b", { attributes: { "runtrail.tenant.id": "globex" } }).end();
    await t.processor.forceFlush();
    expect((await storedRuns(db)).map((r) => [r.pipeline, r.tenant_id]).sort()).toEqual([
      ["a", "acme"],
      ["b", "globex"],
    ]);
    await t.provider.shutdown();
  });

  it("adds a stage that ends after its run to the run's row", async () => {
    const db = tempStore();
    const t = traced({ db });
    const run = t.tracer.startSpan("fire-and-forget");
    const stage = t.tracer.startSpan("notify", {}, trace.setSpan(context.active(), run));
    run.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]?.stages_completed).toBe(0);
    const call = chatCall(t.tracer, stage, 4, 1);
    call.end();
    stage.end();
    await t.processor.forceFlush();
    const [row] = await storedRuns(db);
    expect(row).toMatchObject({
      status: "completed",
      stages_completed: 1,
      llm_calls: 1,
      tokens: 5,
    });
    expect((await storedStages(db)).map((s) => s.name)).toEqual(["notify"]);
    await t.provider.shutdown();
  });

  it("bounds the runs open at once, counting and reporting once what it leaves out", async () => {
    const lines = captureDiag();
    const db = tempStore();
    const t = traced({ db, maxOpenRuns: 2 });
    const open = [1, 2, 3, 4].map((i) => t.tracer.startSpan(`run-${i}`));
    for (const span of open) span.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db)).map((r) => r.pipeline).sort()).toEqual(["run-1", "run-2"]);
    expect(t.processor.stats.droppedRuns).toBe(2);
    expect(lines.filter((l) => l.includes("open runs limit"))).toHaveLength(1);
    await t.provider.shutdown();
  });

  it("writes the runs of a pipeline that exits without shutting its provider down", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const pipeline = startFixture("no-shutdown.ts", [], { env: { RUNTRAIL_DB: db } });
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    const traceId = finished.stdout.trim().split(" ")[1];
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.trace_id, r.pipeline, r.status])).toEqual([
      [traceId, "forgetful", "completed"],
    ]);
  });

  it("keeps the process alive while it waits for its own store thread to let go of the store", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const reader = startFixture("flush-then-read.ts", [], { env: { RUNTRAIL_DB: db } });
    const finished = await reader.exited;
    expect(finished.code).toBe(0);
    expect(finished.stdout).toBe("runs 1\n");
  });

  it("writes rows that pile up behind a slow write in batches of maxQueuedRows, not one", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const holder = startFixture("hold-store.ts", ["--db", db, "--ms", "1500"]);
    await holder.line((l) => l.startsWith("holding "));
    const t = traced({ db, maxQueuedRows: 100, flushIntervalMs: 20, lockWaitMs: 20_000 });
    // The first write waits for the holder; the 500 runs of 4 stages that end meanwhile are
    // 2,000 stage rows: twenty writes of 100, each its own transaction.
    for (let i = 0; i < 500; i++) {
      const run = t.tracer.startSpan(`run-${i}`);
      const inRun = trace.setSpan(context.active(), run);
      for (let s = 0; s < 4; s++) t.tracer.startSpan(`stage-${s}`, {}, inRun).end();
      run.end();
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await t.processor.forceFlush();
    await holder.exited;
    const stats = t.processor.stats;
    expect(stats).toMatchObject({ failedFlushes: 0, spooledSegments: 0, droppedRows: 0 });
    expect(stats.flushes).toBeGreaterThanOrEqual(20);
    expect(stats.stageRowsWritten).toBe(2_000);
    await t.provider.shutdown();
    expect(await storedRuns(db)).toHaveLength(500);
    expect(await storedStages(db)).toHaveLength(2_000);
  });

  it("clamps values out of a column's range instead of losing the batch", async () => {
    const db = tempStore();
    const t = traced({ db });
    t.tracer.startSpan("fine").end();
    const odd = t.tracer.startSpan("odd", {
      attributes: { "runtrail.run.stages_expected": 3e9, "runtrail.run.deadline_ms": 1e300 },
    });
    const call = t.tracer.startSpan(
      "chat",
      { attributes: { "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1e19 } },
      trace.setSpan(context.active(), odd),
    );
    call.end();
    odd.end();
    await t.processor.forceFlush();
    expect(t.processor.stats.failedFlushes).toBe(0);
    const runs = await storedRuns(db);
    expect(runs.map((r) => r.pipeline).sort()).toEqual(["fine", "odd"]);
    const oddRow = runs.find((r) => r.pipeline === "odd");
    expect(oddRow).toMatchObject({ stages_expected: 2_147_483_647 });
    // A BIGINT holds up to 2^63 - 1: the token count is clamped to about that.
    expect(oddRow?.input_tokens).toBeGreaterThan(9e18);
    expect(oddRow?.input_tokens).toBeLessThanOrEqual(2 ** 63);
    // A deadline past year 9999, which no date type holds, is no deadline.
    expect(oddRow?.deadline_at).toBeNull();
    await t.provider.shutdown();
  });

  it("keeps one row for a run seen by two processors on one store", async () => {
    const db = tempStore();
    const first = new RunTrailSpanProcessor({ db });
    const second = new RunTrailSpanProcessor({ db });
    const provider = new BasicTracerProvider({ spanProcessors: [first, second] });
    provider.getTracer("twice").startSpan("seen-twice").end();
    await first.forceFlush();
    await second.forceFlush();
    expect((await storedRuns(db)).map((r) => r.pipeline)).toEqual(["seen-twice"]);
    await provider.shutdown();
  });
});
