import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { START_MARKER_KIND, START_MARKER_NAME } from "../../src/record/start-marker.js";
import { eventually } from "../helpers/eventually.js";
import { exitWithin, serveOnAnyPort, start, stoppedAfterEach } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * A pipeline in its own process, as a user writes one: the package's public `runPipeline`
 * (the built package, imported by its name), the OpenTelemetry SDK, and a BatchSpanProcessor
 * with the OTLP/HTTP exporter sending to `RT_URL`. It prints its run id, then `stage hold
 * started` once inside its first stage, where it stays until the file `RT_GO` exists; then a
 * second stage, a flush, and `done`. `RT_MARKER=off` passes `startMarker: false`.
 */
const PIPELINE = `
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { DiagLogLevel, diag } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { runPipeline } from "runtrail";

const env = process.env;
diag.setLogger(
  {
    error: (...a) => process.stderr.write("diag error: " + a.join(" ") + "\\n"),
    warn: (...a) => process.stderr.write("diag warn: " + a.join(" ") + "\\n"),
    info: () => undefined,
    debug: () => undefined,
    verbose: () => undefined,
  },
  DiagLogLevel.WARN,
);
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": env.RT_SERVICE }),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: env.RT_URL + "/v1/traces" }), {
      scheduledDelayMillis: 100,
    }),
  ],
});
provider.register();
const options = { stages: 2, store: env.RT_STORE };
if (env.RT_MARKER === "off") options.startMarker = false;
await runPipeline(env.RT_PIPELINE, options, async (run) => {
  process.stdout.write("run " + run.runId + "\\n");
  await run.stage("hold", async () => {
    process.stdout.write("stage hold started\\n");
    while (!existsSync(env.RT_GO)) await sleep(20);
  });
  await run.stage("finish", () => undefined);
});
await provider.shutdown();
process.stdout.write("done\\n");
`;

const SERVICE = "start-marker-service";

/** Every child process a test started, stopped after it. */
const track = stoppedAfterEach();

/** `runtrail serve` on a loopback port the OS chooses, open (no tokens); resolves once it listens. */
async function serve(db: string): Promise<string> {
  const env = { RUNTRAIL_TOKENS: undefined, RUNTRAIL_TOKENS_FILE: undefined };
  return (await serveOnAnyPort(track, db, { env })).url;
}

/** The pipeline process, sending to `url`; resolves once it is inside its `hold` stage. */
async function startPipeline(url: string, dir: string, pipeline: string, marker: "on" | "off") {
  const go = join(dir, "go");
  const process_ = start(process.execPath, ["--input-type=module", "--eval", PIPELINE], {
    env: {
      RT_URL: url,
      RT_GO: go,
      RT_MARKER: marker,
      RT_PIPELINE: pipeline,
      RT_SERVICE: SERVICE,
      RT_STORE: join(dir, "pipeline.duckdb"),
      OTEL_TRACES_EXPORTER: undefined,
      OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
      OTEL_EXPORTER_OTLP_HEADERS: undefined,
      OTEL_BSP_SCHEDULE_DELAY: undefined,
    },
  });
  track(process_);
  const runLine = await process_.line((l) => l.startsWith("run "), 20_000);
  await process_.line((l) => l === "stage hold started", 20_000);
  const inStageAt = Date.now();
  return {
    process: process_,
    runId: runLine.slice("run ".length),
    inStageAt,
    /** Lets the pipeline leave its stage and finish. */
    release: () => writeFileSync(go, ""),
  };
}

/** The server's runs, as GET /api/runs answers them. */
async function listedRuns(url: string): Promise<RunRow[]> {
  const response = await fetch(`${url}/api/runs?limit=1000`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { runs: RunRow[] }).runs;
}

async function runWithStages(url: string, runId: string) {
  const response = await fetch(`${url}/api/runs/${runId}`);
  expect(response.status).toBe(200);
  return (await response.json()) as RunRow & { stages: StageRow[] };
}

