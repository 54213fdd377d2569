import { describe, expect, it } from "vitest";
import { runStages } from "../../src/query/run-stages.js";
import { withStore } from "../../src/store/open-store.js";
import { writeRows } from "../../src/store/write-rows.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";

const S = 1_000_000;
const MINUTE = 60 * S;
const T0 = Date.UTC(2026, 0, 1) * 1000;

const run = (id: string, finished: number | null) =>
  blankRun({
    run_id: id,
    trace_id: id.replaceAll("-", ""),
    span_id: "0000000000000001",
    pipeline: "p",
    status: finished === null ? "running" : "completed",
    started_at: T0,
    finished_at: finished,
  });

const stage = (runId: string, seq: number, startedAt: number) =>
  blankStage({
    run_id: runId,
    span_id: `${seq}`.padStart(16, "0"),
    name: `stage-${seq}`,
    seq,
    status: "completed",
    started_at: startedAt,
  });

describe("runStages", () => {
  it("gives a run's stages in order: skewed a little early, or starting up to an hour after it ended", async () => {
    const db = tempStore();
    const done = "00000000-0000-4000-8000-000000000001";
    const open = "00000000-0000-4000-8000-000000000002";
    const other = "00000000-0000-4000-8000-000000000003";
    const end = T0 + 10 * MINUTE;
    await withStore(db, async (s) => {
      await writeRows(s, {
        runs: [run(done, end), run(open, null), run(other, end)],
        stages: [
          stage(done, 1, T0 - 30 * S),
          stage(done, 2, T0 + MINUTE),
          stage(done, 3, end + 50 * MINUTE),
          // Long after its run ended (past the bound): kept, but not shown with the run.
          stage(done, 4, end + 3 * 60 * MINUTE),
          stage(open, 1, T0 + 5 * 60 * MINUTE),
          stage(other, 1, T0 + MINUTE),
        ],
      });
      const names = async (id: string, finished: number | null) =>
        (await runStages(s, run(id, finished))).map((st) => `${st.run_id.slice(-1)}:${st.name}`);
      expect(await names(done, end)).toEqual(["1:stage-1", "1:stage-2", "1:stage-3"]);
      // A run still going has no end: every stage since its start is its.
      expect(await names(open, null)).toEqual(["2:stage-1"]);
      expect(await names(other, end)).toEqual(["3:stage-1"]);
      const stored = await s.one<{ n: number }>("SELECT count(*)::DOUBLE AS n FROM stages");
      expect(stored?.n).toBe(6);
    });
  });

  it("orders them by seq, then by start, whatever order they were written in", async () => {
    const id = "00000000-0000-4000-8000-000000000004";
    const attempt = (seq: number, n: number, startedAt: number) => ({
      ...stage(id, seq, startedAt),
      span_id: `${seq}${n}`.padStart(16, "0"),
      name: `stage-${seq}.${n}`,
      attempt: n,
    });
    await withStore(tempStore(), async (s) => {
      await writeRows(s, {
        runs: [run(id, T0 + 10 * MINUTE)],
        // As they ended: the retried first stage ended last.
        stages: [
          attempt(2, 1, T0 + 3 * MINUTE),
          attempt(1, 2, T0 + 2 * MINUTE),
          attempt(0, 1, T0),
          attempt(1, 1, T0 + MINUTE),
        ],
      });
      const stages = await runStages(s, run(id, T0 + 10 * MINUTE));
      expect(stages.map((st) => st.name)).toEqual([
        "stage-0.1",
        "stage-1.1",
        "stage-1.2",
        "stage-2.1",
      ]);
    });
  });
});
