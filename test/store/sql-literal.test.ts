import type { DuckDBValue } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { withStore } from "../../src/store/open-store.js";
import { inlineParams, sqlLiteral } from "../../src/store/sql-literal.js";
import type { StoreSession } from "../../src/store/store-session.js";
import { tempStore } from "../helpers/temp-dir.js";

/** The value and DuckDB type of `$1` in a statement run with the value bound, not written in. */
async function bound(session: StoreSession, value: DuckDBValue) {
  const reader = await session.connection.runAndReadAll(
    "SELECT $1 AS v, typeof($1) AS t, $1 IS NULL AS n",
    [value],
  );
  return reader.getRowObjectsJS()[0];
}

describe("parameters written in as literals", () => {
  it("means what the bound value meant: the same value of the same type", async () => {
    const values: DuckDBValue[] = [
      "plain",
      "it's",
      "''",
      "'); DROP TABLE runs; --",
      "back\\slash \\' and \\",
      "$1 and $2",
      "new\nline\r\ttab \u001f",
      "é 🎉 漢字 \u2028",
      "",
      0,
      -0,
      7,
      -2_147_483_648,
      2_147_483_647,
      2_147_483_648,
      -1_700_000_000_000_000,
      Number.MAX_SAFE_INTEGER,
      0.1,
      0.30000000000000004,
      123456789012.34567,
      -2.5e-300,
      5e-324,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      12345678901234567890n,
      -5n,
      true,
      false,
      null,
    ];
    await withStore(tempStore(), async (session) => {
      for (const value of values) {
        expect(inlineParams("SELECT $1", [value]), String(value)).toBeDefined();
        const written = await session.one("SELECT $1 AS v, typeof($1) AS t, $1 IS NULL AS n", [
          value,
        ]);
        expect(written, String(value)).toEqual(await bound(session, value));
      }
      const [nan] = await session.all<{ v: number }>("SELECT $1 AS v", [Number.NaN]);
      expect(nan?.v).toBeNaN();
      // Still there: no value was read as SQL.
      expect(await session.one("SELECT count(*)::INTEGER AS n FROM runs")).toEqual({ n: 0 });
    });
  });

  it("leaves what it cannot write to binding, which still answers", async () => {
    for (const value of ["a\0b", "half \ud800 a pair", 2 ** 53 + 2, Number.MAX_VALUE, 2n ** 127n]) {
      expect(sqlLiteral(value), String(value)).toBeUndefined();
      expect(inlineParams("SELECT $1", [value])).toBeUndefined();
    }
    await withStore(tempStore(), async (session) => {
      expect(await session.one("SELECT $1 AS v", ["a\0b"])).toEqual({ v: "a\0b" });
      expect(await session.one("SELECT $1 AS v", [2 ** 53 + 2])).toEqual(
        await bound(session, 2 ** 53 + 2).then((r) => ({ v: r?.v })),
      );
    });
  });

  it("writes in placeholders only, not in quoted text, names or comments", () => {
    expect(inlineParams(`SELECT '$1 it''s $2' AS "$1", $2 -- $1\n, $1 /* $2 */`, ["x", 7])).toBe(
      `SELECT '$1 it''s $2' AS "$1", CAST(7 AS INTEGER) -- $1\n, CAST('x' AS VARCHAR) /* $2 */`,
    );
    const ten = Array.from({ length: 10 }, (_, i) => i + 1);
    expect(inlineParams(ten.map((i) => `$${i}`).join("+"), ten)).toBe(
      ten.map((i) => `CAST(${i} AS INTEGER)`).join("+"),
    );
  });

  it("binds instead when placeholders and values do not pair, so DuckDB says why", async () => {
    expect(inlineParams("SELECT $1, $2", ["a"])).toBeUndefined();
    expect(inlineParams("SELECT $1", ["a", "b"])).toBeUndefined();
    await withStore(tempStore(), async (session) => {
      await expect(session.all("SELECT $1, $2", ["a"])).rejects.toThrow();
    });
  });
});