/** The run once the server has it completed, with its stages. */
function completedRun(url: string, runId: string) {
  return eventually(async () => {
    const run = await runWithStages(url, runId);
    expect(run.status).toBe("completed");
    return run;
  }, 5_000);
}

/**
 * Releases the pipeline, checks its exit, and returns its run once the server has it completed
 * under `name`, with both its stages.
 */
async function completedWithBothStages(
  url: string,
  pipeline: Awaited<ReturnType<typeof startPipeline>>,
  name: string,
) {
  await finished(pipeline);
  const done = await completedRun(url, pipeline.runId);
  expect(done).toMatchObject({
    run_id: pipeline.runId,
    pipeline: name,
    service_name: SERVICE,
    stages_completed: 2,
  });
  expect(done.stages.map((s) => [s.name, s.status])).toEqual([
    ["hold", "completed"],
    ["finish", "completed"],
  ]);
  return done;
}

/** The pipeline's exit once released: code 0, nothing on stderr, `done` printed. */
async function finished(pipeline: Awaited<ReturnType<typeof startPipeline>>) {
  pipeline.release();
  const exit = await exitWithin(15_000, "the pipeline to finish", pipeline.process);
  expect(exit.stderr).toBe("");
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(exit.stdout.trim().split("\n").at(-1)).toBe("done");
}

describe(`the start marker (${START_MARKER_NAME}, kind ${START_MARKER_KIND}) over OTLP`, () => {
  it("makes a remote pipeline's run show as running, with its name, while it is in its first stage", async () => {
    const dir = tempDir();
    const url = await serve(join(dir, "served.duckdb"));
    const pipeline = await startPipeline(url, dir, "marker-on-pipeline", "on");

    // The run span is only exported when the run ends, and no stage has ended: only the marker
    // can tell the server of the run while the pipeline holds.
    const running = await eventually(async () => {
      const runs = await listedRuns(url);
      const run = runs.find((r) => r.run_id === pipeline.runId);
      expect(run, JSON.stringify(runs)).toBeDefined();
      return run as RunRow;
    }, 5_000);
    expect(Date.now() - pipeline.inStageAt).toBeLessThan(5_000);
    expect(pipeline.process.child.exitCode, "the pipeline still holds").toBeNull();
    expect(pipeline.process.stdout()).not.toContain("done");
    expect(running).toMatchObject({
      run_id: pipeline.runId,
      pipeline: "marker-on-pipeline",
      service_name: SERVICE,
      status: "running",
      finished_at: null,
      stages_expected: 2,
    });
    // The marker is neither a stage nor a run of its own.
    const whileRunning = await runWithStages(url, pipeline.runId);
    expect(whileRunning.status).toBe("running");
    expect(whileRunning.stages.map((s) => s.name)).not.toContain(START_MARKER_NAME);
    expect((await listedRuns(url)).map((r) => r.run_id)).toEqual([pipeline.runId]);

    const done = await completedWithBothStages(url, pipeline, "marker-on-pipeline");
    expect(done.finished_at).not.toBeNull();
    expect((await listedRuns(url)).map((r) => r.run_id)).toEqual([pipeline.runId]);
  });

  it("without it (startMarker: false), the server learns of the run only when it ends", async () => {
    const dir = tempDir();
    const url = await serve(join(dir, "served.duckdb"));
    const pipeline = await startPipeline(url, dir, "marker-off-pipeline", "off");

    // Fifteen export intervals of the BatchSpanProcessor and more: nothing has ended, so
    // nothing is sent.
    await sleep(Math.max(0, pipeline.inStageAt + 1_500 - Date.now()));
    expect(pipeline.process.child.exitCode, "the pipeline still holds").toBeNull();
    expect(await listedRuns(url)).toEqual([]);
    const missing = await fetch(`${url}/api/runs/${pipeline.runId}`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();

    await completedWithBothStages(url, pipeline, "marker-off-pipeline");
  });
});
