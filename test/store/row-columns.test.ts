import { describe, expect, it } from "vitest";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import {
  type Column,
  RUN_COLUMNS,
  readRows,
  STAGE_COLUMNS,
  selectList,
} from "../../src/store/row-columns.js";
import type { StoreSession } from "../../src/store/store-session.js";
import { writeRows } from "../../src/store/write-rows.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";

const FULL_RUN_ID = "0a1b2c3d-0000-4000-8000-0000000000f1";
const BLANK_RUN_ID = "0a1b2c3d-0000-4000-8000-0000000000b1";
/** A time with microseconds that a millisecond Date would lose. */
const AT = 1_700_000_000_123_457;

/** Every field of a run set, to values at the edges of their types. */
const fullRun = blankRun({
  run_id: FULL_RUN_ID,
  trace_id: "0a1b2c3d00004000800000000000f100",
  span_id: "00f067aa0ba902b7",
  tenant_id: "acme",
  pipeline: "nightly é 🎉",
  service_name: "etl",
  status: "failed",
  status_reason: "deadline",
  error: "ValueError: bad row",
  error_type: "ValueError",
  error_message: "bad row 'x'",
  error_stack: "line 1\nline 2",
  failed_stage: "load",
  input_fingerprint: "sha256:ab",
  code_ref: "git:1234abc",
  config_hash: "cfg",
  started_at: AT,
  finished_at: AT + 2_500_001,
  duration_seconds: 2.500001,
  deadline_at: AT + 60_000_000,
  rows_in: 2 ** 40 + 1,
  rows_out: 0,
  llm_calls: 7,
  tokens: Number.MAX_SAFE_INTEGER,
  input_tokens: 2 ** 31,
  output_tokens: 12,
  stages_expected: 3,
  stages_completed: 2,
  stages_executed: ["extract", "load", "load"],
  stages_failed: ["load"],
  retry_count: 1,
  current_stage: "load",
  metadata: { team: "data", nested: { list: [1, "two", null] } },
  owner_host: "host-1",
  owner_pid: 2 ** 31 - 1,
  owner_started_at: AT - 1,
  last_heartbeat: AT + 1_000_000,
  resumed_from: "0a1b2c3d-0000-4000-8000-0000000000a1",
  cached_from: "0a1b2c3d-0000-4000-8000-0000000000a2",
  entry_point: "main.py",
  input_snapshot: "{}",
  artifacts: [
    {
      seq: 1,
      kind: "table",
      file: "01_table.csv",
      media_type: "text/csv",
      size: 10,
      sha256: "ab",
      metadata: null,
      stage: "load",
      created_at: "2023-11-14T22:13:20.123Z",
    },
  ],
});

/** Every field that may be null, null; lists empty. */
const blank = blankRun({
  run_id: BLANK_RUN_ID,
  trace_id: "0a1b2c3d00004000800000000000b100",
  span_id: "00f067aa0ba902b8",
  pipeline: "p",
  status: "running",
  started_at: AT + 1,
});

const fullStage = blankStage({
  run_id: FULL_RUN_ID,
  span_id: "00f067aa0ba902c1",
  parent_span_id: "00f067aa0ba902b7",
  name: "load",
  seq: 2,
  attempt: 2,
  status: "failed",
  error_type: "ValueError",
  error_message: "bad row",
  error_stack: "trace",
  started_at: AT + 3,
  finished_at: AT + 2_000_003,
  duration_seconds: 2,
  rows_in: 2 ** 40,
  rows_out: 5,
  llm_calls: 1,
  tokens: 30,
  input_tokens: 20,
  output_tokens: 10,
  metadata: { k: "v" },
  snapshot: "s",
  cache_key: "ck",
  cached_from: "0a1b2c3d-0000-4000-8000-0000000000a3",
});
const blankStageRow = blankStage({
  run_id: BLANK_RUN_ID,
  span_id: "00f067aa0ba902c2",
  name: "extract",
  seq: 1,
  status: "running",
  started_at: AT + 4,
});

/** A select list that converts in SQL, each column to what a row object holds. */
function castList(cols: readonly Column[]): string {
  return cols
    .map((c) => {
      if (c.kind === "time") return `epoch_us(${c.name})::DOUBLE AS ${c.name}`;
      if (c.kind === "integer" || c.kind === "bigint") return `${c.name}::DOUBLE AS ${c.name}`;
      if (c.kind === "uuid" || c.kind === "json") return `${c.name}::VARCHAR AS ${c.name}`;
      return c.name;
    })
    .join(", ");
}

/** Rows read with SQL casts, JSON parsed: the reading readRows replaces. */
async function castRows(session: StoreSession, cols: readonly Column[], table: string) {
  const rows = await session.all<Record<string, unknown>>(
    `SELECT ${castList(cols)} FROM ${table} ORDER BY started_at`,
  );
  for (const row of rows) {
    for (const c of cols) {
      const value = row[c.name];
      if (c.kind === "json") row[c.name] = typeof value === "string" ? JSON.parse(value) : null;
    }
  }
  return rows;
}

/** A store holding the full and the blank run and stage, open for `work`. */
function withWrittenRows(work: (session: StoreSession) => Promise<void>): Promise<void> {
  return withStore(tempStore(), async (session) => {
    await writeRows(session, { runs: [fullRun, blank], stages: [fullStage, blankStageRow] });
    await work(session);
  });
}

describe("reading rows", () => {
  it("reads every column of a full row and of a blank one as written", async () => {
    await withWrittenRows(async (session) => {
      const runs = await readRows<RunRow>(
        session,
        RUN_COLUMNS,
        `SELECT ${selectList(RUN_COLUMNS)} FROM runs ORDER BY started_at`,
      );
      expect(runs).toEqual([fullRun, blank]);
      const stages = await readRows<StageRow>(
        session,
        STAGE_COLUMNS,
        `SELECT ${selectList(STAGE_COLUMNS)} FROM stages WHERE run_id = $1::UUID`,
        [FULL_RUN_ID],
      );
      expect(stages).toEqual([fullStage]);
      // Numbers stay numbers: a bigint or a DuckDB value object would not equal the row above,
      // but make sure of the types a JSON answer depends on.
      const [run] = runs;
      expect(typeof run?.tokens).toBe("number");
      expect(typeof run?.started_at).toBe("number");
      expect(Array.isArray(run?.stages_executed)).toBe(true);
    });
  });

  it("gives the same rows as reading with casts in SQL", async () => {
    await withWrittenRows(async (session) => {
      const sql = (cols: readonly Column[], table: string) =>
        `SELECT ${selectList(cols)} FROM ${table} ORDER BY started_at`;
      expect(await readRows(session, RUN_COLUMNS, sql(RUN_COLUMNS, "runs"))).toEqual(
        await castRows(session, RUN_COLUMNS, "runs"),
      );
      expect(await readRows(session, STAGE_COLUMNS, sql(STAGE_COLUMNS, "stages"))).toEqual(
        await castRows(session, STAGE_COLUMNS, "stages"),
      );
    });
  });

  it("says which column it could not read, rather than return a wrong value", async () => {
    const db = tempStore();
    await withStore(db, async (session) => {
      const wrong: Column[] = [{ name: "started_at", kind: "time" }];
      await expect(readRows(session, wrong, "SELECT 'text' AS started_at")).rejects.toThrow(
        /column started_at \(time\)/,
      );
    });
  });
});
