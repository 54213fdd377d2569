import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { runDemo } from "../../demo/demo-pipeline.js";
import { RunTrailSpanProcessor } from "../../ingest/span-processor.js";
import { resolveStorePath } from "../../store/store-path.js";
import { COMMON_OPTIONS, COMMON_USAGE, type Command, stringValue } from "../_command.js";
import { paintStatus } from "../_style.js";
import { CliError, ExitCode } from "../cli-error.js";

/** How to call this command from where it is: `npx runtrail` once installed, the script here. */
function invocation(): string {
  const script = process.argv[1] ?? "";
  return script.includes("node_modules") ? "npx runtrail" : "npm run runtrail --";
}

export const demoCommand: Command = {
  name: "demo",
  summary: "run the bundled example pipeline into the store",
  usage: [
    "runtrail demo [--runs 12] [--pace 1]",
    "",
    "  --runs N           how many runs (default 12)",
    "  --pace X           scale of the simulated stage times; 0 for no waiting (default 1)",
    ...COMMON_USAGE,
  ].join("\n"),
  options: { ...COMMON_OPTIONS, runs: { type: "string" }, pace: { type: "string" } },
  async run({ values, io }) {
    const runs = Number(stringValue(values, "runs") ?? "12");
    const pace = Number(stringValue(values, "pace") ?? "1");
    if (!Number.isInteger(runs) || runs < 1)
      throw new CliError("--runs: give a whole number of runs", ExitCode.usage);
    if (!Number.isFinite(pace) || pace < 0)
      throw new CliError("--pace: give a number from 0", ExitCode.usage);
    const db = resolveStorePath(stringValue(values, "db"), io.env);
    const processor = new RunTrailSpanProcessor({ db });
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "runtrail-demo" }),
      spanProcessors: [processor],
    });
    const tracer = provider.getTracer("runtrail-demo");
    io.stderr(`Recording ${runs} runs of the demo pipeline into ${db}\n`);
    const summaries = await runDemo({
      tracer,
      runs,
      pace,
      onRun: (s) => {
        if (!values.json)
          io.stdout(`  ${s.runId}  ${s.pipeline}  ${paintStatus(io.style, s.outcome)}\n`);
      },
    });
    await provider.shutdown();
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
