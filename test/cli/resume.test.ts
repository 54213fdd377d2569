/**
 * `runtrail resume` on runs a separate program recorded: the pipeline lives in a plain ESM module
 * that imports the built package, as a user's module does; it runs once as a program (and
 * fails), then the built CLI imports it and resumes the run in a process of its own.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { definePipeline } from "../../src/pipeline/define-pipeline.js";
import type { RunRow } from "../../src/record/rows.js";
import { CLI, ROOT } from "../helpers/paths.js";
import { type Finished, runtrail, start } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempDir } from "../helpers/temp-dir.js";
import { finish, linesOf, recorder, sharedDir, short } from "./_fixtures.js";

const PACKAGE_URL = pathToFileURL(join(ROOT, "dist", "index.js")).href;
const SDK_URL = pathToFileURL(
  createRequire(import.meta.url).resolve("@opentelemetry/sdk-trace-node"),
).href;

const STAGES = ["fetch", "clean", "summarize", "review", "publish"];

/** The stages called by the failed run, then by the run that resumed it at summarize. */
const FAILED_THEN_RESUMED = ["fetch", "clean", "summarize", "summarize", "review", "publish"];

/**
 * Five stages; each appends its name to the file CALLS_FILE names, the third throws while the
 * file FAIL_FLAG names exists, and the one HANG_AT names never ends. Run as a program it makes one run into STORE; imported, it
 * only defines the pipeline.
 */
const PIPELINE_MODULE = `import { appendFileSync, existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { NodeTracerProvider } from ${JSON.stringify(SDK_URL)};
import { definePipeline, RunTrailSpanProcessor } from ${JSON.stringify(PACKAGE_URL)};

export const pipeline = definePipeline({
  name: "five-stages",
  module: import.meta.url,
  stages: ${JSON.stringify(STAGES)}.map((name, i) => ({
    name,
    run(input) {
      appendFileSync(process.env.CALLS_FILE, name + "\\n");
      if (i === 2 && existsSync(process.env.FAIL_FLAG)) throw new Error(name + " broke");
      if (process.env.HANG_AT === name) return new Promise(() => setInterval(() => {}, 1000));
      return { trail: [...input.trail, name] };
    },
  })),
});

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const provider = new NodeTracerProvider({
    spanProcessors: [new RunTrailSpanProcessor({ db: process.env.STORE })],
  });
  try {
    const output = await pipeline.run(
      { trail: [] },
      { tracer: provider.getTracer("five-stages"), store: process.env.STORE },
    );
    console.log(JSON.stringify(output));
  } catch (error) {
    console.error(String(error));
    process.exitCode = 1;
  } finally {
    await provider.shutdown();
  }
}
`;

interface ProgramRun {
  dir: string;
  store: string;
  calls: string;
  flag: string;
  env: NodeJS.ProcessEnv;
  /** The failed run. */
  run: RunRow;
}

/** Writes the pipeline module into `dir` and runs it as a program with the fail flag set. */
async function failedProgramRun(dir: string): Promise<ProgramRun> {
  const module = join(dir, "five-stages.mjs");
  writeFileSync(module, PIPELINE_MODULE);
  const store = join(dir, "runs.duckdb");
  const calls = join(dir, "calls.txt");
  const flag = join(dir, "fail");
  writeFileSync(flag, "");
  const env = { STORE: store, CALLS_FILE: calls, FAIL_FLAG: flag };
  const program = await start(process.execPath, [module], { env }).exited;
  expect(program.stderr).toContain("Error: summarize broke");
  expect(program.code).toBe(1);
  const runs = await storedRuns(store);
  expect(runs).toHaveLength(1);
  const run = runs[0] as RunRow;
  expect(run).toMatchObject({
    status: "failed",
    failed_stage: "summarize",
    entry_point: pathToFileURL(module).href,
  });
  return { dir, store, calls, flag, env, run };
}

function callsOf(p: ProgramRun): string[] {
  return linesOf(readFileSync(p.calls, "utf8"));
}

/** `runtrail resume` in a child process, with the module's environment. */
function resume(p: ProgramRun, ...args: string[]): Promise<Finished> {
  return runtrail(["resume", ...args, "--db", p.store], { env: p.env });
}

async function shownRun(
  p: ProgramRun,
  runId: string,
): Promise<RunRow & { stages: { name: string; status: string; cached_from: string | null }[] }> {
  const shown = await runtrail(["show", runId, "--json", "--db", p.store]);
  expect(shown.code).toBe(0);
  return JSON.parse(shown.stdout);
}

