import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { spoolDirsOf } from "../../src/store/store-path.js";
import { eventually } from "../helpers/eventually.js";
import { CLI } from "../helpers/paths.js";
import { runtrail, start, startFixture } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir } from "../helpers/temp-dir.js";

function doneStats(stdout: string): Record<string, number> {
  const line = stdout.split("\n").find((l) => l.startsWith("done "));
  return JSON.parse(line?.slice(5) ?? "{}");
}

function diagWarnings(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("diag warn"));
}

describe("a store that cannot be used", () => {
  it("keeps a pipeline going while another process holds the store, and writes its runs later", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const holder = startFixture("hold-store.ts", ["--db", db, "--ms", "60000"]);
    await holder.line((l) => l.startsWith("holding "));
    const pipeline = startFixture(
      "pipeline.ts",
      ["--runs", "3", "--stages", "2", "--lock-wait-ms", "300", "--flush-ms", "100"],
      { env: { RUNTRAIL_DB: db } },
    );
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    expect(finished.stdout.match(/^ended /gm)).toHaveLength(3);
    const warnings = diagWarnings(finished.stderr);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("is in use by another process");
    expect(doneStats(finished.stdout).spooledSegments).toBeGreaterThan(0);

    holder.child.kill("SIGTERM");
    await holder.exited;
    const tail = await runtrail(["tail", "--json", "--db", db]);
    expect(tail.code).toBe(0);
    const runs = JSON.parse(tail.stdout) as { status: string; stages_completed: number }[];
    expect(runs.map((r) => [r.status, r.stages_completed])).toEqual([
      ["completed", 2],
      ["completed", 2],
      ["completed", 2],
    ]);
    expect(await storedStages(db)).toHaveLength(6);
    expect(readdirSync(spoolDirsOf(db)[0].path).filter((f) => f.endsWith(".jsonl"))).toEqual([]);
  });

  it("starts a new store when the file is deleted during a run", async () => {
    const dir = tempDir();
    const db = join(dir, "runs.duckdb");
    const pipeline = startFixture(
      "pipeline.ts",
      ["--stages", "6", "--stage-ms", "250", "--flush-ms", "100"],
      {
        env: { RUNTRAIL_DB: db },
      },
    );
    const runId = (await pipeline.line((l) => l.startsWith("started "))).slice(8);
    await eventually(async () => expect((await storedStages(db)).length).toBeGreaterThan(0));
    rmSync(db, { force: true });
    rmSync(`${db}.wal`, { force: true });
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    expect(diagWarnings(finished.stderr)).toEqual([]);
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.run_id, r.status, r.stages_completed])).toEqual([
      [runId, "completed", 6],
    ]);
  });

  it("moves a corrupted store aside, keeps it, and records the run in a new one", async () => {
    const dir = tempDir();
    const db = join(dir, "runs.duckdb");
    const pipeline = startFixture(
      "pipeline.ts",
      ["--stages", "6", "--stage-ms", "250", "--flush-ms", "100"],
      {
        env: { RUNTRAIL_DB: db },
      },
    );
    const runId = (await pipeline.line((l) => l.startsWith("started "))).slice(8);
    await eventually(async () => expect((await storedStages(db)).length).toBeGreaterThan(0));
    // Replace the file whole, so a write in progress goes on to the old one and is redone.
    writeFileSync(join(dir, "garbage"), Buffer.alloc(64 * 1024, "not a database "));
    renameSync(join(dir, "garbage"), db);
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    const warnings = diagWarnings(finished.stderr);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /is damaged: .*not a valid DuckDB database file.*moved it to .*runs\.duckdb\.corrupt-/,
    );
    const asides = readdirSync(dir).filter((f) => f.startsWith("runs.duckdb.corrupt-"));
    expect(asides).toHaveLength(1);
    const runs = await storedRuns(db);
    expect(runs.map((r) => [r.run_id, r.status, r.stages_completed])).toEqual([
      [runId, "completed", 6],
    ]);
  });

  it("spools when the store's folder cannot be written, and writes once it can", async () => {
    const parent = tempDir();
    chmodSync(parent, 0o755);
    const dir = join(parent, "locked-down");
    mkdirSync(dir, { mode: 0o755 });
    const db = join(dir, "runs.duckdb");
    // The pipeline runs as an unprivileged user; the folder belongs to root.
    const pipeline = startFixture("pipeline.ts", ["--runs", "2", "--flush-ms", "100"], {
      env: { RUNTRAIL_DB: db, HOME: "/tmp" },
      uid: 65534,
      gid: 65534,
    });
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    const warnings = diagWarnings(finished.stderr);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("cannot be used");
    expect(existsSync(db)).toBe(false);
    // The spool fell back to a folder of that user's own in the temp folder.
    const fallback = join(tmpdir(), "runtrail-spool-65534", basename(spoolDirsOf(db)[1].path));
    expect(statSync(dirname(fallback))).toMatchObject({ uid: 65534, mode: expect.any(Number) });
    expect(statSync(dirname(fallback)).mode & 0o777).toBe(0o700);
    expect(readdirSync(fallback).filter((f) => f.endsWith(".jsonl")).length).toBeGreaterThan(0);

    // Once the folder can be written, the same user's next command writes the rows in.
    chmodSync(dir, 0o777);
    const tail = await start(process.execPath, [CLI, "tail", "--json", "--db", db], {
      uid: 65534,
      gid: 65534,
    }).exited;
    expect(tail.stderr).toBe("");
    expect(tail.code).toBe(0);
    expect((JSON.parse(tail.stdout) as { status: string }[]).map((r) => r.status)).toEqual([
      "completed",
      "completed",
    ]);
    expect(readdirSync(fallback).filter((f) => f.endsWith(".jsonl"))).toEqual([]);
  });

  it("takes no spooled rows from a temp folder another user could have written", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const fallback = spoolDirsOf(db)[1].path;
    const victim = join(tempDir(), "victim.txt");
    writeFileSync(victim, "precious\n");
    // Another user prepares the fallback folder, with a forged run and a link to a file.
    mkdirSync(fallback, { recursive: true, mode: 0o777 });
    chmodSync(fallback, 0o777);
    const forged = {
      run: {
        run_id: "deadbeef-0000-0000-0000-000000000000",
        pipeline: "forged",
        status: "completed",
        started_at: Date.now() * 1000,
      },
    };
    writeFileSync(join(fallback, "0-x.jsonl"), `not json\n${JSON.stringify(forged)}\n`);
    symlinkSync(victim, join(fallback, "0-x.jsonl.bad"));
    const tail = await runtrail(["tail", "--json", "--db", db]);
    expect(tail.code).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    // The planted segment was neither read nor consumed: not shown, not stored, still there.
    expect(tail.stdout).not.toContain("forged");
    expect(existsSync(join(fallback, "0-x.jsonl"))).toBe(true);
    const stored = existsSync(db) ? await storedRuns(db) : [];
    expect(stored.map((r) => r.pipeline)).not.toContain("forged");
  });

  it("lets a reader without write access read the store, saying what it cannot do", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const db = join(dir, "runs.duckdb");
    const pipeline = startFixture("pipeline.ts", ["--runs", "2"], { env: { RUNTRAIL_DB: db } });
    expect((await pipeline.exited).code).toBe(0);
    chmodSync(db, 0o644);
    const tail = await start(process.execPath, [CLI, "tail", "--json", "--db", db], {
      uid: 65534,
      gid: 65534,
    }).exited;
    expect(tail.code).toBe(0);
    expect(JSON.parse(tail.stdout)).toHaveLength(2);
    expect(tail.stderr).toContain("is read-only here");
  });

  it("writes one row for a run that started in the store and ended in the spool", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const pipeline = startFixture(
      "pipeline.ts",
      ["--stages", "10", "--stage-ms", "400", "--flush-ms", "100", "--lock-wait-ms", "200"],
      { env: { RUNTRAIL_DB: db } },
    );
    const runId = (await pipeline.line((l) => l.startsWith("started "))).slice(8);
    await eventually(async () =>
      expect((await storedRuns(db)).map((r) => r.status)).toEqual(["running"]),
    );
    const holder = startFixture("hold-store.ts", ["--db", db, "--ms", "60000"]);
    await holder.line((l) => l.startsWith("holding "));
    const finished = await pipeline.exited;
    expect(finished.code).toBe(0);
    expect(doneStats(finished.stdout).spooledSegments).toBeGreaterThan(0);
    holder.child.kill("SIGTERM");
    await holder.exited;
    const tail = await runtrail(["tail", "--json", "--db", db]);
    const runs = JSON.parse(tail.stdout) as {
      run_id: string;
      status: string;
      stages_completed: number;
    }[];
    expect(runs.map((r) => [r.run_id, r.status, r.stages_completed])).toEqual([
      [runId, "completed", 10],
    ]);
    expect(await storedStages(db)).toHaveLength(10);
  });
});
