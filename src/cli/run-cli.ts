import { parseArgs } from "node:util";
import type { CliIo, Command, ParsedValues } from "./_command.js";
import { CliError, ExitCode } from "./cli-error.js";
import { demoCommand } from "./commands/demo.js";
import { exportCommand } from "./commands/export.js";
import { pruneCommand } from "./commands/prune.js";
import { reapCommand } from "./commands/reap.js";
import { resumeCommand } from "./commands/resume.js";
import { serveCommand } from "./commands/serve.js";
import { showCommand } from "./commands/show.js";
import { statsCommand } from "./commands/stats.js";
import { tailCommand } from "./commands/tail.js";

const COMMANDS: readonly Command[] = [
  tailCommand,
  showCommand,
  resumeCommand,
  statsCommand,
  pruneCommand,
  exportCommand,
  reapCommand,
  serveCommand,
  demoCommand,
];

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
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (command === undefined) {
      throw new CliError(
        `unknown command "${name}"; run runtrail --help for the list`,
        ExitCode.usage,
      );
    }
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
