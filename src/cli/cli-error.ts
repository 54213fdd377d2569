/** Exit codes of the runtrail command. */
export const ExitCode = {
  ok: 0,
  /** The command could not do its work: no such run, the store cannot be read. */
  failure: 1,
  /** The command was given wrongly, or a prefix names several runs. */
  usage: 2,
} as const;

/** An error meant for the person at the terminal: printed as one line, no stack trace. */
export class CliError extends Error {
  override readonly name = "CliError";

  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
    /** Lines printed after the message, such as the candidates of an ambiguous prefix. */
    readonly details: readonly string[] = [],
  ) {
    super(message);
  }
}
