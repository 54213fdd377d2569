import { describe, expect, it } from "vitest";
import type { StageRow } from "../../src/record/rows.js";
import {
  CHUNK_ROWS,
  ColumnBuffer,
  joinJsonLists,
  jsonText,
  recycleColumns,
  rowsOf,
  stagedColumn,
  stagedColumns,
  stagedOffsets,
} from "../../src/store/column-batch.js";
import { STAGE_COLUMNS } from "../../src/store/row-columns.js";
import { blankStage } from "../helpers/run-row.js";

const NAMES = ["extract", "classify", "load"];

/** Stage rows whose fields all depend on `i` and `tag`, so that stale values show. */
function stages(count: number, tag: string): StageRow[] {
  return Array.from({ length: count }, (_, i) =>
    blankStage({
      run_id: `00000000-0000-4000-8000-${String(Math.floor(i / 3)).padStart(12, "0")}`,
      span_id: (0x1000_0000_0000 + i).toString(16).padStart(16, "0"),
      parent_span_id: i % 5 === 0 ? null : `${tag}-not-hex-${i}`,
      name: NAMES[i % NAMES.length] as string,
      seq: i,
      status: i % 7 === 0 ? "failed" : "completed",
      started_at: 1_700_000_000_000_000 + i,
      error_message: i % 7 === 0 ? `${tag} failure ${i}` : null,
      rows_in: i % 4 === 0 ? null : i * 10,
      tokens: i * 3,
      metadata: i % 6 === 0 ? { tag, i } : null,
    }),
  );
}

function fill(buffer: ColumnBuffer, rows: readonly StageRow[]) {
  for (const row of rows) buffer.append(row);
  return buffer.take();
}

describe("column buffers", () => {
  it("keeps rows across chunks and gives them back whole", () => {
    const rows = stages(3 * CHUNK_ROWS + 7, "a");
    const columns = fill(new ColumnBuffer(STAGE_COLUMNS), rows);
    expect(columns.count).toBe(rows.length);
    expect(columns.chunks).toHaveLength(4);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, columns)).toEqual(rows);
    const seqAt = stagedOffsets(STAGE_COLUMNS).offsets[
      STAGE_COLUMNS.findIndex((c) => c.name === "seq")
    ] as number;
    expect([...stagedColumn(columns, seqAt)]).toEqual(rows.map((r) => r.seq));
  });

  it("reuses the chunks of a written batch without their old rows showing", () => {
    const buffer = new ColumnBuffer(STAGE_COLUMNS);
    const first = fill(buffer, stages(2 * CHUNK_ROWS, "old"));
    const chunks = [...first.chunks];
    recycleColumns(first);
    expect(first.chunks).toEqual([]);
    expect(first.count).toBe(0);

    const rows = stages(CHUNK_ROWS + 3, "new");
    const second = fill(buffer, rows);
    // The pool gives chunks back last in, first out.
    expect(second.chunks[0]).toBe(chunks[1]);
    expect(second.chunks[1]).toBe(chunks[0]);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, second)).toEqual(rows);
  });

  it("does not reuse a chunk moved to another thread", () => {
    const buffer = new ColumnBuffer(STAGE_COLUMNS);
    const moved = fill(buffer, stages(5, "moved"));
    const chunk = moved.chunks[0] as Float64Array;
    structuredClone(chunk, { transfer: [chunk.buffer as ArrayBuffer] });
    expect(chunk.length).toBe(0);
    recycleColumns(moved);

    const rows = stages(5, "after");
    const next = fill(buffer, rows);
    expect(next.chunks[0] === chunk).toBe(false);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, next)).toEqual(rows);
  });

  it("reads every staged value of every row as columns, across chunks", () => {
    const rows = stages(2 * CHUNK_ROWS + 11, "t");
    const columns = fill(new ColumnBuffer(STAGE_COLUMNS), rows);
    const all = stagedColumns(columns);
    expect(all).toHaveLength(columns.width);
    for (let k = 0; k < columns.width; k++) {
      expect(all[k]).toEqual(stagedColumn(columns, k));
    }
  });

  it("keeps a text that comes round again once per batch, not once a row", () => {
    // Three names in turn: never the same twice in a row.
    const rows = stages(3 * CHUNK_ROWS, "r");
    const buffer = new ColumnBuffer(STAGE_COLUMNS);
    const columns = fill(buffer, rows);
    const count = (text: string) => columns.values.filter((v) => v === text).length;
    expect(NAMES.map(count)).toEqual([1, 1, 1]);
    expect(count("completed")).toBe(1);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, columns)).toEqual(rows);
    // The next batch has a list of its own.
    const next = fill(buffer, rows.slice(0, 4));
    expect(NAMES.map((n) => next.values.filter((v) => v === n).length)).toEqual([1, 1, 1]);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, next)).toEqual(rows.slice(0, 4));
  });

  it("gives back rows whose texts are more varied than it remembers", () => {
    // More distinct names than a column remembers, coming round in turn.
    const rows = stages(2_000, "v").map((row, i) => ({ ...row, name: `stage-${i % 700}` }));
    const columns = fill(new ColumnBuffer(STAGE_COLUMNS), rows);
    expect(rowsOf<StageRow>(STAGE_COLUMNS, columns)).toEqual(rows);
  });
});

describe("JSON lists", () => {
  it("joins lists into one with every item in order, empty lists adding none", () => {
    const lists = [
      jsonText(['a "quoted" \\ text', "b"]),
      jsonText([]),
      jsonText(["c,d", "\ud800"]),
    ];
    const joined = joinJsonLists(lists);
    expect(JSON.parse(joined)).toEqual(['a "quoted" \\ text', "b", "c,d", "\ufffd"]);
    expect(joinJsonLists([])).toBe("[]");
    expect(joinJsonLists([jsonText([])])).toBe("[]");
  });
});
