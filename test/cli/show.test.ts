import { dirname, join, sep } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runPipeline } from "../../src/pipeline/run-pipeline.js";
import { RunTrailAttributes as R } from "../../src/record/attributes.js";
import type { ArtifactRow } from "../../src/record/rows.js";
import { runIdOf } from "../../src/record/run-id.js";
import { CLI } from "../helpers/paths.js";
import { runtrail, start } from "../helpers/processes.js";
import {
  finish,
  linesOf,
  MINUTE,
  parseTable,
  recorder,
  recordRun,
  runIdOfTrace,
  SECOND,
  sharedStore,
  span,
  wholeSecondNow,
} from "./_fixtures.js";

const COMPLETED_TRACE = "1a2b3c4d5e6f708192a3b4c5d6e7f809";
const FAILED_TRACE = "abcdef0123456789abcdef0123456789";
const TWIN_A_TRACE = "deadbeef00000000000000000000aaaa";
const TWIN_B_TRACE = "deadbeef11111111111111111111bbbb";
/** A trace whose root is a request, not a run: the run inside it has an id of its own. */
const NESTED_TRACE = "5eed5eed5eed5eed0123456789abcdef";

const COMPLETED = runIdOfTrace(COMPLETED_TRACE);
const FAILED = runIdOfTrace(FAILED_TRACE);
const TWIN_A = runIdOfTrace(TWIN_A_TRACE);
const TWIN_B = runIdOfTrace(TWIN_B_TRACE);

let db: string;
let now: number;
let nestedRunId: string;

beforeAll(async () => {
  db = sharedStore();
  now = wholeSecondNow();
  const t = recorder(db, {
    traceIds: [COMPLETED_TRACE, FAILED_TRACE, TWIN_A_TRACE, TWIN_B_TRACE],
  });
  recordRun(t, {
    pipeline: "nightly-digest",
    start: now - 60 * MINUTE,
    ms: 10 * SECOND,
    stages: [
      { name: "load", ms: 1000 },
      {
        name: "summarize",
        ms: 3000,
        llm: [
          { input: 100, output: 20 },
          { input: 200, output: 10 },
        ],
      },
      { name: "publish", ms: 500 },
    ],
  });
  const error = new TypeError("prompt exceeds model context limit");
  recordRun(t, {
    pipeline: "nightly-digest",
    start: now - 50 * MINUTE,
    ms: 4 * SECOND,
    stages: [
      { name: "load", ms: 1000 },
      { name: "summarize", ms: 2000, error },
    ],
    error,
  });
  recordRun(t, { pipeline: "twin-a", start: now - 40 * MINUTE, ms: SECOND });
  recordRun(t, { pipeline: "twin-b", start: now - 30 * MINUTE, ms: SECOND });
  await finish(t);

  const nested = recorder(db, { traceIds: [NESTED_TRACE], rootSpansAreRuns: false });
  const request = span(nested, "POST /jobs", now - 20 * MINUTE);
  const job = span(nested, "nested-job", now - 20 * MINUTE + 10, request, {
    "runtrail.kind": "run",
  });
  span(nested, "work", now - 20 * MINUTE + 20, job).end(now - 20 * MINUTE + 500);
  job.end(now - 20 * MINUTE + 600);
  request.end(now - 20 * MINUTE + 700);
  await finish(nested);
  nestedRunId = runIdOf(NESTED_TRACE, job.spanContext().spanId, false);
});

async function show(...args: string[]) {
  return runtrail(["show", ...args, "--db", db]);
}

/** The run id line of the details panel. */
function shownRunId(stdout: string): string | undefined {
  return /│ Run ID: +([0-9a-f-]{36}) /.exec(stdout)?.[1];
}

