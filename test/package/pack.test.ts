/**
 * The package as a user gets it: packed by npm (its `prepare` script builds dist), installed
 * from the tarball into a fresh ESM project next to the OpenTelemetry SDK, then imported from
 * JavaScript, type-checked from TypeScript and run as the `runtrail` command.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Finished, start } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";

/**
 * The environment of a user's shell: without the `npm_*` variables of the npm that started the
 * tests (they would point the inner npm at this repository) and without Node options of ours.
 */
function userEnv(): NodeJS.ProcessEnv {
  const unset: NodeJS.ProcessEnv = { NODE_OPTIONS: undefined, INIT_CWD: undefined };
  for (const key of Object.keys(process.env)) {
    if (key.toLowerCase().startsWith("npm_")) unset[key] = undefined;
  }
  return unset;
}

async function run(command: string, args: readonly string[], cwd: string): Promise<Finished> {
  const finished = await start(command, args, { cwd, env: userEnv() }).exited;
  console.log(
    `[pack test] ${command} ${args.join(" ")}: exit ${finished.code} in ${finished.ms} ms`,
  );
  return finished;
}

/** Fails with the command's output when it did not exit 0. */
function expectSuccess(finished: Finished, what: string): void {
  expect(finished.code, `${what}\nstdout:\n${finished.stdout}\nstderr:\n${finished.stderr}`).toBe(
    0,
  );
}

const SMOKE_JS = `import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { RunTrailAttributes, RunTrailSpanProcessor } from "runtrail";

const processor = new RunTrailSpanProcessor({ db: process.argv[2] });
const provider = new BasicTracerProvider({ spanProcessors: [processor] });
const tracer = provider.getTracer("pack-smoke");
const run = tracer.startSpan("packed-run", {
  attributes: { [RunTrailAttributes.pipeline]: "packed-pipeline" },
});
const stage = tracer.startSpan("load", {}, trace.setSpan(context.active(), run));
stage.end();
run.end();
await processor.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ db: processor.db, stats: processor.stats }));
`;

const CHECK_TS = `import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import {
  RUN_STATUSES,
  type RunRow,
  type RunStatus,
  RunTrailAttributes,
  RunTrailSpanProcessor,
  type RunTrailSpanProcessorOptions,
  type RunTrailStats,
  type SpanView,
} from "runtrail";

const options: RunTrailSpanProcessorOptions = {
  db: "runs.duckdb",
  enabled: false,
  rootSpansAreRuns: false,
  isRun: (span: SpanView) => span.attributes[RunTrailAttributes.kind] === "run",
};
const processor: SpanProcessor = new RunTrailSpanProcessor(options);
export const provider = new BasicTracerProvider({ spanProcessors: [processor] });
export const stats: RunTrailStats = new RunTrailSpanProcessor(options).stats;
export const hookErrors: number = stats.hookErrors;
export const statuses: readonly RunStatus[] = RUN_STATUSES;
export const kind: "runtrail.kind" = RunTrailAttributes.kind;
export function pipelineOf(row: RunRow): string {
  return row.pipeline;
}
// @ts-expect-error not a run status: proves the package's types are read, not taken for any
export const wrong: RunStatus = "exploded";
`;

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    // DOM only for the \`console\` that @opentelemetry/api's declarations name (Node projects
    // get it from @types/node, which this project does not install).
    lib: ["ES2022", "DOM"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    verbatimModuleSyntax: true,
    skipLibCheck: false,
    types: [],
    noEmit: true,
  },
  files: ["check.ts"],
};

describe("the packed package, installed as a user would", () => {
  let work = "";
  let tarball = "";
  let app = "";
  let store = "";

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "runtrail-pack-"));
    // dist/ is built by the test setup; packing without scripts keeps it untouched under other tests.
    const packed = await run(
      "npm",
      ["pack", "--ignore-scripts", "--pack-destination", work],
      process.cwd(),
    );
    expectSuccess(packed, "npm pack");
    const tarballs = readdirSync(work).filter((f) => f.endsWith(".tgz"));
    expect(tarballs).toHaveLength(1);
    tarball = join(work, tarballs[0] as string);

    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(
      join(app, "package.json"),
      `${JSON.stringify({ name: "runtrail-user", private: true, type: "module" }, null, 2)}\n`,
    );
    const installed = await run(
      "npm",
      [
        "install",
        tarball,
        "@opentelemetry/api@1.9",
        "@opentelemetry/sdk-trace-base@2",
        "typescript@5.9",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
      ],
      app,
    );
    expectSuccess(installed, "npm install");
    store = join(app, "store", "runs.duckdb");
  }, 240_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("ships dist and its manifest, but no sources, tests or build info", async () => {
    const listed = await run("tar", ["-tzf", tarball], work);
    expectSuccess(listed, "tar -tzf");
    const files = listed.stdout.split("\n").filter((line) => line.length > 0);
    expect(files).toEqual(
      expect.arrayContaining([
        "package/package.json",
        "package/dist/index.js",
        "package/dist/index.d.ts",
        "package/dist/cli/main.js",
      ]),
    );
    expect(files.filter((f) => /^package\/(src|test|bench)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\/(src|test|tests)\/|\.test\.|\.tsbuildinfo$/.test(f))).toEqual([]);
    // Nothing but the build, the manifest and the usual documents.
    expect(
      files.filter(
        (f) =>
          !f.startsWith("package/dist/") &&
          !/^package\/(package\.json|README\.md|LICENSE)$/.test(f),
      ),
    ).toEqual([]);
  });

  it("records a run from an ESM file that imports it by name", async () => {
    writeFileSync(join(app, "smoke.js"), SMOKE_JS);
    const ran = await run(process.execPath, ["smoke.js", "store/runs.duckdb"], app);
    expectSuccess(ran, "node smoke.js");
    const printed = JSON.parse(ran.stdout.trim().split("\n").at(-1) ?? "{}") as {
      db?: string;
      stats?: { runRowsWritten: number; stageRowsWritten: number; hookErrors: number };
    };
    expect(printed.db).toBe(store);
    expect(existsSync(store)).toBe(true);
    expect(printed.stats).toMatchObject({ stageRowsWritten: 1, hookErrors: 0 });
    // Read back with this repository's own reader: the same store format.
    const runs = await storedRuns(store);
    expect(runs.map((r) => [r.pipeline, r.status, r.stages_executed])).toEqual([
      ["packed-pipeline", "completed", ["load"]],
    ]);
  }, 60_000);

  it("type-checks from TypeScript with NodeNext resolution and strict settings", async () => {
    writeFileSync(join(app, "check.ts"), CHECK_TS);
    writeFileSync(join(app, "tsconfig.json"), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
    const checked = await run(
      join(app, "node_modules", ".bin", "tsc"),
      ["--noEmit", "-p", "tsconfig.json"],
      app,
    );
    expectSuccess(checked, "tsc --noEmit");
    expect(checked.stdout).toBe("");
  }, 60_000);

  it("installs the runtrail command, which lists the run recorded above", async () => {
    expect(existsSync(store), "the ESM test above records the store this one reads").toBe(true);
    const tail = await run(
      join(app, "node_modules", ".bin", "runtrail"),
      ["tail", "--db", store],
      app,
    );
    expectSuccess(tail, "runtrail tail");
    expect(tail.stdout).toContain("packed-pipeline");
    expect(tail.stdout).toContain("completed");
  }, 60_000);
});
