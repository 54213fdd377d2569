import { existsSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { exportRuns } from "../../src/store/export-runs.js";
import { withStore } from "../../src/store/open-store.js";
import { sqlString } from "../../src/store/sql-literal.js";
import { tempDir } from "../helpers/temp-dir.js";

describe("file names as SQL string literals", () => {
  it("quotes a name the SQL way, so DuckDB reads it back as it was", async () => {
    const instance = await DuckDBInstance.create(":memory:");
    const connection = await instance.connect();
    try {
      for (const name of ["plain.duckdb", "it's.duckdb", "''", "a'); DROP TABLE x; --", "é 🎉"]) {
        const reader = await connection.runAndReadAll(`SELECT ${sqlString(name)} AS v`);
        expect(reader.getRowObjectsJS()[0]).toEqual({ v: name });
      }
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });

  it("opens a store and exports to files whose names hold quotes", async () => {
    const dir = tempDir();
    const path = join(dir, "it's a 'store'.duckdb");
    const out = join(dir, "runs of 'today'.csv");
    await withStore(path, async (session) => {
      expect(await exportRuns(session, { format: "csv", out })).toBe(0);
    });
    expect(existsSync(path)).toBe(true);
    expect(existsSync(out)).toBe(true);
  });
});
