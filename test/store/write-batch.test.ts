import { existsSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { askForStore } from "../../src/store/store-wanted.js";
import { BatchWriter, type BatchWriterOptions } from "../../src/store/write-batch.js";
import { columnBatchOf } from "../../src/store/write-rows.js";
import { runtrail } from "../helpers/processes.js";
import { blankRun } from "../helpers/run-row.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

const AT = 1_700_000_000_000_000;

function run(i: number): RunRow {
  const hex = i.toString(16).padStart(12, "0");
  return blankRun({
    run_id: `0a1b2c3d-0000-4000-8000-${hex}`,
    trace_id: `0a1b2c3d000040008000${hex}`,
    span_id: `0000${hex}`,
    pipeline: "hold",
    status: "completed",
    started_at: AT + i,
  });
}

/** Writes the next run in a batch of its own; how long it took, in milliseconds. */
type WriteRun = () => Promise<number>;

/**
 * Runs `body` with a writer of the store at `db` that puts a new run in each batch, each write
 * checked and timed; then closes the writer and checks that every run written is stored.
 */
async function withRunWriter(
  db: string,
  options: BatchWriterOptions,
  body: (write: WriteRun) => Promise<void>,
): Promise<void> {
  const writer = new BatchWriter(db, options);
  let written = 0;
  const write = async () => {
    const began = performance.now();
    const outcome = await writer.write(
      columnBatchOf({ runs: [], newRuns: [run(written)], stages: [] }),
    );
    expect(outcome.written).toBe(true);
    written += 1;
    return performance.now() - began;
  };
  try {
    await body(write);
  } finally {
    await writer.checkpointAndClose();
  }
  expect(await storedRuns(db)).toHaveLength(written);
}

describe("a writer holding the store across batches", () => {
  it("keeps it while no one else asks, and lets go within a batch of another process asking", async () => {
    const db = tempStore();
    await withRunWriter(db, { lockWaitMs: 5_000 }, async (write) => {
      await write();
      const fileChanged = statSync(db).mtimeMs;
      // Longer than the second after which a writer lets go once asked.
      const until = Date.now() + 1_500;
      while (Date.now() < until) await write();
      // Never checkpointed, so never closed: the batches are in the write-ahead log alone.
      expect(statSync(db).mtimeMs).toBe(fileChanged);
      expect(existsSync(`${db}.wal`)).toBe(true);

      // The CLI asks for the store while batches keep coming; the writer would hold on for
      // 5 s if no one asked.
      let reading = true;
      const read = runtrail(["tail", "-n", "3", "--json", "--db", db]).finally(() => {
        reading = false;
      });
      while (reading) await write();
      const answer = await read;
      expect(answer.stderr).toBe("");
      expect(answer.code).toBe(0);
      // Short of the 5 s a writer holds the store for when no one asks.
      expect(answer.ms).toBeLessThan(3_000);
      expect(JSON.parse(answer.stdout)).toHaveLength(3);
    });
  });

  it("lets go at the end of its longest hold even when no one asks", async () => {
    const db = tempStore();
    await withRunWriter(db, { lockWaitMs: 5_000, maxHoldMs: 300 }, async (write) => {
      await write();
      const fileChanged = statSync(db).mtimeMs;
      const until = Date.now() + 1_000;
      while (Date.now() < until) await write();
      // Checkpointed on letting go: the batches reached the main file.
      expect(statSync(db).mtimeMs).toBeGreaterThan(fileChanged);
    });
  });

  it("after letting go for someone who asked, waits a little before it takes the store again", async () => {
    const db = tempStore();
    await withRunWriter(db, { lockWaitMs: 5_000, shareAfterMs: 0 }, async (write) => {
      await write();
      // Held but not asked for: the next batch finds the store open.
      expect(await write()).toBeLessThan(200);
      askForStore(db);
      // This batch ends the hold, for whoever asked ...
      await write();
      // ... who gets a head start of 250 ms on the one after.
      expect(await write()).toBeGreaterThanOrEqual(250);
    });
  });
});
