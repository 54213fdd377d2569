import { existsSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { runIdOf } from "../../src/record/run-id.js";
import { CLI } from "../helpers/paths.js";
import { runtrail, start } from "../helpers/processes.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import type { Traced } from "../helpers/tracing.js";
import {
  ANSI,
  DAY,
  finish,
  insertRun,
  linesOf,
  MINUTE,
  parseTable,
  type RecordedRun,
  recorder,
  recordRun,
  runIdOfTrace,
  SECOND,
  sharedStore,
  short,
  shownTime,
  span,
  stripAnsi,
  wholeSecondNow,
} from "./_fixtures.js";

interface Expected {
  runId: string;
  pipeline: string;
  status: string;
  start: number;
}

/**
 * Six runs, newest first: running, crashed, completed, failed, completed, and a completed run
 * from two days ago.
 */
let db: string;
let runs: Expected[];

const expectedOf = (r: RecordedRun, status: string): Expected => ({
  runId: r.runId,
  pipeline: r.spec.pipeline,
  status,
  start: r.spec.start,
});

beforeAll(async () => {
  db = sharedStore();
  const now = wholeSecondNow();
  const t = recorder(db);
  const old = recordRun(t, {
    pipeline: "ingest",
    start: now - 2 * DAY,
    ms: 30 * SECOND,
    stages: [{ name: "load", ms: 1000 }],
  });
  const ingestOk = recordRun(t, {
    pipeline: "ingest",
    start: now - 50 * MINUTE,
    ms: 20 * SECOND,
    stages: [{ name: "load", ms: 1000 }],
  });
  const error = new Error("upstream returned 503");
  const ingestFailed = recordRun(t, {
    pipeline: "ingest",
    start: now - 40 * MINUTE,
    ms: 5 * SECOND,
    stages: [{ name: "load", ms: 1000, error }],
    error,
  });
  const summarizeOk = recordRun(t, {
    pipeline: "summarize",
    start: now - 30 * MINUTE,
    ms: 12 * SECOND,
    stages: [{ name: "summarize", ms: 2000, llm: [{ input: 100, output: 20 }] }],
  });
  const running = recordRun(t, {
    pipeline: "ingest",
    start: now - 10 * MINUTE,
    stages: [
      { name: "load", ms: 1000 },
      { name: "parse", ms: 1000, open: true },
    ],
  });
  await finish(t);
  const crashed: Expected = {
    runId: "c0ffee00-0000-4000-8000-000000000001",
    pipeline: "summarize",
    status: "crashed",
    start: now - 20 * MINUTE,
  };
  await insertRun(db, { ...crashed, finish: crashed.start + 5 * SECOND });
  runs = [
    expectedOf(running, "running"),
    crashed,
    expectedOf(summarizeOk, "completed"),
    expectedOf(ingestFailed, "failed"),
    expectedOf(ingestOk, "completed"),
    expectedOf(old, "completed"),
  ];
});

/** The short ids of the runs a filter keeps, newest first. */
function ids(keep: (r: Expected) => boolean = () => true): string[] {
  return runs.filter(keep).map((r) => short(r.runId));
}

async function tailRows(args: string[]): Promise<string[][]> {
  const result = await runtrail(["tail", "--db", db, ...args]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return parseTable(result.stdout).rows;
}

describe("runtrail tail", () => {
  it("prints a box table of the runs, newest first, with short run id, pipeline, status and start time", async () => {
    const result = await runtrail(["tail", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const lines = linesOf(result.stdout);
    expect(lines[0]).toMatch(/^┏━+┳/);
    expect(lines.slice(3, -1).every((l) => l.startsWith("│"))).toBe(true);
    const { header, rows } = parseTable(result.stdout);
    expect(header.slice(0, 5)).toEqual([
      "Run ID",
      "Pipeline",
      "Status",
      "Stage",
      "Started At (UTC)",
    ]);
    expect(rows.map((r) => [r[0], r[1], r[2], r[4]])).toEqual(
      runs.map((r) => [short(r.runId), r.pipeline, r.status, shownTime(r.start)]),
    );
  });

  it("shows the stage a running run is in and the stage a failed run failed in", async () => {
    const rows = await tailRows([]);
    const stageOf = (runId: string) => rows.find((r) => r[0] === short(runId))?.[3];
    expect(stageOf(runs[0]?.runId ?? "")).toBe("parse");
    expect(stageOf(runs[3]?.runId ?? "")).toBe("load");
  });

  it("shows only the newest runs with -n, and says how many there are", async () => {
    const result = await runtrail(["tail", "-n", "2", "--db", db]);
    expect(result.code).toBe(0);
    expect(parseTable(result.stdout).rows.map((r) => r[0])).toEqual(ids().slice(0, 2));
    expect(result.stdout).toContain("2 of 6 runs");
  });

  it("shows only failed runs with --status failed", async () => {
    expect((await tailRows(["--status", "failed"])).map((r) => r[0])).toEqual(
      ids((r) => r.status === "failed"),
    );
  });

  it("shows runs of either status with --status failed,crashed", async () => {
    const either = ids((r) => r.status === "failed" || r.status === "crashed");
    expect(either).toHaveLength(2);
    expect((await tailRows(["--status", "failed,crashed"])).map((r) => r[0])).toEqual(either);
    expect(
      (await tailRows(["--status", "failed", "--status", "crashed"])).map((r) => r[0]),
    ).toEqual(either);
  });

  it("shows only one pipeline's runs with --pipeline", async () => {
    const rows = await tailRows(["--pipeline", "summarize"]);
    expect(rows.map((r) => r[0])).toEqual(ids((r) => r.pipeline === "summarize"));
    expect(new Set(rows.map((r) => r[1]))).toEqual(new Set(["summarize"]));
  });

  it("leaves out runs that started before --since 1h", async () => {
    const rows = await tailRows(["--since", "1h"]);
    expect(rows.map((r) => r[0])).toEqual(ids().slice(0, 5));
    expect(rows.map((r) => r[0])).not.toContain(ids()[5]);
  });

  it("prints a JSON array of run rows with ISO 8601 times with --json", async () => {
    const result = await runtrail(["tail", "--json", "--db", db]);
    expect(result.code).toBe(0);
    const parsed = JSON.parse(result.stdout) as Record<string, unknown>[];
    expect(Array.isArray(parsed)).toBe(true);
    expect(parsed.map((r) => [r.run_id, r.status, r.pipeline, r.started_at])).toEqual(
      runs.map((r) => [r.runId, r.status, r.pipeline, new Date(r.start).toISOString()]),
    );
    const [running, , completed] = parsed;
    expect(Object.keys(completed ?? {})).toEqual(
      expect.arrayContaining([
        "run_id",
        "trace_id",
        "pipeline",
        "status",
        "started_at",
        "finished_at",
        "duration_seconds",
        "llm_calls",
        "tokens",
        "stages_executed",
      ]),
    );
    expect(completed).toMatchObject({
      finished_at: new Date((runs[2]?.start ?? 0) + 12 * SECOND).toISOString(),
      duration_seconds: 12,
      llm_calls: 1,
      tokens: 120,
      stages_executed: ["summarize"],
    });
    expect(running).toMatchObject({ finished_at: null, current_stage: "parse" });
    expect(running?.last_heartbeat).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it("prints no colour codes when NO_COLOR is set, even with FORCE_COLOR", async () => {
    const result = await runtrail(["tail", "--db", db], {
      env: { NO_COLOR: "1", FORCE_COLOR: "1" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("completed");
    expect(result.stdout).not.toMatch(ANSI);
  });

  it("prints no colour codes when standard output is not a terminal", async () => {
    const result = await runtrail(["tail", "--db", db], {
      env: { NO_COLOR: undefined, FORCE_COLOR: undefined, TERM: "xterm-256color" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("completed");
    expect(result.stdout).not.toMatch(ANSI);
  });

  it("paints completed green, failed red and running yellow with FORCE_COLOR=1", async () => {
    // An empty NO_COLOR counts as unset (no-color.org), so FORCE_COLOR decides.
    const result = await runtrail(["tail", "--db", db], {
      env: { NO_COLOR: "", FORCE_COLOR: "1" },
    });
    expect(result.code).toBe(0);
    const rows = parseTable(result.stdout).rows;
    const statusOf = (i: number) => rows.find((r) => r[0] === short(runs[i]?.runId ?? ""))?.[2];
    expect(statusOf(0)).toBe("\u001b[33mrunning\u001b[0m");
    expect(statusOf(2)).toBe("\u001b[32mcompleted\u001b[0m");
    expect(statusOf(3)).toBe("\u001b[31mfailed\u001b[0m");
    // Colour codes do not count towards the column width: the borders still line up.
    const lines = linesOf(result.stdout);
    const widths = lines.filter((l) => /^[┏┃┡│└]/.test(l)).map((l) => stripAnsi(l).length);
    expect(new Set(widths).size).toBe(1);
  });

  it("exits 0 and says on stderr that no runs are recorded yet where there is no store", async () => {
    const missing = join(tempDir(), "nothing-here.duckdb");
    const result = await runtrail(["tail", "--db", missing]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^runtrail: no runs recorded yet/);
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(existsSync(missing)).toBe(false);
  });
});

describe("runtrail tail --follow", () => {
  // src bug: in src/cli/commands/tail.ts, follow() waits on a setTimeout that is unref()'d and on
  // the SIGINT promise, neither of which keeps Node's event loop alive, so the process ends
  // (exit code 13, unsettled top-level await) right after printing the first table.
  it("prints runs as they start and end until Ctrl-C, then exits 0", async () => {
    const path = tempStore();
    const now = wholeSecondNow();
    const before = recorder(path);
    const first = recordRun(before, { pipeline: "nightly", start: now - MINUTE, ms: 2 * SECOND });
    await finish(before);

    const follower = start(process.execPath, [CLI, "tail", "--follow", "--db", path]);
    try {
      await follower.line((l) => l.includes(short(first.runId)), 15_000);

      const t = recorder(path, { flushIntervalMs: 20 });
      const root = t.tracer.startSpan("late-arrival");
      const runId = short(root.spanContext().traceId);
      await t.processor.forceFlush();
      const startedLine = await follower.line(
        (l) => l.startsWith(runId) && l.includes("running"),
        15_000,
      );
      expect(startedLine).toContain("late-arrival");
      root.end();
      await finish(t);
      const endedLine = await follower.line(
        (l) => l.startsWith(runId) && l.includes("completed"),
        15_000,
      );
      expect(endedLine).toContain("late-arrival");
      // A run that did not change is not printed again.
      expect(follower.stdout().split(short(first.runId)).length - 1).toBe(1);
    } finally {
      follower.child.kill("SIGINT");
    }
    const exited = await follower.exited;
    expect(exited.signal).toBeNull();
    expect(exited.code).toBe(0);
  });
});

describe("runtrail tail -n --follow", () => {
  /** Four runs that ended before tail starts, oldest first. */
  async function endedRuns(path: string): Promise<RecordedRun[]> {
    const now = wholeSecondNow();
    const t = recorder(path);
    const recorded = [4, 3, 2, 1].map((m) =>
      recordRun(t, { pipeline: `before-${m}`, start: now - m * MINUTE, ms: SECOND }),
    );
    await finish(t);
    return recorded;
  }

  /** Records a run that starts and ends now. */
  async function lateRun(path: string): Promise<string> {
    const t = recorder(path);
    const root = t.tracer.startSpan("late-arrival");
    root.end();
    await finish(t);
    return runIdOfTrace(root.spanContext().traceId);
  }

  it("prints only runs that start or change after it began, not older ones past -n", async () => {
    const path = tempStore();
    const ids = (await endedRuns(path)).map((r) => short(r.runId));
    const [oldest, older, newer, newest] = ids as [string, string, string, string];
    const follower = start(process.execPath, [CLI, "tail", "-n", "2", "--follow", "--db", path]);
    try {
      await follower.line((l) => l.includes(newer), 15_000);
      const late = short(await lateRun(path));
      await follower.line((l) => l.startsWith(late), 15_000);
      const out = follower.stdout();
      expect(out).toContain(newest);
      expect(out).not.toContain(oldest);
      expect(out).not.toContain(older);
      expect(out.split(newest).length - 1).toBe(1);
    } finally {
      follower.child.kill("SIGINT");
    }
    expect((await follower.exited).code).toBe(0);
  });

  it("prints only runs that start or change after it began with --json", async () => {
    const path = tempStore();
    const before = (await endedRuns(path)).map((r) => r.runId);
    const follower = start(process.execPath, [
      CLI,
      "tail",
      "-n",
      "2",
      "--json",
      "--follow",
      "--db",
      path,
    ]);
    try {
      await follower.line((l) => l.includes(before[3] ?? ""), 15_000);
      const late = await lateRun(path);
      await follower.line((l) => l.includes(late), 15_000);
      const printed = linesOf(follower.stdout()).map((l) => (JSON.parse(l) as RunRow).run_id);
      expect(printed).toEqual([before[2], before[3], late]);
    } finally {
      follower.child.kill("SIGINT");
    }
    expect((await follower.exited).code).toBe(0);
  });
});

/**
 * Records a request span that is not a run (the processor takes marked runs only) with two runs
 * in it: their ids share the trace id's first 16 hex digits. Returns their run ids by name.
 */
function nestedPair(t: Traced, names: [string, string], startMs: number): Record<string, string> {
  const request = span(t, "POST /jobs", startMs);
  const traceId = request.spanContext().traceId;
  const ids: Record<string, string> = {};
  names.forEach((name, i) => {
    const job = span(t, name, startMs + 10 + i, request, { "runtrail.kind": "run" });
    job.end(startMs + 500 + i);
    ids[name] = runIdOf(traceId, job.spanContext().spanId, false);
  });
  request.end(startMs + 1000);
  return ids;
}

/** The run `runtrail show` finds for an id, or its error. */
async function shownRun(db: string, id: string): Promise<string> {
  const result = await runtrail(["show", "--json", id, "--db", db]);
  if (result.code !== 0) return `exit ${result.code}: ${result.stderr}`;
  return (JSON.parse(result.stdout) as RunRow).run_id;
}

describe("runtrail tail with runs that share a trace", () => {
  let db: string;
  /** Run ids by pipeline. */
  let ids: Record<string, string>;

  beforeAll(async () => {
    db = sharedStore();
    const now = wholeSecondNow();
    const jobs = recorder(db, { rootSpansAreRuns: false });
    ids = nestedPair(jobs, ["job-a", "job-b"], now - 10 * MINUTE);
    await finish(jobs);
    // A request that is a run itself (a root span), with a run nested in it.
    const t = recorder(db);
    const request = span(t, "GET /ingest", now - 5 * MINUTE);
    const inner = span(t, "ingest", now - 5 * MINUTE + 10, request, { "runtrail.kind": "run" });
    inner.end(now - 5 * MINUTE + 500);
    request.end(now - 5 * MINUTE + 1000);
    const alone = recordRun(t, { pipeline: "alone", start: now - MINUTE, ms: SECOND });
    await finish(t);
    const traceId = request.spanContext().traceId;
    ids["GET /ingest"] = runIdOfTrace(traceId);
    ids.ingest = runIdOf(traceId, inner.spanContext().spanId, false);
    ids.alone = alone.runId;
  });

  /** The shown id of each run, by pipeline. */
  async function shownIds(args: string[] = []): Promise<Record<string, string>> {
    const result = await runtrail(["tail", "--db", db, ...args]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // The table's columns line up, whatever the length of the ids.
    const widths = linesOf(result.stdout)
      .filter((l) => /^[┏┃┡│└]/.test(l))
      .map((l) => l.length);
    expect(new Set(widths).size).toBe(1);
    return Object.fromEntries(parseTable(result.stdout).rows.map((r) => [r[1], r[0] ?? ""]));
  }

  it("shows two runs nested in one trace by ids that runtrail show resolves to each", async () => {
    const shown = await shownIds();
    const a = shown["job-a"] ?? "";
    const b = shown["job-b"] ?? "";
    expect(a).not.toBe(b);
    // Their first 16 hex digits are the trace's: what tells them apart comes after.
    expect(a.replaceAll("-", "").length).toBeGreaterThan(16);
    for (const [pipeline, id] of [
      ["job-a", a],
      ["job-b", b],
    ] as const) {
      expect(ids[pipeline]?.startsWith(id)).toBe(true);
      expect(await shownRun(db, id)).toBe(ids[pipeline]);
    }
  });

  it("shows a run whose trace holds another run by an id that names it alone, even when the other is not listed", async () => {
    for (const args of [[], ["--pipeline", "GET /ingest"], ["--pipeline", "ingest"]]) {
      const shown = await shownIds(args);
      for (const pipeline of ["GET /ingest", "ingest"]) {
        const id = shown[pipeline];
        if (id === undefined) continue;
        expect(await shownRun(db, id), `${pipeline} ${args.join(" ")}`).toBe(ids[pipeline]);
      }
    }
  });

  it("keeps 8 hex digits for a run alone in its trace", async () => {
    expect((await shownIds()).alone).toBe(short(ids.alone ?? ""));
  });

  it("prints distinct ids that runtrail show resolves when following", async () => {
    const path = tempStore();
    const before = recorder(path);
    const first = recordRun(before, {
      pipeline: "before",
      start: wholeSecondNow() - MINUTE,
      ms: SECOND,
    });
    await finish(before);
    const follower = start(process.execPath, [CLI, "tail", "--follow", "--db", path]);
    let late: Record<string, string> = {};
    let lines: string[] = [];
    try {
      await follower.line((l) => l.includes(short(first.runId)), 15_000);
      const t = recorder(path, { rootSpansAreRuns: false });
      late = nestedPair(t, ["late-a", "late-b"], wholeSecondNow());
      await finish(t);
      lines = await Promise.all(
        ["late-a", "late-b"].map((name) =>
          follower.line((l) => l.includes(` ${name} `) && l.includes("completed"), 15_000),
        ),
      );
    } finally {
      follower.child.kill("SIGINT");
    }
    expect((await follower.exited).code).toBe(0);
    const shown = lines.map((l) => l.split(" ")[0] ?? "");
    expect(shown[0]).not.toBe(shown[1]);
    expect(await shownRun(path, shown[0] ?? "")).toBe(late["late-a"]);
    expect(await shownRun(path, shown[1] ?? "")).toBe(late["late-b"]);
  });

  it("shows the same ids through the runtrail server that holds the store", async () => {
    const direct = await runtrail(["tail", "--db", db]);
    const server = start(process.execPath, [CLI, "serve", "--db", db, "--port", "0", "--json"]);
    try {
      const { url } = JSON.parse(await server.line((l) => l.startsWith("{"), 60_000)) as {
        url: string;
      };
      const through = await runtrail(["tail", "--url", url]);
      expect(through.stderr).toBe("");
      expect(through.stdout).toBe(direct.stdout);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
