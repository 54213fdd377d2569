import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { SCHEMA_VERSION, schemaVersion } from "../../src/store/migrations.js";
import { openStore, ROW_GROUP_SIZE, withStore } from "../../src/store/open-store.js";
import { StoreError } from "../../src/store/store-errors.js";
import { startFixture } from "../helpers/processes.js";
import { rowGroupSizes } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";

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

/** A DuckDB database of another program: a table, and none of runtrail's. */
async function foreignDatabase(
  path: string,
  table = "CREATE TABLE notes AS SELECT 'kept' AS text",
) {
  const instance = await DuckDBInstance.create(path);
  try {
    const connection = await instance.connect();
    await connection.run(table);
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
}

/** The runs table of seed 000's runs.duckdb. */
const SEED_000_RUNS = `CREATE TABLE runs (run_id UUID PRIMARY KEY, tenant_id VARCHAR,
  stage VARCHAR NOT NULL, status VARCHAR NOT NULL, error TEXT, input_fingerprint VARCHAR,
  code_ref VARCHAR, config_hash VARCHAR, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
  duration_seconds DOUBLE PRECISION, rows_in BIGINT, rows_out BIGINT, llm_calls BIGINT,
  tokens BIGINT, trace_id VARCHAR)`;

/** The error opening a store throws, or undefined when it opens. */
async function openError(path: string, options: Parameters<typeof openStore>[1]) {
  try {
    (await openStore(path, options)).close();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe("openStore for a command", () => {
  it("refuses a file that is not a DuckDB database and leaves it and its folder as they are", async () => {
    const dir = tempDir();
    for (const [name, content, what] of [
      ["README.md", "# notes\n\nnot a database\n", "not a DuckDB database file"],
      ["empty.duckdb", "", "an empty file"],
    ] as const) {
      const path = join(dir, name);
      writeFileSync(path, content);
      const before = readdirSync(dir).sort();
      let movedAside = false;
      const error = await openError(path, {
        command: true,
        onMovedAside: () => {
          movedAside = true;
        },
      });
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({
        kind: "foreign",
        message: `${path} is not a runtrail store (${what})`,
      });
      expect(movedAside).toBe(false);
      expect(readFileSync(path, "utf8")).toBe(content);
      expect(readdirSync(dir).sort()).toEqual(before);
    }
  });

  it("refuses a DuckDB database without runtrail's tables and makes no store in it", async () => {
    // Another program's tables, one of them even called runs.
    for (const table of [undefined, "CREATE TABLE runs AS SELECT 1 AS id, 'x' AS status"]) {
      const path = join(tempDir(), "other.duckdb");
      await foreignDatabase(path, table);
      const bytes = readFileSync(path);
      for (const readOnly of [false, true]) {
        const error = await openError(path, { command: true, readOnly });
        expect(error).toMatchObject({
          kind: "foreign",
          message: `${path} is not a runtrail store (a DuckDB database without runtrail's tables)`,
        });
      }
      expect(readFileSync(path).equals(bytes)).toBe(true);
      expect(readdirSync(dirname(path))).toEqual(["other.duckdb"]);
    }
  });

  it("still opens a store, makes a new one where there is none, and upgrades seed 000's", async () => {
    const fresh = tempStore();
    await withStore(fresh, async () => undefined, { command: true });
    expect(existsSync(fresh)).toBe(true);
    await withStore(fresh, async () => undefined, { command: true, readOnly: true });
    // A runs table is what seed 000 left: the migrations adopt it.
    const seed = join(tempDir(), "runs.duckdb");
    await foreignDatabase(seed, SEED_000_RUNS);
    expect(await withStore(seed, schemaVersion, { command: true })).toBe(SCHEMA_VERSION);
  });

  it("moves a file that is not a DuckDB database aside without it, as writers do", async () => {
    const dir = tempDir();
    const path = join(dir, "runs.duckdb");
    writeFileSync(path, "not a database");
    const moved: string[] = [];
    await withStore(path, async (s) => expect(await schemaVersion(s)).toBeGreaterThan(0), {
      onMovedAside: (_from, to) => moved.push(to),
    });
    expect(moved).toHaveLength(1);
    expect(readFileSync(moved[0] ?? "", "utf8")).toBe("not a database");
  });

  it("lets a command waiting for a held store in before a writer that waited longer", async () => {
    const db = tempStore();
    await withStore(db, async () => undefined);
    const holdAt = (line: string) => Number(line.split(" ")[1]);
    const first = startFixture("hold-store.ts", ["--db", db, "--ms", "1500"]);
    await first.line((l) => l.startsWith("holding "));
    // A writer starts waiting, then a command; the store goes to the command first.
    const writer = startFixture("hold-store.ts", ["--db", db, "--ms", "300"]);
    await sleep(300);
    const command = startFixture("hold-store.ts", ["--db", db, "--ms", "300", "--command"]);
    const [writerIn, commandIn] = await Promise.all([
      writer.line((l) => l.startsWith("holding ")),
      command.line((l) => l.startsWith("holding ")),
    ]);
    expect(holdAt(commandIn)).toBeLessThan(holdAt(writerIn));
    for (const p of [first, writer, command]) expect((await p.exited).code).toBe(0);
  });
});
