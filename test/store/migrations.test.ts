import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { SCHEMA_VERSION, schemaVersion } from "../../src/store/migrations.js";
import { openStore, withStore } from "../../src/store/open-store.js";
import { RUN_COLUMNS, STAGE_COLUMNS } from "../../src/store/row-columns.js";
import { StoreError } from "../../src/store/store-errors.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

/** Seed 000's runs.duckdb, exactly as Egregora created it. */
const SEED_000_DDL = `
CREATE TABLE runs (
    run_id UUID PRIMARY KEY,
    tenant_id VARCHAR,
    stage VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error TEXT,
    input_fingerprint VARCHAR,
    code_ref VARCHAR,
    config_hash VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    duration_seconds DOUBLE PRECISION,
    rows_in BIGINT,
    rows_out BIGINT,
    llm_calls BIGINT,
    tokens BIGINT,
    trace_id VARCHAR
);
CREATE INDEX idx_runs_started_at ON runs(started_at);
CREATE INDEX idx_runs_stage ON runs(stage);
CREATE INDEX idx_runs_status ON runs(status);
CREATE INDEX idx_runs_fingerprint ON runs(input_fingerprint);
CREATE INDEX idx_runs_tenant ON runs(tenant_id);
INSERT INTO runs VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL, 'window_0', 'completed', NULL, 'fp0', 'a1b2c3', 'cfg', '2025-01-09 14:23:15', '2025-01-09 14:23:27.45', 12.45, 150, NULL, NULL, NULL, NULL),
  ('c2ddd77b-1234-4ef8-bb6d-6bb9bd380a13', 'acme-corp', 'window_2', 'failed', 'ValueError: Prompt exceeds model context limit', NULL, NULL, NULL, '2025-01-09 14:23:45', '2025-01-09 14:23:48.12', 3.12, 180, NULL, 4, 5200, NULL);
`;

async function describeTable(path: string, table: string): Promise<string[]> {
  return withStore(path, async (s) =>
    (await s.all<{ column_name: string }>(`SELECT column_name FROM (DESCRIBE ${table})`)).map(
      (r) => r.column_name,
    ),
  );
}

describe("store schema", () => {
  it("creates runs and stages with the columns the writer writes, in order", async () => {
    const db = tempStore();
    expect(await describeTable(db, "runs")).toEqual(RUN_COLUMNS.map((c) => c.name));
    expect(await describeTable(db, "stages")).toEqual(STAGE_COLUMNS.map((c) => c.name));
    expect(await withStore(db, schemaVersion)).toBe(SCHEMA_VERSION);
  });

  it("has every column of seed 000's run row", async () => {
    const columns = await describeTable(tempStore(), "runs");
    for (const name of [
      "run_id",
      "tenant_id",
      "status",
      "error",
      "input_fingerprint",
      "code_ref",
      "config_hash",
      "started_at",
      "finished_at",
      "duration_seconds",
      "rows_in",
      "rows_out",
      "llm_calls",
      "tokens",
      "trace_id",
    ]) {
      expect(columns).toContain(name);
    }
  });

  it("upgrades a seed 000 runs.duckdb in place, keeping every run", async () => {
    const db = tempStore();
    const legacy = await DuckDBInstance.create(db);
    const connection = await legacy.connect();
    await connection.run(SEED_000_DDL);
    connection.closeSync();
    legacy.closeSync();

    const runs = await storedRuns(db);
    expect(
      runs.map((r) => [r.run_id, r.pipeline, r.status, r.tenant_id, r.duration_seconds]),
    ).toEqual([
      ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "window_0", "completed", null, 12.45],
      ["c2ddd77b-1234-4ef8-bb6d-6bb9bd380a13", "window_2", "failed", "acme-corp", 3.12],
    ]);
    expect(runs[0]).toMatchObject({
      rows_in: 150,
      input_fingerprint: "fp0",
      code_ref: "a1b2c3",
      config_hash: "cfg",
      started_at: Date.UTC(2025, 0, 9, 14, 23, 15) * 1000,
    });
    expect(runs[1]).toMatchObject({
      error: "ValueError: Prompt exceeds model context limit",
      llm_calls: 4,
      tokens: 5200,
    });
    expect(await describeTable(db, "runs")).toEqual(RUN_COLUMNS.map((c) => c.name));
    const tables = await withStore(db, (s) =>
      s.all<{ table_name: string }>("SELECT table_name FROM duckdb_tables() ORDER BY 1"),
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      "otlp_spans",
      "runs",
      "runtrail_meta",
      "stages",
    ]);
  });

  it("refuses a store written by a newer runtrail, and leaves it untouched", async () => {
    const db = tempStore();
    await withStore(db, (s) =>
      s.run("UPDATE runtrail_meta SET value = $1 WHERE key = 'schema_version'", [
        String(SCHEMA_VERSION + 1),
      ]),
    );
    const attempt = openStore(db);
    await expect(attempt).rejects.toBeInstanceOf(StoreError);
    await expect(attempt).rejects.toMatchObject({ kind: "too_new" });
    const raw = await DuckDBInstance.create(db);
    const connection = await raw.connect();
    const version = await connection.runAndReadAll(
      "SELECT value FROM runtrail_meta WHERE key = 'schema_version'",
    );
    expect(version.getRowObjectsJS()).toEqual([{ value: String(SCHEMA_VERSION + 1) }]);
    connection.closeSync();
    raw.closeSync();
  });
});
