import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { context, type Span, trace } from "@opentelemetry/api";
import { describe, expect, it, onTestFinished } from "vitest";
import { spoolDirsOf } from "../../src/store/store-path.js";
import { eventually } from "../helpers/eventually.js";
import { type Started, startFixture } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { chatCall, type Traced, traced } from "../helpers/tracing.js";

/** Long enough that a write waiting for the holder fails well after the test saw the one before. */
const LOCK_WAIT_MS = 1_500;

/**
 * Makes both spool folders of a store unusable, even for root: a plain file stands where each
 * folder should be. Rows that the store does not take can then only be kept in memory.
 */
function breakSpool(db: string): void {
  const [primary, fallback] = spoolDirsOf(db);
  writeFileSync(primary.path, "not a folder\n");
  mkdirSync(dirname(fallback.path), { recursive: true, mode: 0o700 });
  writeFileSync(fallback.path, "not a folder\n");
  // The fallback lives in the shared temp folder, outside the test's own.
  onTestFinished(() => rmSync(fallback.path, { force: true }));
}

/** Another process holding the store, so that every write waits and fails. */
async function holdStore(db: string): Promise<Started> {
  const holder = startFixture("hold-store.ts", ["--db", db, "--ms", "60000"]);
  await holder.line((l) => l.startsWith("holding "));
  onTestFinished(() => {
    holder.child.kill("SIGTERM");
  });
  return holder;
}

async function release(holder: Started): Promise<void> {
  holder.child.kill("SIGTERM");
  await holder.exited;
}

function writerOn(db: string, maxQueuedRows: number): Traced {
  // Timer flushes and heartbeats are kept out of the way: the test says when a flush happens.
  return traced({
    db,
    maxQueuedRows,
    flushIntervalMs: 60_000,
    heartbeatIntervalMs: 60_000,
    lockWaitMs: LOCK_WAIT_MS,
  });
}

function stageOf(t: Traced, run: Span, name: string): Span {
  return t.tracer.startSpan(name, {}, trace.setSpan(context.active(), run));
}

/** A processor on a store held by another process, with no spool to fall back on. */
async function neitherWritable(maxQueuedRows: number) {
  const db = tempStore();
  breakSpool(db);
  const holder = await holdStore(db);
  return { db, holder, t: writerOn(db, maxQueuedRows) };
}

describe("StoreWriter, when neither the store nor the spool can be written", () => {
  it("keeps the rows in memory and writes them all, the latest of each run, once the store can be written", async () => {
    const { db, holder, t } = await neitherWritable(5);
    const first = t.tracer.startSpan("first");
    const second = t.tracer.startSpan("second");
    stageOf(t, first, "a1").end();

    // The first write waits for the holder; the five stages that end meanwhile are set apart
    // as a batch of their own (maxQueuedRows), behind the rows the write took.
    const firstFlush = t.processor.forceFlush();
    for (const name of ["a2", "a3"]) stageOf(t, first, name).end();
    for (const name of ["b1", "b2", "b3"]) stageOf(t, second, name).end();
    first.end();
    // Reading the stats records the queued spans now, while the write is under way.
    expect(t.processor.stats.openRuns).toBe(1);
    await firstFlush;

    // The second flush tries what it kept, the set-apart batch and the current rows (the final
    // row of `first`): all kept again, merged with the earlier running rows.
    const secondFlush = t.processor.forceFlush();
    stageOf(t, second, "b4").end();
    second.end();
    expect(t.processor.stats.openRuns).toBe(0);
    await secondFlush;
    expect(t.processor.stats).toMatchObject({ runRowsWritten: 0, stageRowsWritten: 0 });

    await release(holder);
    await t.provider.shutdown();
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.pipeline, r.status, r.stages_completed]).sort()).toEqual([
      ["first", "completed", 3],
      ["second", "completed", 4],
    ]);
    expect((await storedStages(db)).map((s) => s.name).sort()).toEqual([
      "a1",
      "a2",
      "a3",
      "b1",
      "b2",
      "b3",
      "b4",
    ]);
    expect(t.processor.stats).toMatchObject({ droppedRows: 0, spooledSegments: 0 });
    expect(t.processor.stats.failedFlushes).toBeGreaterThanOrEqual(2);
  });

  it("does not write a flush's later rows before the earlier ones it keeps, which would then overwrite them", async () => {
    const { db, holder, t } = await neitherWritable(1_000);
    const run = t.tracer.startSpan("summarize");
    const stage = stageOf(t, run, "draft");
    const call = chatCall(t.tracer, stage, 4, 1);
    // The stage ends before its LLM call: its first row counts no call.
    stage.end();
    await t.processor.forceFlush();
    expect(t.processor.stats.failedFlushes).toBe(1);

    // The call ends late and rewrites the stage's row, with the call counted. The next flush
    // first tries the kept rows (the stage's first row), then this newer one.
    call.end();
    const flush = t.processor.forceFlush();
    // The kept rows failed again: let the store go now, well within the wait of a write of the
    // newer row, were it tried. Written before the kept older row, the newer one would be
    // overwritten by it at the next write, for good: a stage's row is merged whatever it holds.
    await eventually(() => expect(t.processor.stats.failedFlushes).toBe(2), 10_000, 5);
    await release(holder);
    await flush;

    run.end();
    await t.provider.shutdown();
    expect((await storedStages(db)).map((s) => [s.name, s.llm_calls, s.tokens])).toEqual([
      ["draft", 1, 5],
    ]);
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.status, r.llm_calls, r.tokens])).toEqual([["completed", 1, 5]]);
    expect(t.processor.stats).toMatchObject({ droppedRows: 0, spooledSegments: 0 });
  });
});
