import { describe, expect, it } from "vitest";
import { columnsOf } from "../../src/store/column-batch.js";
import { withStore } from "../../src/store/open-store.js";
import type { Column } from "../../src/store/row-columns.js";
import { STAGED_POSITION, stageColumns, unstage } from "../../src/store/stage-columns.js";
import { tempStore } from "../helpers/temp-dir.js";

const SPEC: readonly Column[] = [
  { name: "amount", kind: "double" },
  { name: "label", kind: "text" },
  { name: "span", kind: "span_id" },
];

interface Row {
  amount: number | null;
  label: string | null;
  span: string | null;
}

/** Rows over several of DuckDB's chunks, with nulls and text that recur in each. */
function rowsOf(count: number): Row[] {
  return Array.from({ length: count }, (_, i) => ({
    amount: i % 7 === 3 ? null : i * 1.5,
    label: i % 5 === 0 ? null : `label ${i % 3}`,
    span: i % 11 === 0 ? "not-hex" : i.toString(16).padStart(16, "0"),
  }));
}

describe("staged columns", () => {
  for (const threads of [1, 2]) {
    it(`hands DuckDB every staged row once, in chunks, with its nulls and position (${threads} thread(s))`, async () => {
      const rows = rowsOf(5_000);
      const values = ["a value of an earlier part"];
      const options = { threads, anyInsertOrder: threads > 1 };
      await withStore(
        tempStore(),
        async (session) => {
          stageColumns(session, "part", SPEC, columnsOf(SPEC, rows), values);
          const read = await session.all<{
            pos: number;
            amount: number | null;
            label: number | null;
            hi: number | null;
            lo: number | null;
            text: number | null;
          }>(
            `SELECT ${STAGED_POSITION} AS pos, amount, label, span_hi AS hi, span_lo AS lo, span_text AS text
           FROM runtrail_staged('part') ORDER BY ${STAGED_POSITION}`,
          );
          expect(read.map((r) => r.pos)).toEqual(rows.map((_, i) => i));
          const text = (code: number | null) => (code === null ? null : values[code]);
          const back = read.map((r) => ({
            amount: r.amount,
            label: text(r.label),
            span:
              r.hi === null || r.lo === null
                ? text(r.text)
                : r.hi.toString(16).padStart(8, "0") + r.lo.toString(16).padStart(8, "0"),
          }));
          expect(back).toEqual(rows);
          // Text codes point past the values staged before.
          expect(values[0]).toBe("a value of an earlier part");

          unstage(session);
          await expect(session.all("SELECT count(*) FROM runtrail_staged('part')")).rejects.toThrow(
            /no rows are staged as part/,
          );
        },
        options,
      );
    });
  }

  it("reads only the columns a statement asks for", async () => {
    const rows = rowsOf(3_000);
    await withStore(tempStore(), async (session) => {
      stageColumns(session, "part", SPEC, columnsOf(SPEC, rows), []);
      expect(
        await session.all(
          "SELECT count(*)::DOUBLE AS n, sum(amount) AS total FROM runtrail_staged('part')",
        ),
      ).toEqual([
        {
          n: rows.length,
          total: rows.reduce((sum, r) => sum + (r.amount ?? 0), 0),
        },
      ]);
      unstage(session);
    });
  });
});
