import { readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { RUN_COLUMNS } from "../../src/store/row-columns.js";
import { runtrail } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import {
  DAY,
  duckdbRows,
  finish,
  HOUR,
  linesOf,
  MINUTE,
  recorder,
  recordRun,
  SECOND,
  sharedStore,
  sqlText,
  wholeSecondNow,
} from "./_fixtures.js";

let db: string;
let runs: RunRow[];
let stages: StageRow[];

beforeAll(async () => {
  db = sharedStore();
  const now = wholeSecondNow();
  const t = recorder(db);
  recordRun(t, {
    pipeline: "etl",
    start: now - 3 * DAY,
    ms: 30 * SECOND,
    stages: [
      { name: "extract", ms: 1000 },
      { name: "load", ms: 1000 },
    ],
  });
  recordRun(t, {
    pipeline: "etl",
    start: now - 3 * HOUR,
    ms: 10 * SECOND,
    stages: [
      { name: "extract", ms: 1000, llm: [{ input: 100, output: 20 }] },
      { name: "load", ms: 1000 },
    ],
  });
  // The failed run's stack runs over several lines, which CSV must quote.
  const error = new Error('bad row 17: "name", unexpected comma');
  recordRun(t, {
    pipeline: "etl",
    start: now - 2 * HOUR,
    ms: 5 * SECOND,
    stages: [
      { name: "extract", ms: 1000 },
      { name: "load", ms: 1000, error },
    ],
    error,
  });
  recordRun(t, {
    pipeline: "chat",
    start: now - HOUR,
    ms: 8 * SECOND,
    stages: [
      {
        name: "summarize",
        ms: 2000,
        llm: [
          { input: 30, output: 5 },
          { input: 10, output: 5 },
        ],
      },
    ],
  });
  recordRun(t, {
    pipeline: "chat",
    start: now - 10 * MINUTE,
    stages: [
      { name: "summarize", ms: 1000 },
      { name: "publish", ms: 1000, open: true },
    ],
  });
  await finish(t);
  runs = await storedRuns(db);
  stages = await storedStages(db);
});

interface RunSummary {
  run_id: string;
  status: string;
  pipeline: string;
  tokens: number;
  llm_calls: number;
  started_at: number;
}

const SUMMARY = `run_id::VARCHAR AS run_id, status, pipeline, tokens::DOUBLE AS tokens,
  llm_calls::DOUBLE AS llm_calls, epoch_us(started_at::TIMESTAMPTZ)::DOUBLE AS started_at`;

const READERS = {
  csv: (file: string) => `read_csv(${sqlText(file)})`,
  parquet: (file: string) => `read_parquet(${sqlText(file)})`,
  jsonl: (file: string) => `read_json(${sqlText(file)})`,
} as const;

function summaryOf(run: RunRow): RunSummary {
  const { run_id, status, pipeline, tokens, llm_calls, started_at } = run;
  return { run_id, status, pipeline, tokens, llm_calls, started_at };
}

async function readRuns(format: keyof typeof READERS, file: string): Promise<RunSummary[]> {
  return duckdbRows<RunSummary>(`SELECT ${SUMMARY} FROM ${READERS[format](file)} ORDER BY run_id`);
}

function byRunId<T extends { run_id: string }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0));
}