describe("runtrail resume", () => {
  let p: ProgramRun;
  let result: Finished;
  let newRunId: string;

  beforeAll(async () => {
    p = await failedProgramRun(sharedDir());
    rmSync(p.flag);
    result = await resume(p, short(p.run.run_id));
    newRunId = /^Run ([0-9a-f-]{36}) /m.exec(result.stdout)?.[1] ?? "";
  });

  it("resumes the failed run at the stage that failed and reports each stage", () => {
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = linesOf(result.stdout);
    expect(lines[0]).toBe(`Resuming run ${p.run.run_id} (five-stages)`);
    expect(lines[1]).toBe("  Failed at:     summarize - Error: summarize broke");
    const from = short(p.run.run_id);
    expect(lines.slice(2, 7).map((l) => l.replace(/\(\d+(ms|\.\d+s)\)$/, "(T)"))).toEqual([
      `  [1/5] fetch      reused from ${from}`,
      `  [2/5] clean      reused from ${from}`,
      "  [3/5] summarize  ✓ completed (T)",
      "  [4/5] review     ✓ completed (T)",
      "  [5/5] publish    ✓ completed (T)",
    ]);
    expect(lines[7]).toBe(`Run ${newRunId} completed`);
    expect(lines).toHaveLength(8);
    expect(newRunId).not.toBe(p.run.run_id);
  });

  it("runs stages 1 and 2 once in all, and stages 3 to 5 in the resumed run", () => {
    // The resumed run's calls come from the CLI's process.
    expect(callsOf(p)).toEqual(FAILED_THEN_RESUMED);
  });

  it("records the new run as resumed from the failed one, its first stages cached", async () => {
    const run = await shownRun(p, newRunId);
    expect(run).toMatchObject({
      run_id: newRunId,
      pipeline: "five-stages",
      status: "completed",
      resumed_from: p.run.run_id,
      retry_count: 1,
      stages_completed: 5,
      entry_point: p.run.entry_point,
      input_snapshot: p.run.input_snapshot,
    });
    expect(run.stages.map((s) => [s.name, s.status])).toEqual([
      ["fetch", "cached"],
      ["clean", "cached"],
      ["summarize", "completed"],
      ["review", "completed"],
      ["publish", "completed"],
    ]);
    expect(run.stages.slice(0, 2).map((s) => s.cached_from)).toEqual([p.run.run_id, p.run.run_id]);
  });

  it("shows the resumed run with the run it resumed", async () => {
    const shown = await runtrail(["show", newRunId, "--db", p.store]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`│ Resumed from: ${p.run.run_id} `);
    expect(shown.stdout).toMatch(/│ \d │ fetch +│ cached +│/);
  });

  it("refuses to resume the completed run, with the reason", async () => {
    const again = await resume(p, newRunId);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(linesOf(again.stderr)).toEqual([
      `runtrail: run ${newRunId} is completed: only failed, crashed or timed-out runs can be resumed`,
    ]);
    expect(callsOf(p)).toHaveLength(6);
  });
});

describe("runtrail resume --json", () => {
  it("prints the new run's id, the run it resumed, its status and its output", async () => {
    const p = await failedProgramRun(tempDir());
    rmSync(p.flag);
    const result = await resume(p, p.run.run_id, "--json");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(printed)).toEqual(["run_id", "resumed_from", "status", "output"]);
    expect(printed).toMatchObject({
      resumed_from: p.run.run_id,
      status: "completed",
      output: { trail: STAGES },
    });
    const runs = await storedRuns(p.store);
    expect(runs.find((r) => r.run_id === printed.run_id)?.resumed_from).toBe(p.run.run_id);
  });
});

