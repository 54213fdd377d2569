import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lookupRun } from "../../src/query/find-run.js";
import type { RunRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import { eventually } from "../helpers/eventually.js";
import { runtrail, start, startFixture } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempDir } from "../helpers/temp-dir.js";

async function readRun(db: string, runId: string): Promise<RunRow> {
  const found = await withStore(db, (s) => lookupRun(s, runId), { create: false });
  if (found.found !== "one") throw new Error(`run ${runId} not found (${found.found})`);
  return found.run;
}

/** A pid that belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = start(process.execPath, ["-e", ""]);
  await child.exited;
  const pid = child.child.pid;
  if (pid === undefined) throw new Error("no pid");
  return pid;
}

async function insertRunning(db: string, fields: Partial<Record<string, string | number>>) {
  const columns = Object.keys(fields);
  await withStore(db, (s) =>
    s.run(
      `INSERT INTO runs (run_id, pipeline, status, started_at, ${columns.join(", ")})
       VALUES (uuid(), 'manual', 'running', now() - INTERVAL 20 MINUTE, ${columns
         .map((c, i) =>
           c.endsWith("_at") || c === "last_heartbeat"
             ? `make_timestamptz($${i + 1}::BIGINT)`
             : `$${i + 1}`,
         )
         .join(", ")})`,
      Object.values(fields) as (string | number)[],
    ),
  );
}

describe("a paper trail from the start", () => {
  it("shows a running run to another process within a second of its start", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const pipeline = startFixture("pipeline.ts", ["--hang"], { env: { RUNTRAIL_DB: db } });
    const line = await pipeline.line((l) => l.startsWith("started "));
    const seenAt = Date.now();
    const runId = line.slice("started ".length);
    const run = await eventually(() => readRun(db, runId), 5_000, 20);
    const elapsed = Date.now() - seenAt;
    expect(run.status).toBe("running");
    expect(run.owner_pid).toBe(pipeline.child.pid);
    expect(elapsed).toBeLessThan(1_000);
    pipeline.child.kill("SIGKILL");
    await pipeline.exited;
  });

  it("keeps the row of a pipeline killed with SIGKILL and reap marks it crashed", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const pipeline = startFixture("pipeline.ts", ["--hang", "--stages", "3"], {
      env: { RUNTRAIL_DB: db },
    });
    const runId = (await pipeline.line((l) => l.startsWith("hanging "))).slice("hanging ".length);
    await eventually(async () => expect((await readRun(db, runId)).current_stage).toBe("stage_1"));
    pipeline.child.kill("SIGKILL");
    expect((await pipeline.exited).signal).toBe("SIGKILL");
    expect((await readRun(db, runId)).status).toBe("running");

    const reaped = await runtrail(["reap", "--json", "--db", db]);
    expect(reaped.code).toBe(0);
    expect(JSON.parse(reaped.stdout)).toEqual([
      {
        run_id: runId,
        pipeline: "fixture",
        reason: expect.stringContaining(`pid ${pipeline.child.pid} on ${hostname()}) is gone`),
      },
    ]);
    const run = await readRun(db, runId);
    expect(run).toMatchObject({ status: "crashed", current_stage: null, stages_completed: 1 });
    expect(run.finished_at).toBe(run.last_heartbeat);
    expect(run.status_reason).toContain("is gone");
    const again = await runtrail(["reap", "--json", "--db", db]);
    expect(JSON.parse(again.stdout)).toEqual([]);
  });

  it("lets tail mark crashed runs by itself", async () => {
    const db = join(tempDir(), "runs.duckdb");
    await withStore(db, async () => undefined);
    await insertRunning(db, { owner_host: hostname(), owner_pid: await deadPid() });
    const tail = await runtrail(["tail", "--json", "--db", db]);
    expect(JSON.parse(tail.stdout).map((r: RunRow) => r.status)).toEqual(["crashed"]);
  });

  it("marks a run owned elsewhere crashed only once its heartbeat is older than the threshold", async () => {
    const db = join(tempDir(), "runs.duckdb");
    await withStore(db, async () => undefined);
    const now = Date.now() * 1000;
    await insertRunning(db, {
      owner_host: "other-host",
      owner_pid: 1,
      last_heartbeat: now - 600e6,
    });
    await insertRunning(db, { owner_host: "other-host", owner_pid: 2, last_heartbeat: now - 30e6 });
    const reaped = await runtrail(["reap", "--json", "--stale-after", "2m", "--db", db]);
    const listed = JSON.parse(reaped.stdout) as { reason: string }[];
    expect(listed).toHaveLength(1);
    expect(listed[0]?.reason).toMatch(/^no heartbeat for 10m \d+s/);
    const statuses = (await storedRuns(db)).map((r) => [r.owner_pid, r.status]);
    expect(statuses.sort()).toEqual([
      [1, "crashed"],
      [2, "running"],
    ]);
    const tighter = await runtrail(["reap", "--json", "--db", db], {
      env: { RUNTRAIL_STALE_AFTER: "10s" },
    });
    expect(JSON.parse(tighter.stdout)).toHaveLength(1);
  });

  it("does not take a live owner on this host for crashed, however old its heartbeat", async () => {
    const db = join(tempDir(), "runs.duckdb");
    await withStore(db, async () => undefined);
    await insertRunning(db, {
      owner_host: hostname(),
      owner_pid: process.pid,
      last_heartbeat: Date.now() * 1000 - 3600e6,
    });
    const reaped = await runtrail(["reap", "--json", "--db", db]);
    expect(JSON.parse(reaped.stdout)).toEqual([]);
  });

  it("keeps open runs' heartbeats fresh while the pipeline lives", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const pipeline = startFixture("pipeline.ts", ["--hang", "--heartbeat-ms", "200"], {
      env: { RUNTRAIL_DB: db },
    });
    const runId = (await pipeline.line((l) => l.startsWith("hanging "))).slice("hanging ".length);
    const first = await eventually(() => readRun(db, runId));
    const later = await eventually(async () => {
      const run = await readRun(db, runId);
      expect(run.last_heartbeat ?? 0).toBeGreaterThan((first.last_heartbeat ?? 0) + 500_000);
      return run;
    });
    expect(later.status).toBe("running");
    pipeline.child.kill("SIGKILL");
    await pipeline.exited;
  });
});
