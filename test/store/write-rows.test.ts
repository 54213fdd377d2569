import { describe, expect, it } from "vitest";
import { withStore } from "../../src/store/open-store.js";
import {
  columnBatchOf,
  type StoredSpan,
  writeColumns,
  writeRows,
} from "../../src/store/write-rows.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

const RUN_ID = "0a1b2c3d-0000-4000-8000-000000000001";
const AT = 1_700_000_000_000_000;

describe("writing rows", () => {
  it("stores any text as it was given, a lone surrogate as U+FFFD", async () => {
    const db = tempStore();
    const texts = {
      nul: "before\0after",
      lone: "half \ud800 a pair",
      astral: "é 🎉 漢字",
      escapes: 'quote " backslash \\ newline \n tab \t unit \u001f',
      lookalike: "\\ud800 is only text here",
      empty: "",
    };
    const run = blankRun({
      run_id: RUN_ID,
      trace_id: "0a1b2c3d00004000800000000000000a",
      span_id: "00f067aa0ba902b7",
      pipeline: texts.astral,
      status: "failed",
      started_at: AT,
      error: texts.nul,
      error_message: texts.lone,
      error_stack: texts.escapes,
      status_reason: texts.lookalike,
      config_hash: texts.empty,
      stages_executed: [texts.nul, texts.lone],
      metadata: { note: texts.lone },
    });
    const stage = blankStage({
      run_id: RUN_ID,
      span_id: "00f067aa0ba902b8",
      name: texts.escapes,
      seq: 0,
      status: "failed",
      started_at: AT + 1,
      error_message: texts.nul,
      error_stack: texts.lone,
    });
    await withStore(db, (session) =>
      writeRows(session, { runs: [], newRuns: [run], stages: [stage] }),
    );

    const repaired = "half \ufffd a pair";
    expect(await storedRuns(db)).toEqual([
      {
        ...run,
        error_message: repaired,
        stages_executed: [texts.nul, repaired],
        metadata: { note: repaired },
      },
    ]);
    expect(await storedStages(db)).toEqual([{ ...stage, error_stack: repaired }]);
  });

  it("stores none of a write that fails part way, and the next write works", async () => {
    const db = tempStore();
    const runOf = (n: number) =>
      blankRun({
        run_id: `0a1b2c3d-0000-4000-8000-00000000000${n}`,
        trace_id: `0a1b2c3d00004000800000000000000${n}`,
        span_id: `00f067aa0ba902b${n}`,
        pipeline: "etl",
        status: "completed",
        started_at: AT + n,
      });
    const spanOf = (run: ReturnType<typeof runOf>, text: string): StoredSpan => ({
      trace_id: run.trace_id,
      span_id: run.span_id,
      tenant_id: null,
      received_at: AT,
      span: text,
    });
    const [kept, lost, later] = [runOf(1), runOf(2), runOf(3)];
    const spanCount = (session: Parameters<typeof writeRows>[0]) =>
      session.one<{ n: number }>("SELECT count(*)::DOUBLE AS n FROM otlp_spans");
    await withStore(db, async (session) => {
      await writeRows(session, { runs: [], newRuns: [kept], stages: [] });
      // The write deletes a run, then appends spans, one without its trace id: the store's
      // NOT NULL refuses it after the delete and the first span went in.
      const broken = { ...spanOf(lost, '["b"]'), trace_id: null as unknown as string };
      await expect(
        writeColumns(session, columnBatchOf({ runs: [], newRuns: [lost], stages: [] }), {
          spans: [spanOf(lost, '["a"]'), broken],
          staleRuns: [kept.run_id],
        }),
      ).rejects.toThrow(/NOT NULL/);
      expect(await spanCount(session)).toEqual({ n: 0 });
      await writeColumns(session, columnBatchOf({ runs: [], newRuns: [later], stages: [] }), {
        spans: [spanOf(later, '["c \\"quoted\\""]')],
      });
      expect(await spanCount(session)).toEqual({ n: 1 });
      expect(await session.all("SELECT span FROM otlp_spans")).toEqual([
        { span: '["c \\"quoted\\""]' },
      ]);
    });
    expect((await storedRuns(db)).map((r) => r.run_id)).toEqual([kept.run_id, later.run_id]);
  });

  for (const staging of ["function", "tables"] as const)
    it(`writes a batch of many chunks with two threads: every row once, the later of a stage twice (${staging})`, async () => {
      const db = tempStore();
      const runs = Array.from({ length: 3_000 }, (_, i) =>
        blankRun({
          run_id: `0a1b2c3d-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
          trace_id: `0a1b2c3d000040008000${i.toString(16).padStart(12, "0")}`,
          span_id: i.toString(16).padStart(16, "0"),
          pipeline: `p${i % 4}`,
          status: "completed",
          started_at: AT + i,
        }),
      );
      const stageOf = (i: number, status: "running" | "completed") =>
        blankStage({
          run_id: (runs[i % runs.length] as (typeof runs)[number]).run_id,
          span_id: (1_000_000 + i).toString(16).padStart(16, "0"),
          name: `s${i % 3}`,
          seq: Math.floor(i / runs.length),
          status,
          started_at: AT + i,
          rows_in: status === "completed" ? i : null,
        });
      const appended = Array.from({ length: 6_000 }, (_, i) => stageOf(i, "completed"));
      // Stages that come twice in the batch, the later (completed) one staged 6,000 rows on,
      // in another chunk, which may be read by the other thread.
      const merged = Array.from({ length: 6_000 }, (_, i) => stageOf(6_000 + i, "running"));
      const later = merged.map((_, i) => stageOf(6_000 + i, "completed"));
      await withStore(
        db,
        (session) => {
          session.staging = staging;
          return writeRows(session, {
            runs: [],
            newRuns: runs,
            stages: appended,
            stagesToMerge: [...merged, ...later],
          });
        },
        { threads: 2, anyInsertOrder: true },
      );
      expect(await storedRuns(db)).toEqual(runs);
      const byKey = (a: { run_id: string; seq: number; span_id: string }, b: typeof a) =>
        a.run_id.localeCompare(b.run_id) || a.seq - b.seq || a.span_id.localeCompare(b.span_id);
      expect((await storedStages(db)).sort(byKey)).toEqual([...appended, ...later].sort(byKey));
    });
});
