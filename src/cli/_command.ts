import type { ParseArgsConfig } from "node:util";
import { resolveStorePath } from "../store/store-path.js";
import type { Style } from "./_style.js";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;
export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

/** What a command writes to and reads from; tests give their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  style: Style;
  env: NodeJS.ProcessEnv;
  /** Resolves when the user interrupts (Ctrl-C), for commands that follow. */
  interrupted: Promise<void>;
  /**
   * Resolves when the reader of standard output went away (`runtrail tail -f | head -1`):
   * nothing more is printed, and commands that follow stop.
   */
  outputClosed: Promise<void>;
}

export interface CommandContext {
  values: ParsedValues;
  positionals: string[];
  io: CliIo;
}

export interface Command {
  usage: string;
  options: OptionSpec;
  /**
   * The one argument the command takes besides options, as the usage error names it ("one run
   * id or trace id prefix"); a command without it takes none.
   */
  argument?: string;
  run(context: CommandContext): Promise<number | undefined>;
}

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpec = {
  db: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

export const COMMON_USAGE = [
  "  --db PATH          the store (default: RUNTRAIL_DB, else .runtrail/runs.duckdb)",
  "  --json             print JSON instead of text",
  "  -h, --help         this help",
];

export function stringValue(values: ParsedValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

export function stringValues(values: ParsedValues, name: string): string[] {
  const value = values[name];
  if (Array.isArray(value)) return value.flatMap((v) => v.split(",")).filter((v) => v.length > 0);
  if (typeof value === "string") return value.split(",").filter((v) => v.length > 0);
  return [];
}

/** The store a command names: `--db`, else `RUNTRAIL_DB`, else the default, as an absolute path. */
export function storePathOf(values: ParsedValues, io: CliIo): string {
  return resolveStorePath(stringValue(values, "db"), io.env);
}