describe("runtrail show", () => {
  it("shows a run by a prefix of its run id", async () => {
    const result = await show("1a2b3c4d");
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(shownRunId(result.stdout)).toBe(COMPLETED);
    expect(result.stdout).toContain("Run Details: nightly-digest 1a2b3c4d");
    expect(result.stdout).toContain(`Trace ID: ${COMPLETED_TRACE}`);
    expect(result.stdout).toMatch(/Status: +completed/);
  });

  it("shows a run by its full run id", async () => {
    const result = await show(FAILED);
    expect(result.code).toBe(0);
    expect(shownRunId(result.stdout)).toBe(FAILED);
  });

  it("shows a run by a prefix of its trace id written without dashes", async () => {
    // 14 hex digits run over the places where the run id has dashes.
    const prefix = await show(COMPLETED_TRACE.slice(0, 14));
    expect(prefix.code).toBe(0);
    expect(shownRunId(prefix.stdout)).toBe(COMPLETED);
    const whole = await show(FAILED_TRACE);
    expect(whole.code).toBe(0);
    expect(shownRunId(whole.stdout)).toBe(FAILED);
  });

  it("shows a run nested in a trace by its trace id, which its run id does not start with", async () => {
    expect(nestedRunId.replaceAll("-", "").startsWith(NESTED_TRACE.slice(0, 20))).toBe(false);
    for (const prefix of [NESTED_TRACE, NESTED_TRACE.slice(0, 20)]) {
      const result = await show(prefix);
      expect(result.code, prefix).toBe(0);
      expect(shownRunId(result.stdout)).toBe(nestedRunId);
      expect(result.stdout).toContain(`Trace ID: ${NESTED_TRACE}`);
    }
  });

  it("takes prefixes in upper case", async () => {
    const result = await show("ABCDEF01-2345");
    expect(result.code).toBe(0);
    expect(shownRunId(result.stdout)).toBe(FAILED);
  });

  it("shows the stages table with each stage's status, LLM calls and tokens", async () => {
    const result = await show("1a2b");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("LLM calls: 2");
    expect(result.stdout).toContain("Tokens:    330 (input 300, output 30)");
    const stages = result.stdout.slice(result.stdout.indexOf("\nStages:\n"));
    const { header, rows } = parseTable(stages);
    expect(header).toEqual([
      "#",
      "Stage",
      "Status",
      "Try",
      "Rows In",
      "Rows Out",
      "LLM",
      "Tokens",
      "Duration",
      "Error",
    ]);
    expect(rows.map((r) => [r[0], r[1], r[2], r[6], r[7], r[8]])).toEqual([
      ["1", "load", "completed", "0", "0", "1.00s"],
      ["2", "summarize", "completed", "2", "330", "3.00s"],
      ["3", "publish", "completed", "0", "0", "500ms"],
    ]);
  });

  it("shows a failed run's error, its stage and its stack lines", async () => {
    const result = await show("abcdef01");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Status: +failed/);
    expect(result.stdout).toContain("Error (stage summarize):");
    const panel = linesOf(result.stdout);
    const errorAt = panel.findIndex((l) =>
      l.startsWith("│   TypeError: prompt exceeds model context limit "),
    );
    expect(errorAt).toBeGreaterThan(0);
    const stack = panel.slice(errorAt + 1).filter((l) => /^│ {5}at /.test(l));
    expect(stack.length).toBeGreaterThan(0);
    expect(stack[0]).toContain("show.test.ts");
    // The stack's own first line repeats the error: it is shown once.
    expect(result.stdout.split("TypeError: prompt exceeds model context limit")).toHaveLength(2);
    const { rows } = parseTable(result.stdout.slice(result.stdout.indexOf("\nStages:\n")));
    expect(rows.map((r) => [r[1], r[2], r[9]])).toEqual([
      ["load", "completed", ""],
      ["summarize", "failed", "prompt exceeds model context limit"],
    ]);
  });

  it("prints the run with a stages array with --json", async () => {
    const result = await show("1a2b3c4d", "--json");
    expect(result.code).toBe(0);
    const run = JSON.parse(result.stdout) as Record<string, unknown> & {
      stages: Record<string, unknown>[];
    };
    expect(run).toMatchObject({
      run_id: COMPLETED,
      trace_id: COMPLETED_TRACE,
      pipeline: "nightly-digest",
      status: "completed",
      started_at: new Date(now - 60 * MINUTE).toISOString(),
      llm_calls: 2,
      tokens: 330,
      input_tokens: 300,
      output_tokens: 30,
    });
    expect(run.stages.map((s) => [s.run_id, s.name, s.seq, s.status, s.tokens])).toEqual([
      [COMPLETED, "load", 0, "completed", 0],
      [COMPLETED, "summarize", 1, "completed", 330],
      [COMPLETED, "publish", 2, "completed", 0],
    ]);
    expect(run.stages[0]?.started_at).toBe(new Date(now - 60 * MINUTE + 100).toISOString());
  });

  it("exits 2 on an ambiguous prefix and lists every candidate's full run id", async () => {
    const result = await show("deadbeef");
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    const lines = linesOf(result.stderr);
    expect(lines[0]).toBe('runtrail: "deadbeef" matches 2 runs; give more of the id:');
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/)[0])).toEqual([TWIN_B, TWIN_A]);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it("tells runs with a shared prefix apart by one more digit", async () => {
    const result = await show("deadbeef-1");
    expect(result.code).toBe(0);
    expect(shownRunId(result.stdout)).toBe(TWIN_B);
  });

  it("exits 1 with one line when no run matches the prefix", async () => {
    const result = await show("99999999");
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe('runtrail: no run matches "99999999"\n');
  });

  it("exits 2 with one line and no stack trace when the prefix has fewer than 4 hex digits", async () => {
    const result = await show("abc");
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(linesOf(result.stderr)).toEqual([
      'runtrail: "abc" is too short: give at least 4 hex digits of a run id or trace id',
    ]);
  });

  it("exits 2 with one line and no stack trace when the prefix is not hex", async () => {
    const result = await show("run-42xyz");
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(linesOf(result.stderr)).toEqual([
      'runtrail: "run-42xyz" is not a run id or trace id: use hex digits',
    ]);
  });

  it("exits 2 when given no prefix or two", async () => {
    const none = await runtrail(["show", "--db", db]);
    expect(none.code).toBe(2);
    expect(linesOf(none.stderr)).toEqual(["runtrail: show takes one run id or trace id prefix"]);
    const two = await show("1a2b", "abcd");
    expect(two.code).toBe(2);
    expect(linesOf(two.stderr)).toHaveLength(1);
  });
});

