import { writeFileSync } from "node:fs";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { type DemoRunSummary, runDemo } from "../../demo/demo-pipeline.js";
import { RunTrailSpanProcessor } from "../../ingest/span-processor.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  storePathOf,
  stringValue,
} from "../_command.js";
import { paintStatus } from "../_style.js";
import { CliError, ExitCode } from "../cli-error.js";

/** How to call this command from where it is: `npx runtrail` once installed, the script here. */
function invocation(): string {
  const script = process.argv[1] ?? "";
  return script.includes("node_modules") ? "npx runtrail" : "npm run runtrail --";
}

export const demoCommand: Command = {
  usage: [
    "runtrail demo [--runs 12] [--pace 1] [--otlp URL] [--every S]",
    "",
    "  --runs N           how many runs (default 12)",
    "  --pace X           scale of the simulated stage times; 0 for no waiting (default 1)",
    "  --otlp URL         send the spans over OTLP/HTTP (protobuf, gzip) to URL, such as a",
    "                     Collector's http://localhost:4318 or a runtrail server, instead of",
    "                     recording them into the store",
    "  --every S          after those runs, one more every S seconds until stopped",
    "  --alive-file PATH  write the time to PATH after each run, for a health check",
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    runs: { type: "string" },
    pace: { type: "string" },
    otlp: { type: "string" },
    every: { type: "string" },
    "alive-file": { type: "string" },
  },
  async run({ values, io }) {
    const runs = Number(stringValue(values, "runs") ?? "12");
    const pace = Number(stringValue(values, "pace") ?? "1");
    if (!Number.isInteger(runs) || runs < 1)
      throw new CliError("--runs: give a whole number of runs", ExitCode.usage);
    if (!Number.isFinite(pace) || pace < 0)
      throw new CliError("--pace: give a number from 0", ExitCode.usage);
    const everyText = stringValue(values, "every");
    const every = everyText === undefined ? undefined : Number(everyText);
    if (every !== undefined && !(Number.isFinite(every) && every > 0))
      throw new CliError("--every: give a number of seconds above 0", ExitCode.usage);
    const otlp = stringValue(values, "otlp");
    let processor: SpanProcessor;
    let where: string;
    if (otlp !== undefined) {
      let url: URL;
      try {
        url = new URL(otlp);
      } catch {
        throw new CliError(`--otlp: "${otlp}" is not a URL`, ExitCode.usage);
      }
      if (!url.pathname.endsWith("/v1/traces")) {
        url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/traces`;
      }
      where = url.href;
      processor = new BatchSpanProcessor(
        new OTLPTraceExporter({ url: url.href, compression: CompressionAlgorithm.GZIP }),
        { scheduledDelayMillis: 1000 },
      );
    } else {
      where = storePathOf(values, io);
      processor = new RunTrailSpanProcessor({ db: where });
    }
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "runtrail-demo" }),
      spanProcessors: [processor],
    });
    const tracer = provider.getTracer("runtrail-demo");
    io.stderr(
      `${otlp ? "Sending" : "Recording"} ${runs} runs of the demo pipeline ${otlp ? "to" : "into"} ${where}${every ? `, then one every ${every} s` : ""}\n`,
    );
    // Stops between runs on Ctrl-C, on SIGTERM (as a container is stopped), and when the reader
    // of its output went away.
    let stopping = false;
    const stop = () => {
      stopping = true;
    };
    void io.interrupted.then(stop);
    void io.outputClosed.then(stop);
    process.once("SIGTERM", stop);
    const aliveFile = stringValue(values, "alive-file");
    let aliveFailed = false;
    const onRun = (s: DemoRunSummary) => {
      if (!values.json)
        io.stdout(`  ${s.runId}  ${s.pipeline}  ${paintStatus(io.style, s.outcome)}\n`);
      if (aliveFile === undefined) return;
      try {
        writeFileSync(aliveFile, `${new Date().toISOString()} ${s.runId}\n`);
      } catch (error) {
        if (!aliveFailed) io.stderr(`runtrail demo: --alive-file: ${(error as Error).message}\n`);
        aliveFailed = true;
      }
    };
    let summaries: DemoRunSummary[];
    try {
      // Artifacts are files next to the store; over OTLP there is none here, so none are kept.
      const store = otlp === undefined ? { store: where } : { tracking: false };
      summaries = await runDemo({
        tracer,
        ...store,
        runs,
        pace,
        onRun,
        shouldStop: () => stopping,
      });
      if (every !== undefined) {
        await provider.forceFlush();
        await runDemo({
          tracer,
          ...store,
          runs: Number.MAX_SAFE_INTEGER,
          pace,
          first: runs + 1,
          betweenMs: every * 1000,
          shouldStop: () => stopping,
          onRun: (s) => {
            onRun(s);
            void provider.forceFlush();
          },
        });
      }
    } finally {
      process.off("SIGTERM", stop);
      await provider.shutdown();
    }
    if (values.json) {
      io.stdout(`${JSON.stringify(summaries, null, 2)}\n`);
      return ExitCode.ok;
    }
    const cli = invocation();
    const failed = summaries.find((s) => s.outcome === "failed");
    io.stdout(
      [
        "",
        "Next:",
        `  ${cli} tail                  the latest runs`,
        `  ${cli} show ${(failed ?? summaries[0])?.runId.slice(0, 8)}         a ${failed ? "failed " : ""}run with its stages and error`,
        `  ${cli} stats                 failure rate and durations`,
        "",
      ].join("\n"),
    );
    return ExitCode.ok;
  },
};