describe("runtrail resume of a run that fails again", () => {
  it("prints the failed stage, says why on stderr and exits 1", async () => {
    const p = await failedProgramRun(tempDir());
    const result = await resume(p, short(p.run.run_id));
    expect(result.code).toBe(1);
    const lines = linesOf(result.stdout);
    expect(lines[4]).toMatch(/^ {2}\[3\/5\] summarize {2}✗ failed \(\d+(ms|\.\d+s)\)$/);
    const newRunId = /^Run ([0-9a-f-]{36}) failed$/.exec(lines.at(-1) ?? "")?.[1] ?? "";
    expect(newRunId).not.toBe("");
    expect(linesOf(result.stderr)).toEqual([
      `runtrail: run ${newRunId} failed in stage summarize: Error: summarize broke`,
    ]);
    expect(callsOf(p)).toEqual(["fetch", "clean", "summarize", "summarize"]);
    const run = await shownRun(p, newRunId);
    expect(run).toMatchObject({
      status: "failed",
      resumed_from: p.run.run_id,
      retry_count: 1,
      failed_stage: "summarize",
    });
    // That run can be resumed in turn.
    rmSync(p.flag);
    const third = await resume(p, newRunId);
    expect(third.code).toBe(0);
    expect(callsOf(p).slice(4)).toEqual(["summarize", "review", "publish"]);
    const last = /^Run ([0-9a-f-]{36}) completed$/m.exec(third.stdout)?.[1] ?? "";
    expect(await shownRun(p, last)).toMatchObject({ resumed_from: newRunId, retry_count: 2 });
  });
});

describe("runtrail resume while the runtrail server holds the store", () => {
  it("reads the failed run through the server and hands the new run to it", async () => {
    const p = await failedProgramRun(tempDir());
    rmSync(p.flag);
    const server = start(process.execPath, [
      CLI,
      "serve",
      "--db",
      p.store,
      "--port",
      "0",
      "--json",
    ]);
    try {
      const { url } = JSON.parse(await server.line((l) => l.startsWith("{"), 60_000));
      const result = await resume(p, short(p.run.run_id));
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(linesOf(result.stdout).at(-1)).toMatch(/^Run [0-9a-f-]{36} completed$/);
      expect(callsOf(p)).toEqual(FAILED_THEN_RESUMED);

      // Named by --url with another store here, the server's store is elsewhere: nothing runs.
      const elsewhere = join(tempDir(), "runs.duckdb");
      const refused = await runtrail(
        ["resume", short(p.run.run_id), "--url", url, "--db", elsewhere],
        { env: p.env },
      );
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        `runtrail: run ${p.run.run_id} was read through a server whose store is not here (--url or RUNTRAIL_URL): resume it on the machine that holds that store\n`,
      );
      expect(callsOf(p)).toEqual(FAILED_THEN_RESUMED);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
    const resumed = (await storedRuns(p.store)).find((r) => r.resumed_from === p.run.run_id);
    expect(resumed).toMatchObject({ status: "completed", retry_count: 1, stages_completed: 5 });
  });
});

describe("runtrail resume interrupted", () => {
  it("stops at Ctrl-C with exit 130, leaving a crashed run that resumes in turn", async () => {
    const p = await failedProgramRun(tempDir());
    rmSync(p.flag);
    const resuming = start(process.execPath, [CLI, "resume", p.run.run_id, "--db", p.store], {
      env: { ...p.env, HANG_AT: "review" },
    });
    await resuming.line((l) => l.includes("[3/5] summarize"));
    resuming.child.kill("SIGINT");
    const stopped = await resuming.exited;
    expect(stopped.code).toBe(130);
    const interrupted = /^runtrail: interrupted: run ([0-9a-f-]{36}) stops here/.exec(
      stopped.stderr,
    )?.[1];
    expect(interrupted).toBeDefined();

    const result = await resume(p, interrupted ?? "");
    expect(result.code).toBe(0);
    const lines = linesOf(result.stdout);
    expect(lines[1]).toMatch(/^ {2}Crashed: {7}its process \(pid \d+ on .+\) is gone/);
    expect(lines.slice(2, 5)).toEqual(
      ["fetch    ", "clean    ", "summarize"].map(
        (name, i) => `  [${i + 1}/5] ${name}  reused from ${short(interrupted ?? "")}`,
      ),
    );
    expect(callsOf(p)).toEqual([
      "fetch",
      "clean",
      "summarize",
      "summarize",
      "review",
      "review",
      "publish",
    ]);
    const last = /^Run ([0-9a-f-]{36}) completed$/m.exec(result.stdout)?.[1] ?? "";
    // The crashed run had counted the failed run as a try; this one counts both.
    expect(await shownRun(p, interrupted ?? "")).toMatchObject({
      status: "crashed",
      retry_count: 1,
    });
    expect(await shownRun(p, last)).toMatchObject({
      resumed_from: interrupted,
      status: "completed",
      retry_count: 2,
    });
  });
});