describe("runtrail show: artifacts, resumed and reused runs", () => {
  const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  let filesDb: string;
  let resumedId: string;
  let reusedId: string;

  beforeAll(async () => {
    filesDb = sharedStore();
    const t = recorder(filesDb);
    resumedId = await runPipeline(
      "with-files",
      { tracer: t.tracer, store: filesDb, attributes: { [R.resumedFrom]: FAILED } },
      async (run) => {
        await run.artifact("input", "hello");
        run.cachedStage("load", { cachedFrom: FAILED });
        await run.stage("render", async (stage) => {
          await stage.artifact("image", PNG);
          await stage.artifact("report", "x".repeat(2500), undefined, {
            mediaType: "text/markdown",
          });
        });
        return run.runId;
      },
    );
    reusedId = await runPipeline(
      "reused",
      { tracer: t.tracer, store: filesDb, attributes: { [R.runCachedFrom]: COMPLETED } },
      (run) => run.runId,
    );
    await finish(t);
  });

  it("lists the run's artifacts with their folder", async () => {
    const result = await runtrail(["show", resumedId, "--db", filesDb]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const at = result.stdout.indexOf("\nArtifacts: ");
    expect(at).toBeGreaterThan(result.stdout.indexOf("\nStages:\n"));
    const section = result.stdout.slice(at + 1);
    expect(linesOf(section)[0]).toBe(
      `Artifacts: ${join(dirname(filesDb), "artifacts", resumedId)}${sep}`,
    );
    const { header, rows } = parseTable(section);
    expect(header).toEqual(["#", "Kind", "File", "Media Type", "Size", "Stage"]);
    expect(rows).toEqual([
      ["1", "input", "01_input.txt", "text/plain; charset=utf-8", "5 B", "-"],
      ["2", "image", "02_image.png", "image/png", "12 B", "render"],
      ["3", "report", "03_report.md", "text/markdown", "2.5 kB", "render"],
    ]);
  });

  it("lists them the same through the runtrail server that holds the store", async () => {
    const direct = await runtrail(["show", resumedId, "--db", filesDb]);
    const server = start(process.execPath, [
      CLI,
      "serve",
      "--db",
      filesDb,
      "--port",
      "0",
      "--json",
    ]);
    try {
      const { url } = JSON.parse(await server.line((l) => l.startsWith("{"), 60_000)) as {
        url: string;
      };
      const byClaim = await runtrail(["show", resumedId, "--db", filesDb]);
      expect(byClaim.stdout).toBe(direct.stdout);
      const byUrl = await runtrail(["show", resumedId, "--db", filesDb, "--url", url]);
      expect(byUrl.stdout).toBe(direct.stdout);
      // A server named alone may keep its store anywhere.
      const elsewhere = await runtrail(["show", resumedId, "--url", url], {
        env: { RUNTRAIL_DB: "" },
      });
      expect(elsewhere.stdout).toContain(
        `Artifacts: artifacts/${resumedId}/ next to the server's store\n`,
      );
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });

  it("shows the run it resumed and its cached stage", async () => {
    const result = await runtrail(["show", resumedId, "--db", filesDb]);
    expect(result.stdout).toContain(`│ Resumed from: ${FAILED} `);
    expect(result.stdout).not.toContain("Reused from:");
    const stages = result.stdout.slice(
      result.stdout.indexOf("\nStages:\n"),
      result.stdout.indexOf("\nArtifacts: "),
    );
    expect(parseTable(stages).rows.map((r) => [r[1], r[2]])).toEqual([
      ["load", "cached"],
      ["render", "completed"],
    ]);
  });

  it("paints a cached stage cyan with FORCE_COLOR=1", async () => {
    const result = await runtrail(["show", resumedId, "--db", filesDb], {
      env: { NO_COLOR: "", FORCE_COLOR: "1" },
    });
    const stages = result.stdout.slice(result.stdout.indexOf("\nStages:\n"));
    expect(parseTable(stages).rows[0]?.[2]).toBe("\u001b[36mcached\u001b[0m");
  });

  it("shows the run whose output a run reused, and no artifacts section when it has none", async () => {
    const result = await runtrail(["show", reusedId, "--db", filesDb]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`│ Reused from:  ${COMPLETED} `);
    expect(result.stdout).not.toContain("Resumed from:");
    expect(result.stdout).not.toContain("Artifacts:");
  });

  it("gives the artifacts, resumed_from and cached stages in --json", async () => {
    const result = await runtrail(["show", resumedId, "--json", "--db", filesDb]);
    const run = JSON.parse(result.stdout) as {
      resumed_from: string;
      artifacts: ArtifactRow[];
      stages: { name: string; status: string; cached_from: string | null }[];
    };
    expect(run.resumed_from).toBe(FAILED);
    expect(run.artifacts.map((a) => [a.seq, a.file, a.size, a.stage])).toEqual([
      [1, "01_input.txt", 5, null],
      [2, "02_image.png", 12, "render"],
      [3, "03_report.md", 2500, "render"],
    ]);
    expect(run.stages[0]).toMatchObject({ name: "load", status: "cached", cached_from: FAILED });
  });
});