describe("runtrail export", () => {
  it.each(["csv", "parquet", "jsonl"] as const)(
    "writes the runs to a %s file that reads back as the store holds them",
    async (format) => {
      const out = join(tempDir(), `runs.${format}`);
      const result = await runtrail(["export", "--format", format, "--out", out, "--db", db]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe(`Exported 5 runs to ${out}\n`);
      const exported = await readRuns(format, out);
      expect(exported).toHaveLength(runs.length);
      expect(exported).toEqual(byRunId(runs.map(summaryOf)));
      expect(exported.map((r) => r.tokens).sort((a, b) => a - b)).toEqual([0, 0, 0, 50, 120]);
    },
  );

  it("writes jsonl as one JSON object per line", async () => {
    const out = join(tempDir(), "runs.jsonl");
    expect((await runtrail(["export", "--format", "jsonl", "--out", out, "--db", db])).code).toBe(
      0,
    );
    const lines = readFileSync(out, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(runs.length);
    const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects.map((o) => o.run_id).sort()).toEqual(runs.map((r) => r.run_id).sort());
  });

  it("keeps the failed run's error and stack in the csv file", async () => {
    const out = join(tempDir(), "runs.csv");
    expect((await runtrail(["export", "--format", "csv", "--out", out, "--db", db])).code).toBe(0);
    const failed = runs.find((r) => r.status === "failed");
    const [row] = await duckdbRows<{ error: string; error_stack: string }>(
      `SELECT error, error_stack FROM read_csv(${sqlText(out)}) WHERE status = 'failed'`,
    );
    expect(row?.error).toBe('Error: bad row 17: "name", unexpected comma');
    expect(row?.error_stack).toBe(failed?.error_stack);
    expect(row?.error_stack.split("\n").length).toBeGreaterThan(1);
  });

  it("writes the stage rows of the selected runs with --stages", async () => {
    const out = join(tempDir(), "stages.parquet");
    const result = await runtrail([
      "export",
      "--format",
      "parquet",
      "--stages",
      "--out",
      out,
      "--db",
      db,
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`Exported ${stages.length} stages to ${out}\n`);
    const exported = await duckdbRows<{
      run_id: string;
      name: string;
      seq: number;
      status: string;
      tokens: number;
    }>(
      `SELECT run_id::VARCHAR AS run_id, name, seq, status, tokens::DOUBLE AS tokens
       FROM read_parquet(${sqlText(out)}) ORDER BY run_id, seq`,
    );
    expect(exported).toEqual(
      stages.map(({ run_id, name, seq, status, tokens }) => ({
        run_id,
        name,
        seq,
        status,
        tokens,
      })),
    );
    expect(exported).toHaveLength(8);
  });

  it("writes only the stages of the runs --since selects with --stages --since", async () => {
    const out = join(tempDir(), "stages.jsonl");
    const result = await runtrail([
      "export",
      "--format",
      "jsonl",
      "--stages",
      "--since",
      "24h",
      "--out",
      out,
      "--db",
      db,
    ]);
    expect(result.code).toBe(0);
    const old = runs.find((r) => r.started_at < Date.now() * 1000 - DAY * 1000)?.run_id;
    expect(old).toBeDefined();
    const exported = await duckdbRows<{ run_id: string }>(
      `SELECT run_id::VARCHAR AS run_id FROM read_json(${sqlText(out)})`,
    );
    expect(exported).toHaveLength(6);
    expect(exported.map((r) => r.run_id)).not.toContain(old);
  });

  it("writes csv with a header line to standard output without --out", async () => {
    const result = await runtrail(["export", "--format", "csv", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const [header] = result.stdout.split("\n");
    expect(header).toBe(RUN_COLUMNS.map((c) => c.name).join(","));
    const file = join(tempDir(), "stdout.csv");
    writeFileSync(file, result.stdout);
    expect(await readRuns("csv", file)).toEqual(byRunId(runs.map(summaryOf)));
  });

  it("exports only runs started since --since", async () => {
    const out = join(tempDir(), "recent.jsonl");
    const result = await runtrail([
      "export",
      "--format",
      "jsonl",
      "--since",
      "24h",
      "--out",
      out,
      "--db",
      db,
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`Exported 4 runs to ${out}\n`);
    const since = Date.now() * 1000 - DAY * 1000;
    expect((await readRuns("jsonl", out)).map((r) => r.run_id)).toEqual(
      byRunId(runs.filter((r) => r.started_at >= since)).map((r) => r.run_id),
    );
  });

  it("exports only the runs --pipeline and --status select", async () => {
    const out = join(tempDir(), "chat.csv");
    const result = await runtrail([
      "export",
      "--format",
      "csv",
      "--pipeline",
      "chat",
      "--status",
      "completed",
      "--out",
      out,
      "--db",
      db,
    ]);
    expect(result.code).toBe(0);
    const exported = await readRuns("csv", out);
    expect(exported.map((r) => [r.pipeline, r.status, r.tokens])).toEqual([
      ["chat", "completed", 50],
    ]);
  });

  it("exits 2 without a known --format", async () => {
    const result = await runtrail(["export", "--format", "xlsx", "--db", db]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("runtrail: export needs --format csv|parquet|jsonl\n");
  });
});

describe("runtrail export --out the store", () => {
  it("refuses to write over the store or a file kept with it, and writes nothing", async () => {
    const db = tempStore();
    const folder = dirname(db);
    const t = recorder(db);
    const run = recordRun(t, { pipeline: "etl", start: wholeSecondNow() - HOUR, ms: SECOND });
    await finish(t);
    const bytes = readFileSync(db);
    const files = readdirSync(folder).sort();
    const elsewhere = tempDir();
    const link = join(elsewhere, "export.csv");
    symlinkSync(db, link);
    const linkedFolder = join(elsewhere, "store-folder");
    symlinkSync(folder, linkedFolder);

    const cases: [out: string, cwd?: string][] = [
      [db],
      ["runs.duckdb", folder],
      [link],
      [`${db}.wal`],
      [join(linkedFolder, "runs.duckdb.wal")],
      [`${db}.server.json`],
      [`${db}.wanted`],
      [join(folder, "snapshots", "runs.csv")],
      [`${db}.snapshots/runs.csv`],
      [`${db}.checkpoints/runs.csv`],
    ];
    for (const [out, cwd] of cases) {
      const result = await runtrail(
        ["export", "--format", "csv", "--out", out, "--db", db],
        cwd === undefined ? {} : { cwd },
      );
      expect(result.code, out).toBe(2);
      expect(result.stdout, out).toBe("");
      expect(linesOf(result.stderr), out).toHaveLength(1);
      expect(result.stderr, out).toMatch(
        new RegExp(
          `^runtrail: --out .+ is the store ${db} or a file kept with it: export to another file\n$`,
        ),
      );
      expect(readFileSync(db).equals(bytes), out).toBe(true);
      expect(readdirSync(folder).sort(), out).toEqual(files);
    }
    expect((await runtrail(["export", "--format", "csv", "--out", db, "--db", db])).stderr).toBe(
      `runtrail: --out ${db} is the store ${db} or a file kept with it: export to another file\n`,
    );

    const tail = await runtrail(["tail", "--json", "--db", db]);
    expect(tail.code).toBe(0);
    expect(tail.stderr).toBe("");
    expect((JSON.parse(tail.stdout) as RunRow[]).map((r) => r.run_id)).toEqual([run.runId]);
  });

  it("writes a file next to the store whose name only starts with the store's", async () => {
    const db = tempStore();
    const t = recorder(db);
    recordRun(t, { pipeline: "etl", start: wholeSecondNow() - HOUR, ms: SECOND });
    await finish(t);
    const out = `${db}.csv`;
    const result = await runtrail(["export", "--format", "csv", "--out", out, "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`Exported 1 runs to ${out}\n`);
    expect(await readRuns("csv", out)).toHaveLength(1);
  });
});
