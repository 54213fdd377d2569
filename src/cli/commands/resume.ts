import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { RunTrailSpanProcessor } from "../../ingest/span-processor.js";
import {
  isPipeline,
  type Pipeline,
  RESUMABLE_STATUSES,
  type StageProgress,
} from "../../pipeline/define-pipeline.js";
import type { RunRow } from "../../record/rows.js";
import { formatSeconds } from "../../util/duration.js";
import { COMMON_OPTIONS, COMMON_USAGE, type Command } from "../_command.js";
import { jsonOf, shortId } from "../_format.js";
import { URL_USAGE } from "../_remote.js";
import { paint, paintStatus, type Style } from "../_style.js";
import { CliError, ExitCode } from "../cli-error.js";
import { findRun } from "./show.js";

/** How a run stopped, with the stage it stopped in and without. */
const STOPPED: Record<string, [inStage: string, alone: string]> = {
  failed: ["Failed at:", "Failed:"],
  crashed: ["Crashed at:", "Crashed:"],
  timed_out: ["Timed out at:", "Timed out:"],
};

/** `  Failed at:     summarize - Error: ...`: where and why the run stopped. */
function stoppedLine(run: RunRow): string {
  const stage = run.failed_stage ?? run.current_stage;
  const why = run.error ?? run.status_reason;
  const [inStage, alone] = STOPPED[run.status] ?? ["Stopped at:", "Stopped:"];
  const label = stage ? inStage : alone;
  return `  ${label.padEnd(15)}${[stage, why].filter((t) => t).join(" - ") || "-"}`;
}

/** `Type: message` of what a pipeline threw. */
function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The module a run recorded, as a URL `import()` takes: a path is taken from here. */
function moduleUrlOf(entryPoint: string): string {
  return /^[a-z][a-z0-9+.-]+:/i.test(entryPoint)
    ? entryPoint
    : pathToFileURL(resolve(entryPoint)).href;
}

/** Imports the module a run recorded and finds the pipeline it exports under the run's name. */
async function loadPipeline(run: RunRow, entryPoint: string, prefix: string): Promise<Pipeline> {
  const url = moduleUrlOf(entryPoint);
  let exported: Record<string, unknown>;
  try {
    exported = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const typescript = /\.[cm]?tsx?$/i.test(new URL(url).pathname);
    throw new CliError(
      `cannot load ${entryPoint}, the entry point of run ${run.run_id}: ${(error as Error).message ?? String(error)}`,
      ExitCode.failure,
      typescript
        ? [
            `  a TypeScript module needs a loader: NODE_OPTIONS="--import tsx" runtrail resume ${prefix}`,
          ]
        : [],
    );
  }
  // A CommonJS module's exports object is its default export.
  const fallback = exported.default;
  const values = [
    ...Object.values(exported),
    ...(typeof fallback === "object" && fallback !== null && !isPipeline(fallback)
      ? Object.values(fallback)
      : []),
  ];
  const pipelines = [...new Set(values.filter(isPipeline))];
  const matching = pipelines.filter((p) => p.name === run.pipeline);
  if (matching.length === 1) return matching[0] as Pipeline;
  if (matching.length > 1) {
    throw new CliError(
      `${entryPoint} exports ${matching.length} different pipelines named "${run.pipeline}": export one`,
    );
  }
  throw new CliError(
    `${entryPoint} exports no pipeline named "${run.pipeline}"${
      pipelines.length > 0
        ? ` (it exports ${pipelines.map((p) => `"${p.name}"`).join(", ")})`
        : ": export the pipeline made with definePipeline from it"
    }`,
  );
}

/** One line per stage as it ends: reused, completed or failed. */
function progressLine(p: StageProgress, width: number, style: Style): string | undefined {
  const head = `  [${p.index}/${p.total}] ${p.name.padEnd(width)}  `;
  const took = p.durationMs === undefined ? "" : ` (${formatSeconds(p.durationMs / 1000)})`;
  switch (p.outcome) {
    case "started":
      return undefined;
    case "cached":
      return `${head}${paint(style, "cyan", "reused")} from ${p.cachedFrom ? shortId(p.cachedFrom) : "an earlier run"}`;
    case "completed":
      return `${head}${paint(style, "green", "✓ completed")}${took}`;
    case "failed":
      return `${head}${paint(style, "red", "✗ failed")}${took}`;
  }
}