/** A run of a pipeline defined in this process, failed in its only stage. */
async function failedInProcess(db: string, pipeline: string, module?: string): Promise<string> {
  const t = recorder(db);
  const defined = definePipeline({
    name: pipeline,
    ...(module !== undefined ? { module } : {}),
    stages: [
      {
        name: "only",
        run: () => {
          throw new Error("no");
        },
      },
    ],
  });
  await expect(defined.run("input", { tracer: t.tracer, store: db })).rejects.toThrow("no");
  await finish(t);
  const run = (await storedRuns(db)).find((r) => r.pipeline === pipeline);
  expect(run?.status).toBe("failed");
  return run?.run_id ?? "";
}

describe("runtrail resume refuses", () => {
  let db: string;
  let dir: string;

  beforeAll(() => {
    dir = sharedDir();
    db = join(dir, "runs.duckdb");
  });

  it("a run with no recorded entry point", async () => {
    const runId = await failedInProcess(db, "no-module");
    const result = await runtrail(["resume", short(runId), "--db", db]);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      `runtrail: run ${runId} has no recorded entry point: define its pipeline with definePipeline({ module: import.meta.url, ... }) or resume it from its program with pipeline.resume(id)`,
    ]);
  });

  it("a run whose module cannot be loaded", async () => {
    const gone = pathToFileURL(join(dir, "gone.mjs")).href;
    const runId = await failedInProcess(db, "module-gone", gone);
    const result = await runtrail(["resume", runId, "--db", db]);
    expect(result.code).toBe(1);
    const lines = linesOf(result.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^runtrail: cannot load ${gone}, the entry point of run ${runId}: .*gone\\.mjs`),
    );
  });

  it("a TypeScript module without a loader, saying how to give one", async () => {
    const source = join(dir, "pipeline.ts");
    // An enum: not even Node's own type stripping loads it.
    writeFileSync(source, "export enum Shade {\n  Dark,\n}\n");
    const runId = await failedInProcess(db, "typescript", pathToFileURL(source).href);
    const result = await runtrail(["resume", short(runId), "--db", db]);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)[1]).toBe(
      `  a TypeScript module needs a loader: NODE_OPTIONS="--import tsx" runtrail resume ${short(runId)}`,
    );
  });

  it("a run whose module exports no pipeline of that name", async () => {
    const other = join(dir, "other.mjs");
    writeFileSync(
      other,
      `import { definePipeline } from ${JSON.stringify(PACKAGE_URL)};\n` +
        `export const someOther = definePipeline({ name: "some-other", stages: [{ name: "a", run: (x) => x }] });\n` +
        "export default 42;\n",
    );
    const url = pathToFileURL(other).href;
    const runId = await failedInProcess(db, "not-exported", url);
    const result = await runtrail(["resume", short(runId), "--db", db]);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      `runtrail: ${url} exports no pipeline named "not-exported" (it exports "some-other")`,
    ]);
  });

  it("an id no run has, and a store that does not exist", async () => {
    await failedInProcess(db, "present");
    const unknown = await runtrail(["resume", "99999999", "--db", db]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('runtrail: no run matches "99999999"\n');
    const missing = join(tempDir(), "none.duckdb");
    const nowhere = await runtrail(["resume", "99999999", "--db", missing]);
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toBe(
      `runtrail: no run matches "99999999": there is no store at ${missing}\n`,
    );
  });

  it("a prefix that is not one, and no prefix or two", async () => {
    const bad = await runtrail(["resume", "xyz", "--db", db]);
    expect(bad.code).toBe(2);
    expect(linesOf(bad.stderr)).toEqual([
      'runtrail: "xyz" is not a run id or trace id: use hex digits',
    ]);
    const none = await runtrail(["resume", "--db", db]);
    expect(none.code).toBe(2);
    expect(linesOf(none.stderr)).toEqual(["runtrail: resume takes one run id or trace id prefix"]);
    const two = await runtrail(["resume", "abcd", "abce", "--db", db]);
    expect(two.code).toBe(2);
  });
});

describe("runtrail --help", () => {
  it("lists resume, and resume --help gives its usage", async () => {
    const overview = await runtrail(["--help"]);
    expect(overview.stdout).toMatch(/^ {2}resume +resume a failed run/m);
    const help = await runtrail(["resume", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: runtrail resume <run-id-or-trace-id-prefix>/);
    expect(help.stdout).toContain("--url URL");
  });
});
