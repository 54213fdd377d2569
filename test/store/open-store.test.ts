import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { openStore, ROW_GROUP_SIZE, withStore } from "../../src/store/open-store.js";
import { rowGroupSizes } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

describe("openStore", () => {
  it("writes row groups of ROW_GROUP_SIZE rows, in every session that writes", async () => {
    const db = tempStore();
    const first = 3 * ROW_GROUP_SIZE + 100;
    await withStore(db, async (s) => {
      await s.run(`CREATE TABLE numbers AS SELECT range AS n FROM range(${first})`);
      await s.run("CHECKPOINT");
    });
    // A later session appends to the same table, as the writer does run after run.
    await withStore(db, async (s) => {
      await s.run(`INSERT INTO numbers SELECT range FROM range(${first}, ${2 * first})`);
      await s.run("CHECKPOINT");
    });
    await withStore(db, async (s) => {
      const sizes = await rowGroupSizes(s, "numbers");
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(2 * first);
      expect(Math.max(...sizes)).toBe(ROW_GROUP_SIZE);
      expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil((2 * first) / ROW_GROUP_SIZE));
      const row = await s.one<{ n: number; total: number }>(
        "SELECT count(DISTINCT n)::DOUBLE AS n, sum(n)::DOUBLE AS total FROM numbers",
      );
      expect(row).toEqual({ n: 2 * first, total: ((2 * first - 1) * 2 * first) / 2 });
    });
  });

  it("gives every connection of a session the store's tables by their plain names", async () => {
    const db = tempStore();
    const session = await openStore(db);
    try {
      await session.run("CREATE TABLE notes AS SELECT 'kept' AS text");
      const reader = await session.connect();
      try {
        expect(await reader.all("SELECT text FROM notes")).toEqual([{ text: "kept" }]);
        const where = await reader.one<{ db: string }>("SELECT current_database() AS db");
        const tables = await reader.all<{ table_name: string }>(
          `SELECT table_name FROM duckdb_tables() WHERE database_name = '${where?.db}' ORDER BY 1`,
        );
        expect(tables.map((t) => t.table_name)).toEqual(
          expect.arrayContaining(["notes", "runs", "stages"]),
        );
      } finally {
        reader.close();
      }
    } finally {
      session.close();
    }
  });

  it("leaves a file that DuckDB opens as it is, with every row", async () => {
    const db = tempStore();
    await withStore(db, (s) => s.run("CREATE TABLE numbers AS SELECT range AS n FROM range(1000)"));
    const instance = await DuckDBInstance.create(db, { access_mode: "READ_ONLY" });
    try {
      const connection = await instance.connect();
      const reader = await connection.runAndReadAll("SELECT count(*)::INTEGER FROM numbers");
      expect(reader.getRows()).toEqual([[1000]]);
      connection.closeSync();
    } finally {
      instance.closeSync();
    }
  });
});
