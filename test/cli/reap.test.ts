import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { withStore } from "../../src/store/open-store.js";
import { eventually } from "../helpers/eventually.js";
import { runtrail, startFixture } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import {
  deadPid,
  finish,
  insertRun,
  MINUTE,
  parseTable,
  recorder,
  recordRun,
  SECOND,
  short,
  wholeSecondNow,
} from "./_fixtures.js";

describe("runtrail reap", () => {
  it("marks a running run whose process is gone as crashed, and tail then shows it crashed", async () => {
    const db = tempStore();
    const now = wholeSecondNow();
    // A run of this (live) process, still running: not to be reaped.
    const t = recorder(db);
    const alive = recordRun(t, {
      pipeline: "live",
      start: now - 5 * MINUTE,
      stages: [{ name: "work", ms: 1000, open: true }],
    });
    await finish(t);
    const pid = await deadPid();
    const orphan = {
      runId: "0dead000-0000-4000-8000-000000000042",
      pipeline: "orphaned",
      status: "running",
      start: now - 10 * MINUTE,
      ownerHost: hostname(),
      ownerPid: pid,
      // A fresh heartbeat: only the owner's death tells that it crashed.
      heartbeat: now - 5 * SECOND,
    };
    await insertRun(db, orphan);

    const reap = await runtrail(["reap", "--json", "--db", db]);
    expect(reap.code).toBe(0);
    expect(reap.stderr).toBe("");
    const reaped = JSON.parse(reap.stdout) as {
      run_id: string;
      pipeline: string;
      reason: string;
    }[];
    expect(reaped).toEqual([
      { run_id: orphan.runId, pipeline: "orphaned", reason: expect.any(String) },
    ]);
    expect(reaped[0]?.reason).toContain(`pid ${pid} on ${hostname()}`);
    expect(reaped[0]?.reason).toContain("is gone");

    const tail = await runtrail(["tail", "--db", db]);
    expect(tail.code).toBe(0);
    const statuses = Object.fromEntries(parseTable(tail.stdout).rows.map((r) => [r[0], r[2]]));
    expect(statuses).toEqual({ [short(orphan.runId)]: "crashed", [short(alive.runId)]: "running" });

    const stored = (await storedRuns(db)).find((r) => r.run_id === orphan.runId);
    expect(stored).toMatchObject({
      status: "crashed",
      finished_at: orphan.heartbeat * 1000,
      duration_seconds: (orphan.heartbeat - orphan.start) / 1000,
    });

    const again = await runtrail(["reap", "--db", db]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe("Marked 0 runs crashed\n");
  });

  it("keeps the stage a run killed with SIGKILL was in as its failed stage, and show and tail name it", async () => {
    const db = tempStore();
    const pipeline = startFixture("pipeline.ts", ["--hang", "--stages", "3"], {
      env: { RUNTRAIL_DB: db },
    });
    const runId = (await pipeline.line((l) => l.startsWith("hanging "))).slice("hanging ".length);
    await eventually(async () => {
      const run = (await storedRuns(db)).find((r) => r.run_id === runId);
      expect(run?.current_stage).toBe("stage_1");
    });
    pipeline.child.kill("SIGKILL");
    expect((await pipeline.exited).signal).toBe("SIGKILL");

    const reap = await runtrail(["reap", "--db", db]);
    expect(reap.code).toBe(0);
    expect(reap.stdout).toContain("Marked 1 run crashed");
    const stored = (await storedRuns(db)).find((r) => r.run_id === runId);
    expect(stored).toMatchObject({
      status: "crashed",
      current_stage: null,
      failed_stage: "stage_1",
    });

    const show = await runtrail(["show", runId, "--db", db]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/Status: +crashed - its process/);
    expect(show.stdout).toMatch(/Stages: +\S+ completed, crashed in stage_1\b/);
    const json = await runtrail(["show", runId, "--json", "--db", db]);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: "crashed", failed_stage: "stage_1" });

    const tail = await runtrail(["tail", "--db", db]);
    const row = parseTable(tail.stdout).rows.find((r) => r[0] === short(runId));
    expect(row?.slice(2, 4)).toEqual(["crashed", "stage_1"]);
  });

  it("gives a run received over OTLP (no owner) 30 minutes of silence, or --silent-after", async () => {
    const db = tempStore();
    const now = wholeSecondNow();
    // No owner host or pid: recorded from OTLP. Its last span came 5 minutes ago, which is
    // more than --stale-after's 2 minutes but well inside a remote stage's usual silence.
    const remote = {
      runId: "0dead000-0000-4000-8000-000000000044",
      pipeline: "remote",
      status: "running",
      start: now - 20 * MINUTE,
      heartbeat: now - 5 * MINUTE,
    };
    await insertRun(db, remote);

    for (const command of [["reap"], ["tail"], ["stats"], ["show", short(remote.runId)]]) {
      const result = await runtrail([...command, "--db", db]);
      expect(result.code, `${command[0]}: ${result.stderr}`).toBe(0);
    }
    expect((await storedRuns(db)).find((r) => r.run_id === remote.runId)?.status).toBe("running");

    const env = { RUNTRAIL_SILENT_AFTER: "10m" };
    const tail = await runtrail(["tail", "--db", db], { env });
    expect(parseTable(tail.stdout).rows[0]?.[2]).toBe("running");

    const reap = await runtrail(["reap", "--json", "--silent-after", "4m", "--db", db], { env });
    expect(reap.code).toBe(0);
    const reaped = JSON.parse(reap.stdout) as { run_id: string; reason: string }[];
    expect(reaped.map((r) => r.run_id)).toEqual([remote.runId]);
    expect(reaped[0]?.reason).toMatch(/^no span of the run arrived for 5m/);

    const bad = await runtrail(["reap", "--silent-after", "soon", "--db", db]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^runtrail: --silent-after: /);
  });

  it("keeps a crashed run's failed stage when it already had one", async () => {
    const db = tempStore();
    const now = wholeSecondNow();
    const runId = "0dead000-0000-4000-8000-000000000043";
    await insertRun(db, {
      runId,
      pipeline: "retried",
      status: "running",
      start: now - 10 * MINUTE,
      ownerHost: hostname(),
      ownerPid: await deadPid(),
      heartbeat: now - 5 * SECOND,
    });
    await withStore(db, (session) =>
      session.run(
        "UPDATE runs SET failed_stage = 'extract', current_stage = 'load' WHERE run_id = $1::UUID",
        [runId],
      ),
    );

    const reap = await runtrail(["reap", "--db", db]);
    expect(reap.code).toBe(0);
    const stored = (await storedRuns(db)).find((r) => r.run_id === runId);
    expect(stored).toMatchObject({
      status: "crashed",
      current_stage: null,
      failed_stage: "extract",
    });
  });
});
