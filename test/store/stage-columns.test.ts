import { describe, expect, it } from "vitest";
import { columnsOf } from "../../src/store/column-batch.js";
import { withStore } from "../../src/store/open-store.js";
import type { Column } from "../../src/store/row-columns.js";
import {
  emptyStaged,
  STAGED_POSITION,
  type Staging,
  stageColumns,
  stagedSource,
  unstage,
  unstageFailed,
} from "../../src/store/stage-columns.js";
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

const WAYS: readonly { staging: Staging; threads: number }[] = [
  { staging: "function", threads: 1 },
  { staging: "function", threads: 2 },
  { staging: "tables", threads: 2 },
];

describe("staged columns", () => {
  for (const { staging, threads } of WAYS) {
    it(`hands DuckDB every staged row once, in chunks, with its nulls and position (${staging}, ${threads} thread(s))`, async () => {
      const rows = rowsOf(5_000);
      const values = ["a value of an earlier part"];
      const options = { threads, anyInsertOrder: threads > 1 };
      await withStore(
        tempStore(),
        async (session) => {
          session.staging = staging;
          const source = stagedSource(staging, "part");
          await stageColumns(session, "part", SPEC, columnsOf(SPEC, rows), values);
          const read = await session.all<{
            pos: number;
            amount: number | null;
            label: number | null;
            hi: number | null;
            lo: number | null;
            text: number | null;
          }>(
            `SELECT ${STAGED_POSITION} AS pos, amount, label, span_hi AS hi, span_lo AS lo, span_text AS text
             FROM ${source} ORDER BY ${STAGED_POSITION}`,
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
          expect(
            await session.all(`SELECT count(*)::DOUBLE AS n, sum(amount) AS total FROM ${source}`),
          ).toEqual([{ n: rows.length, total: rows.reduce((sum, r) => sum + (r.amount ?? 0), 0) }]);

          // Let go of, the rows are not read again.
          await session.script(emptyStaged(session));
          unstage(session);
          const after = session.all<{ n: number }>(`SELECT count(*)::DOUBLE AS n FROM ${source}`);
          if (staging === "function")
            await expect(after).rejects.toThrow(/no rows are staged as part/);
          else expect(await after).toEqual([{ n: 0 }]);
        },
        options,
      );
    });
  }

  it("empties the tables of a write that failed, or makes them anew", async () => {
    const rows = rowsOf(100);
    await withStore(tempStore(), async (session) => {
      await stageColumns(session, "part", SPEC, columnsOf(SPEC, rows), []);
      await unstageFailed(session);
      expect(
        await session.all(`SELECT count(*)::DOUBLE AS n FROM ${stagedSource("tables", "part")}`),
      ).toEqual([{ n: 0 }]);
      await stageColumns(session, "part", SPEC, columnsOf(SPEC, rows.slice(0, 10)), []);
      // The table is gone (as after a failure that broke the connection's temp tables): the
      // next write makes it again.
      await session.script([`DROP TABLE ${stagedSource("tables", "part")}`]);
      await unstageFailed(session);
      await stageColumns(session, "part", SPEC, columnsOf(SPEC, rows.slice(0, 20)), []);
      expect(
        await session.all(`SELECT count(*)::DOUBLE AS n FROM ${stagedSource("tables", "part")}`),
      ).toEqual([{ n: 20 }]);
    });
  });
});
