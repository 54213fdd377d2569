import type { DuckDBValue } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { listRuns } from "../../src/query/list-runs.js";
import { withStore } from "../../src/store/open-store.js";
import type { StoreSession } from "../../src/store/store-session.js";
import { writeRows } from "../../src/store/write-rows.js";
import { blankRun } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";

/** `n` completed runs that started `startUs` onwards, one a second. */
function runs(n: number, startUs: number, pipeline: string) {
  return Array.from({ length: n }, (_, i) => {
    const hex = (startUs + i).toString(16).padStart(32, "0");
    return blankRun({
      run_id: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
      trace_id: hex,
      span_id: hex.slice(16),
      pipeline,
      status: "completed",
      started_at: startUs + i * 1_000_000,
    });
  });
}

/** The value and DuckDB type of `$1`, read straight through DuckDB's own binding. */
async function bound(session: StoreSession, value: DuckDBValue) {
  const reader = await session.connection.runAndReadAll(
    "SELECT $1 AS v, typeof($1) AS t, $1 IS NULL AS n",
    [value],
  );
  return reader.getRowObjectsJS()[0];
}

describe("reads with bound parameters", () => {
  it("takes every value as a value, never as SQL", async () => {
    const values: DuckDBValue[] = [
      "plain",
      "it's",
      "'); DROP TABLE runs; --",
      "back\\slash \\' and \\",
      "$1 and $2",
      "new\nline\r\ttab \u001f",
      "a\0b",
      "half \ud800 a pair",
      "é 🎉 漢字 \u2028",
      "",
      0,
      -2_147_483_648,
      2_147_483_648,
      2 ** 53 + 2,
      0.1,
      5e-324,
      Number.NEGATIVE_INFINITY,
      -5n,
      2n ** 63n - 1n,
      true,
      null,
    ];
    await withStore(tempStore(), async (session) => {
      for (const value of values) {
        // Twice: the second read runs the statement the first one kept.
        for (let i = 0; i < 2; i++) {
          expect(
            await session.one("SELECT $1 AS v, typeof($1) AS t, $1 IS NULL AS n", [value]),
            String(value),
          ).toEqual(await bound(session, value));
        }
      }
      const [nan] = await session.all<{ v: number }>("SELECT $1 AS v", [Number.NaN]);
      expect(nan?.v).toBeNaN();
      await session.run("CREATE TABLE names (name VARCHAR)");
      await session.run("INSERT INTO names VALUES ($1), ($2)", ["it's", "'); DROP TABLE runs; --"]);
      for (const name of ["it's", "'); DROP TABLE runs; --", "' OR '1'='1"]) {
        const found = await session.all("SELECT name FROM names WHERE name = $1", [name]);
        expect(found, name).toEqual(name.includes("OR") ? [] : [{ name }]);
      }
      expect(await session.one("SELECT count(*)::INTEGER AS n FROM runs")).toEqual({ n: 0 });
    });
  });

  it("answers from the data of when a kept statement runs, not of when it was prepared", async () => {
    const path = tempStore();
    await withStore(path, async (session) => {
      await session.run("CREATE TABLE t (x INTEGER, s VARCHAR)");
      await session.run("INSERT INTO t SELECT i, 'a' FROM range(1, 100001) r(i)");
    });
    // Opened again: DuckDB then plans reads without values from the table's statistics.
    await withStore(path, async (session) => {
      const reads: [string, DuckDBValue[]][] = [
        ["SELECT count(*)::INTEGER AS v FROM t WHERE $1::INTEGER = 1", [1]],
        ["SELECT max(x) AS v FROM t WHERE $1::INTEGER = 1", [1]],
        ["SELECT min(x) AS v FROM t WHERE s = $1", ["a"]],
        // Beyond every value the table held when it was prepared.
        ["SELECT count(*)::INTEGER AS v FROM t WHERE x >= $1", [200_000]],
        ["SELECT count(*)::INTEGER AS v FROM t WHERE s = $1", ["z"]],
        // No values, asked with an empty list, as a filter of nothing is.
        ["SELECT count(*)::INTEGER AS v FROM t WHERE TRUE", []],
      ];
      const read = () => Promise.all(reads.map(([sql, p]) => session.one<{ v: number }>(sql, p)));
      expect((await read()).map((r) => r?.v)).toEqual([100_000, 100_000, 1, 0, 0, 100_000]);
      // Written on another connection to the same store, as a server's writer does.
      const writer = await session.connect();
      try {
        await writer.run("INSERT INTO t SELECT i, 'z' FROM range(200000, 200010) r(i)");
        await writer.run("CHECKPOINT");
        expect((await read()).map((r) => r?.v)).toEqual([100_010, 200_009, 1, 10, 10, 100_010]);
        await writer.run("UPDATE t SET s = 'z' WHERE x < 6");
        await writer.run("DELETE FROM t WHERE x >= 200005");
        expect((await read()).map((r) => r?.v)).toEqual([100_005, 200_004, 6, 5, 10, 100_005]);
      } finally {
        writer.close();
      }
    });
  });

  it("counts the runs a writer on another connection added since the count was last asked", async () => {
    const path = tempStore();
    const t0 = Date.now() * 1000 - 3_600_000_000;
    await withStore(path, (session) => writeRows(session, { runs: runs(50, t0, "a"), stages: [] }));
    // Opened again, as a server opens a store: DuckDB then plans an unfiltered count from the
    // table's statistics, and a statement kept from before a write went on giving the old count.
    await withStore(path, async (session) => {
      const reader = await session.connect();
      try {
        // Asked several times, as a server's list is, so that its statements are kept.
        for (let i = 0; i < 3; i++) {
          expect((await listRuns(reader, { limit: 10 })).total).toBe(50);
          expect((await listRuns(reader, { limit: 10, pipeline: "a" })).total).toBe(50);
        }
        await writeRows(session, { runs: runs(25, t0 + 100_000_000, "a"), stages: [] });
        expect((await listRuns(reader, { limit: 10 })).total).toBe(75);
        expect((await listRuns(reader, { limit: 10, pipeline: "a" })).total).toBe(75);
        await session.run("DELETE FROM runs WHERE started_at < make_timestamptz($1::BIGINT)", [
          t0 + 10_000_000,
        ]);
        expect((await listRuns(reader, { limit: 10 })).total).toBe(65);
        expect((await listRuns(reader, { limit: 10, pipeline: "a" })).total).toBe(65);
      } finally {
        reader.close();
      }
    });
  });

  it("gives each of many reads of the same text at once its own values", async () => {
    await withStore(tempStore(), async (session) => {
      const sql = "SELECT $1::INTEGER AS v, sum(i)::DOUBLE AS work FROM range(200000) r(i)";
      // Kept first, so that the reads below all find it kept.
      expect(await session.one(sql, [-1])).toMatchObject({ v: -1 });
      const asked = Array.from({ length: 40 }, (_, i) => i);
      const answers = await Promise.all(asked.map((i) => session.one<{ v: number }>(sql, [i])));
      expect(answers.map((a) => a?.v)).toEqual(asked);
      // And the statement is still kept and bound afresh.
      expect(await session.one(sql, [77])).toMatchObject({ v: 77 });
    });
  });

  it("answers reads of more texts than it keeps, again and again", async () => {
    await withStore(tempStore(), async (session) => {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 100; i++) {
          const sql = `SELECT $1::INTEGER + ${i} AS v`;
          expect(await session.one(sql, [round])).toEqual({ v: round + i });
        }
      }
    });
  });

  it("fails a read whose values do not fit its statement with DuckDB's word, and reads on", async () => {
    await withStore(tempStore(), async (session) => {
      const sql = "SELECT $1::VARCHAR || $2::VARCHAR AS v";
      await expect(session.all(sql, ["a"])).rejects.toThrow(/parameter|value/i);
      expect(await session.one(sql, ["a", "b"])).toEqual({ v: "ab" });
      await expect(session.all(sql, ["a", "b", "c"])).rejects.toThrow(/parameter|value/i);
      await expect(session.all("SELECT $1::INTEGER AS v", ["not a number"])).rejects.toThrow(
        /convert|cast/i,
      );
      expect(await session.one(sql, ["c", "d"])).toEqual({ v: "cd" });
    });
  });

  it("lets go of the store when closed with statements kept", async () => {
    const path = tempStore();
    await withStore(path, async (session) => {
      for (let i = 0; i < 10; i++) await session.one(`SELECT $1::INTEGER + ${i} AS v`, [i]);
    });
    // Opened again by the same process: the file was let go of.
    await withStore(path, async (session) => {
      expect(await session.one("SELECT $1::INTEGER AS v", [5])).toEqual({ v: 5 });
    });
  });

  it("makes a table from values as often as asked, each time with its columns", async () => {
    await withStore(tempStore(), async (session) => {
      for (const value of ["first", "second", "third"]) {
        await session.run("CREATE OR REPLACE TEMP TABLE made AS SELECT $1::VARCHAR AS v", [value]);
        expect(await session.all("SELECT v FROM temp.main.made")).toEqual([{ v: value }]);
      }
    });
  });

  it("sets a variable from values as often as asked, each time to the new ones", async () => {
    await withStore(tempStore(), async (session) => {
      for (const value of [1, 2, 3]) {
        await session.run("SET VARIABLE runtrail_test = {n: $1::INTEGER}", [value]);
        expect(await session.one("SELECT getvariable('runtrail_test').n AS n")).toEqual({
          n: value,
        });
      }
    });
  });
});