export const resumeCommand: Command = {
  usage: [
    "runtrail resume <run-id-or-trace-id-prefix> [--db PATH] [--url URL]",
    "",
    "  Runs a failed, crashed or timed-out run again as a new run linked to it: the stages that",
    "  completed are not run again (their outputs come from their snapshots) and the new run",
    "  starts at the stage that failed. The run must be of a pipeline defined with",
    "  definePipeline({ module: import.meta.url, ... }): that module is imported, so it must",
    "  export the pipeline and start no run when imported. A TypeScript module needs a loader,",
    '  such as NODE_OPTIONS="--import tsx". The new run is recorded into the store.',
    "",
    URL_USAGE,
    ...COMMON_USAGE,
  ].join("\n"),
  options: { ...COMMON_OPTIONS, url: { type: "string" } },
  argument: "one run id or trace id prefix",
  async run({ values, positionals, io }) {
    // run-cli gives exactly one.
    const prefix = positionals[0] as string;
    const { run, stages, storePath } = await findRun(values, io, prefix);
    if (!RESUMABLE_STATUSES.includes(run.status)) {
      throw new CliError(
        `run ${run.run_id} is ${run.status}: only failed, crashed or timed-out runs can be resumed`,
      );
    }
    if (!run.entry_point) {
      throw new CliError(
        `run ${run.run_id} has no recorded entry point: define its pipeline with definePipeline({ module: import.meta.url, ... }) or resume it from its program with pipeline.resume(id)`,
      );
    }
    if (storePath === undefined) {
      throw new CliError(
        `run ${run.run_id} was read through a server whose store is not here (--url or RUNTRAIL_URL): resume it on the machine that holds that store`,
      );
    }
    const pipeline = await loadPipeline(run, run.entry_point, prefix);

    let newRunId: string | undefined;
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": run.service_name ?? run.pipeline }),
      spanProcessors: [new RunTrailSpanProcessor({ db: storePath })],
    });
    // Global, so that spans the stages make through the OpenTelemetry API are recorded too.
    provider.register();
    const tracer = provider.getTracer("runtrail-resume");

    const text = !values.json;
    const width = Math.max(...pipeline.stages.map((s) => s.name.length));
    let failedStage: string | undefined;
    if (text) {
      io.stdout(`Resuming run ${run.run_id} (${run.pipeline})\n`);
      io.stdout(`${stoppedLine(run)}\n`);
    }
    const onProgress = (p: StageProgress) => {
      newRunId ??= p.runId;
      if (p.outcome === "failed") failedStage = p.name;
      const line = text ? progressLine(p, width, io.style) : undefined;
      if (line !== undefined) io.stdout(`${line}\n`);
    };

    // Ctrl-C: the run stops where it is, recorded as far as it got; once this process is gone
    // it is marked crashed, and can be resumed again.
    let finished = false;
    void io.interrupted.then(async () => {
      if (finished) return;
      io.stderr(
        `runtrail: interrupted: run ${newRunId ?? "(not started)"} stops here; it shows as crashed once reaped, and can be resumed\n`,
      );
      await provider.shutdown().catch(() => undefined);
      process.exit(130);
    });

    let output: unknown;
    let failure: { error: unknown } | undefined;
    try {
      // The run as read above: the pipeline does not read it again.
      output = await pipeline.resume({ run, stages }, { tracer, store: storePath, onProgress });
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      await provider.shutdown();
    }

    if (failure && newRunId === undefined) {
      // Refused (a ResumeError) or stopped before the new run started.
      const { error } = failure;
      throw new CliError(
        error instanceof Error && error.name === "ResumeError"
          ? error.message
          : `cannot resume run ${run.run_id}: ${errorText(error)}`,
      );
    }
    // The id of the new run, as its first stage told it; unknown only if the pipeline's copy of
    // runtrail tells no run id.
    const runId = newRunId;
    // The status the store gives the new run (degraded when a stage was retried, say); while
    // its final row has not reached the store (a server takes it in a moment later), the
    // outcome.
    let status: string = failure ? "failed" : "completed";
    if (runId !== undefined) {
      try {
        const stored = (await findRun(values, io, runId)).run;
        if (stored.status !== "running") status = stored.status;
      } catch {
        // The outcome stands.
      }
    }

    if (values.json) {
      const result = {
        run_id: runId ?? null,
        resumed_from: run.run_id,
        status,
        output: failure ? null : (output ?? null),
        ...(failure ? { error: errorText(failure.error) } : {}),
      };
      let json: string;
      try {
        json = jsonOf(result);
      } catch {
        // An output JSON cannot write (a bigint, a cycle) is left out.
        json = jsonOf({ ...result, output: null });
      }
      io.stdout(`${json}\n`);
    } else {
      io.stdout(`Run ${runId ?? "(id unknown)"} ${paintStatus(io.style, status)}\n`);
    }
    if (failure) {
      throw new CliError(
        `run ${runId ?? "(id unknown)"} failed${failedStage ? ` in stage ${failedStage}` : ""}: ${errorText(failure.error)}`,
      );
    }
    return ExitCode.ok;
  },
};
