/** Why the store could not be used. Each kind is handled differently by writers and readers. */
export type StoreErrorKind =
  /** Another process holds the DuckDB file. */
  | "locked"
  /** The file is not a DuckDB database, or its write-ahead log cannot be replayed. */
  | "corrupt"
  /**
   * The file is not a store (not a DuckDB database, or one without runtrail's tables), where
   * only a store already there may be opened (`OpenStoreOptions.command`).
   */
  | "foreign"
  /** The file or its folder cannot be created, opened or written. */
  | "unwritable"
  /** A read was asked of a store that does not exist. */
  | "missing"
  /** The store was written by a newer runtrail. */
  | "too_new"
  /** The store refused the rows themselves: a value out of range, a missing field. */
  | "invalid";

export class StoreError extends Error {
  override readonly name = "StoreError";

  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Classifies an error thrown by DuckDB when opening or writing a database file. */
export function classifyDuckDbError(path: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes("Could not set lock on file")) {
    const holder = /PID (\d+)/.exec(message)?.[1];
    return new StoreError(
      "locked",
      `the store ${path} is in use by another process${holder ? ` (pid ${holder})` : ""}`,
      { cause: error },
    );
  }
  if (/^(Conversion|Constraint|Invalid Input|Out of Range|Mismatch Type) Error/.test(message)) {
    return new StoreError("invalid", `the store refused rows: ${firstLine(message)}`, {
      cause: error,
    });
  }
  if (/version number|storage version/i.test(message)) {
    return new StoreError(
      "too_new",
      `the store ${path} was written by another DuckDB version: ${firstLine(message)}`,
      { cause: error },
    );
  }
  if (
    /not a valid DuckDB database file|Corrupt database file|checksum|Failure while replaying WAL/i.test(
      message,
    )
  ) {
    return new StoreError("corrupt", `the store ${path} is damaged: ${firstLine(message)}`, {
      cause: error,
    });
  }
  return new StoreError("unwritable", `the store ${path} cannot be used: ${firstLine(message)}`, {
    cause: error,
  });
}

function firstLine(message: string): string {
  return message.split("\n", 1)[0] ?? message;
}
