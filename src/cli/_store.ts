import { ingestSpool } from "../store/ingest-spool.js";
import { withStore } from "../store/open-store.js";
import {
  DEFAULT_SILENT_AFTER_MS,
  DEFAULT_STALE_AFTER_MS,
  type ReapedRun,
  reapCrashedRuns,
} from "../store/reap.js";
import { liveClaim } from "../store/server-claim.js";
import { hasSpooled } from "../store/spool.js";
import { StoreError } from "../store/store-errors.js";
import type { StoreSession } from "../store/store-session.js";
import { parseDuration } from "../util/duration.js";
import { type CliIo, type ParsedValues, storePathOf, stringValue } from "./_command.js";
import { CliError, ExitCode } from "./cli-error.js";

export const STALE_AFTER_USAGE =
  "  --stale-after DUR  a run with no heartbeat this long is crashed (default: RUNTRAIL_STALE_AFTER, else 2m)";

export const SILENT_AFTER_USAGE =
  "  --silent-after DUR a run received over OTLP that no span came for this long, and its\n" +
  "                     run span never, is crashed (default: RUNTRAIL_SILENT_AFTER, else 30m)";

export function staleAfterMs(values: ParsedValues, env: NodeJS.ProcessEnv): number {
  const text = stringValue(values, "stale-after") ?? env.RUNTRAIL_STALE_AFTER;
  return text ? parseTimeOption("--stale-after", text, parseDuration) : DEFAULT_STALE_AFTER_MS;
}

export function silentAfterMs(values: ParsedValues, env: NodeJS.ProcessEnv): number {
  const text = stringValue(values, "silent-after") ?? env.RUNTRAIL_SILENT_AFTER;
  return text ? parseTimeOption("--silent-after", text, parseDuration) : DEFAULT_SILENT_AFTER_MS;
}

/** Parses an option value, turning a bad one into a usage error naming the option. */
export function parseTimeOption<T>(option: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (error) {
    throw new CliError(`${option}: ${(error as Error).message}`, ExitCode.usage);
  }
}

export interface OpenedStore<T> {
  path: string;
  /** Undefined when there is no store yet. */
  result: T | undefined;
  reaped: ReapedRun[];
}

/**
 * Opens the store for a command: spooled rows are written in and crashed runs marked first,
 * so every command sees the same, current state. A missing store is not an error. A file that
 * is not a store, or a damaged one, is refused and left as it is: a command is run by hand, and
 * its path may be a mistake, so it never moves a file aside nor makes a store of it (pipelines
 * and the server, which write, move a damaged store aside and start a new one).
 */
export async function useStore<T>(
  values: ParsedValues,
  io: CliIo,
  work: (session: StoreSession) => Promise<T>,
  options: { create?: boolean } = {},
): Promise<OpenedStore<T>> {
  const path = storePathOf(values, io);
  const claim = liveClaim(path);
  if (claim !== undefined) {
    throw new CliError(
      `the store ${path} is held by the runtrail server at ${claim.url}: this command needs the file itself, so stop the server first (tail, show and stats read through it)`,
    );
  }
  const reapOptions = {
    staleAfterMs: staleAfterMs(values, io.env),
    silentAfterMs: silentAfterMs(values, io.env),
  };
  let reaped: ReapedRun[] = [];
  try {
    const result = await withStore(
      path,
      async (session) => {
        await ingestSpool(session);
        reaped = await reapCrashedRuns(session, reapOptions);
        return work(session);
      },
      {
        // A store that does not exist yet is made when writers spooled rows for it.
        create: options.create ?? (await hasSpooled(path)),
        lockTimeoutMs: 10_000,
        command: true,
      },
    );
    return { path, result, reaped };
  } catch (error) {
    if (error instanceof StoreError) {
      if (error.kind === "missing") return { path, result: undefined, reaped };
      if (error.kind === "unwritable" && !options.create) return readOnly(path, io, work);
      throw cliErrorOf(error);
    }
    throw error;
  }
}

function cliErrorOf(error: StoreError): CliError {
  if (error.kind === "corrupt") {
    return new CliError(
      `${error.message}; it is left as it is (a pipeline or the server that writes to it moves it aside and starts a new store)`,
    );
  }
  return new CliError(error.message);
}

/** For a reader who may not write the store: read it as it is, without marking crashed runs. */
async function readOnly<T>(
  path: string,
  io: CliIo,
  work: (session: StoreSession) => Promise<T>,
): Promise<OpenedStore<T>> {
  try {
    const result = await withStore(path, work, {
      readOnly: true,
      lockTimeoutMs: 10_000,
      command: true,
    });
    io.stderr(
      `runtrail: ${path} is read-only here: crashed runs are not marked and spooled rows not written in\n`,
    );
    return { path, result, reaped: [] };
  } catch (error) {
    if (error instanceof StoreError) throw cliErrorOf(error);
    throw error;
  }
}
