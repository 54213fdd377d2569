import { parseArgs } from "node:util";
import type { CliIo, Command, ParsedValues } from "./_command.js";
import { CliError, ExitCode } from "./cli-error.js";

/**
 * The commands, each loaded when it is run: `serve` alone brings the HTTP server, the API's
 * schemas and the metrics, and `demo` the tracing SDK, which `tail` or `show` have no use for
 * (loading every command cost each of them about 0.25 s of start-up).
 */
const COMMANDS: readonly CommandEntry[] = [
  {
    name: "tail",
    summary: "the latest runs, newest first",
    load: async () => (await import("./commands/tail.js")).tailCommand,
  },
  {
    name: "show",
    summary: "one run in detail, by a prefix of its run id or trace id",
    load: async () => (await import("./commands/show.js")).showCommand,
  },
  {
    name: "resume",
    summary: "resume a failed run of a definePipeline pipeline at the stage that failed",
    load: async () => (await import("./commands/resume.js")).resumeCommand,
  },
  {
    name: "stats",
    summary: "counts by status, failure rate, p50/p95 duration, LLM calls and tokens",
    load: async () => (await import("./commands/stats.js")).statsCommand,
  },
  {
    name: "prune",
    summary: "delete old runs, their stages and files, then give the space back",
    load: async () => (await import("./commands/prune.js")).pruneCommand,
  },
  {
    name: "export",
    summary: "write runs (or their stages) to CSV, Parquet or JSON lines",
    load: async () => (await import("./commands/export.js")).exportCommand,
  },
  {
    name: "reap",
    summary: "mark runs whose process died (or went silent) as crashed, now",
    load: async () => (await import("./commands/reap.js")).reapCommand,
  },
  {
    name: "serve",
    summary: "serve the store: query API, /metrics, and the place the CLI reads from",
    load: async () => (await import("./commands/serve.js")).serveCommand,
  },
  {
    name: "demo",
    summary: "run the bundled example pipeline into the store",
    load: async () => (await import("./commands/demo.js")).demoCommand,
  },
];

interface CommandEntry {
  name: string;
  /** One line for `runtrail --help`. */
  summary: string;
  load: () => Promise<Command>;
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "runtrail: the run store for OpenTelemetry pipelines",
    "",
    "Usage: runtrail <command> [options]",
    "",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "runtrail <command> --help shows a command's options.",
  ].join("\n");
}

/** Runs the command line and returns the exit code; errors become one line on stderr. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--help" || name === "-h" || name === "help") {
    io.stdout(`${overview()}\n`);
    return ExitCode.ok;
  }
  if (name === undefined) {
    // A usage error, as an unknown command is: the usage goes to stderr, stdout stays empty.
    io.stderr(`${overview()}\n`);
    return ExitCode.usage;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  try {
    if (entry === undefined) {
      throw new CliError(
        `unknown command "${name}"; run runtrail --help for the list`,
        ExitCode.usage,
      );
    }
    const command = await entry.load();
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: [...rest],
        options: command.options,
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new CliError(
        `${(error as Error).message}; see runtrail ${name} --help`,
        ExitCode.usage,
      );
    }
    if (parsed.values.help) {
      io.stdout(`Usage: ${command.usage}\n`);
      return ExitCode.ok;
    }
    const given = parsed.positionals;
    if (command.argument === undefined && given.length > 0) {
      throw new CliError(
        `${name} takes no arguments, but was given "${given.join(" ")}"; see runtrail ${name} --help`,
        ExitCode.usage,
      );
    }
    if (command.argument !== undefined && given.length !== 1) {
      throw new CliError(`${name} takes ${command.argument}`, ExitCode.usage);
    }
    const values = parsed.values as ParsedValues;
    return (await command.run({ values, positionals: parsed.positionals, io })) ?? 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`runtrail: ${error.message}\n`);
      for (const line of error.details) io.stderr(`${line}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr(`runtrail: ${message}\n`);
    if (io.env.RUNTRAIL_DEBUG && error instanceof Error && error.stack)
      io.stderr(`${error.stack}\n`);
    else
      io.stderr("runtrail: this looks like a bug; run with RUNTRAIL_DEBUG=1 for the stack trace\n");
    return ExitCode.failure;
  }
}
