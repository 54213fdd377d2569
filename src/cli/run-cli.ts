import { parseArgs } from "node:util";
import type { CliIo, Command, ParsedValues } from "./_command.js";
import { CliError, ExitCode } from "./cli-error.js";

/**
 * The commands and the line `runtrail --help` gives each. A command `x` is `xCommand` of
 * `./commands/x.js`, loaded when it is run: `serve` alone brings the HTTP server, the API's
 * schemas and the metrics, and `demo` the tracing SDK, which `tail` or `show` have no use for
 * (loading every command cost each of them about 0.25 s of start-up).
 */
const COMMANDS: Readonly<Record<string, string>> = {
  tail: "the latest runs, newest first",
  show: "one run in detail, by a prefix of its run id or trace id",
  resume: "resume a failed run of a definePipeline pipeline at the stage that failed",
  stats: "counts by status, failure rate, p50/p95 duration, LLM calls and tokens",
  prune: "delete old runs, their stages and files, then give the space back",
  export: "write runs (or their stages) to CSV, Parquet or JSON lines",
  reap: "mark runs whose process died (or went silent) as crashed, now",
  serve: "serve the store: query API, /metrics, and the place the CLI reads from",
  demo: "run the bundled example pipeline into the store",
};

/** The command `name` (one of {@link COMMANDS}), loaded. */
async function loadCommand(name: string): Promise<Command> {
  const module = (await import(`./commands/${name}.js`)) as Record<string, Command | undefined>;
  const command = module[`${name}Command`];
  if (command === undefined) throw new Error(`./commands/${name}.js has no ${name}Command`);
  return command;
}

function overview(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((name) => name.length));
  return [
    "runtrail: the run store for OpenTelemetry pipelines",
    "",
    "Usage: runtrail <command> [options]",
    "",
    ...names.map((name) => `  ${name.padEnd(width)}  ${COMMANDS[name]}`),
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
  try {
    if (!Object.hasOwn(COMMANDS, name)) {
      throw new CliError(
        `unknown command "${name}"; run runtrail --help for the list`,
        ExitCode.usage,
      );
    }
    const command = await loadCommand(name);
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
