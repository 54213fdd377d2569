import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { createApp } from "../../src/server/app.js";
import { ServedStore } from "../../src/server/served-store.js";
import { TokenSet } from "../../src/server/tokens.js";
import { type RowBatch, writeRows } from "../../src/store/write-rows.js";
import { eventually } from "../helpers/eventually.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";
import { getJson, type Served, servedPerTest } from "./_fixtures.js";

const { serve } = servedPerTest();

const MINUTE_US = 60_000_000;
const A = "a1b2c3d4-0000-4000-8000-000000000001";
const B = "b1b2c3d4-0000-4000-8000-000000000002";
/** Shares A's first 8 digits. */
const C = "a1b2c3d4-ffff-4000-8000-000000000003";

function run(runId: string, fields: Partial<RunRow> = {}): RunRow {
  const now = Date.now() * 1000;
  return blankRun({
    run_id: runId,
    trace_id: runId.replaceAll("-", ""),
    span_id: "00000000000000a1",
    pipeline: "etl",
    status: "completed",
    started_at: now - MINUTE_US,
    finished_at: now,
    ...fields,
  });
}

/** A write of rows by the server's writer, as the spool and OTLP write theirs. */
function write(s: Served | ServedStore, batch: Partial<RowBatch>): Promise<void> {
  const store = s instanceof ServedStore ? s : s.store;
  return store.write((session) => writeRows(session, { runs: [], stages: [], ...batch }), {
    tellsRuns: true,
  });
}

/** Changes a run's pipeline on a reading connection: a change the server is not told of. */
function renameBehind(s: Served, runId: string, pipeline: string): Promise<unknown> {
  return s.store.read((session) =>
    session.run("UPDATE runs SET pipeline = $1 WHERE run_id = $2::UUID", [pipeline, runId]),
  );
}

async function answer(s: Served, path: string): Promise<Record<string, unknown>> {
  const { status, body } = await getJson(s.app, path);
  expect(status, `${path}: ${JSON.stringify(body)}`).toBe(200);
  return body;
}

const listed = async (s: Served, runId: string) =>
  ((await answer(s, "/api/runs")).runs as RunRow[]).find((r) => r.run_id === runId)?.pipeline;

describe("ServedStore's kept answers", () => {
  it("keeps a run's answer across writes of other runs, and drops it with a write of that run", async () => {
    const s = await serve(tempStore());
    await write(s, { runs: [run(A), run(B)] });
    expect(await answer(s, "/api/runs/a1b2c3d4")).toMatchObject({ run_id: A, pipeline: "etl" });
    expect(await listed(s, A)).toBe("etl");

    await renameBehind(s, A, "renamed");
    await write(s, { runs: [run(B, { status: "failed" })] });
    // Another run was written: the list is read again, the run's own answer is kept.
    expect(await listed(s, A)).toBe("renamed");
    expect(await answer(s, "/api/runs/a1b2c3d4")).toMatchObject({ pipeline: "etl", stages: [] });

    // Only a stage of the run: its answer is read again.
    const stage = blankStage({
      run_id: A,
      span_id: "00000000000000b1",
      name: "load",
      seq: 1,
      status: "completed",
      started_at: Date.now() * 1000 - MINUTE_US,
    });
    await write(s, { stagesToMerge: [stage] });
    const withStage = await answer(s, "/api/runs/a1b2c3d4");
    expect(withStage).toMatchObject({ pipeline: "renamed" });
    expect((withStage.stages as { name: string }[]).map((x) => x.name)).toEqual(["load"]);

    // A new run the same prefix names: the prefix no longer names one run.
    await write(s, { runs: [run(C)] });
    const ambiguous = await getJson(s.app, "/api/runs/a1b2c3d4");
    expect(ambiguous.status).toBe(409);
  });

  it("drops every answer after a write that does not tell which runs it changed", async () => {
    const s = await serve(tempStore());
    await write(s, { runs: [run(B)] });
    expect(await answer(s, "/api/runs/b1b2c3d4")).toMatchObject({ pipeline: "etl" });
    await renameBehind(s, B, "renamed");
    await s.store.write((session) => session.run("CHECKPOINT"));
    expect(await answer(s, "/api/runs/b1b2c3d4")).toMatchObject({ pipeline: "renamed" });
  });

  it("drops a run's answer when the run is reaped as crashed", async () => {
    const store = await ServedStore.open(tempStore(), {
      staleAfterMs: 2_000,
      reapIntervalMs: 50,
    });
    try {
      const app = createApp({ store: () => store, tokens: TokenSet.none });
      // Owned by a host that sends no heartbeat any more: crashed once 2 s have passed.
      await write(store, {
        runs: [
          run(A, {
            status: "running",
            finished_at: null,
            owner_host: "elsewhere.example",
            owner_pid: 4242,
            last_heartbeat: Date.now() * 1000,
          }),
        ],
      });
      const first = await getJson(app, "/api/runs/a1b2c3d4");
      expect(first.body).toMatchObject({ status: "running" });
      await eventually(async () => {
        expect((await getJson(app, "/api/runs/a1b2c3d4")).body).toMatchObject({
          status: "crashed",
        });
      });
    } finally {
      await store.close();
    }
  });
});
