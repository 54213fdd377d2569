import { describe, expect, it } from "vitest";
import { withStore } from "../../src/store/open-store.js";
import { writeRows } from "../../src/store/write-rows.js";
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
});
