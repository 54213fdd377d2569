import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { migrate, requireCurrentSchema } from "./migrations.js";
import { sqlString } from "./sql-literal.js";
import { classifyDuckDbError, StoreError } from "./store-errors.js";
import { fileKindOf, movedAsideOf } from "./store-files.js";
import { lockStore } from "./store-lock.js";
import { STORE_ALIAS, StoreSession } from "./store-session.js";
import { askForStore, readerWaiting } from "./store-wanted.js";

export interface OpenStoreOptions {
  /** Create the store (and its folder) when it does not exist. Default true. */
  create?: boolean;
  /** How long to wait for another process to let go of the file. Default 10 s. */
  lockTimeoutMs?: number;
  /**
   * A command a person runs opens the store, not a writer. A writer holding the store lets go
   * for it after its current write, and writers waiting for it let it in first. And since its
   * path may be a mistake, a file that is not a store (a text file, an empty file, a DuckDB
   * database with neither runtrail's tables nor seed 000's `runs`) is refused as a StoreError
   * "foreign", and a damaged store as "corrupt": either is left as it is, never moved aside nor
   * made a store. Default false: a writer moves a damaged store aside and starts a new one.
   */
  command?: boolean;
  /** Told where a damaged store was moved. */
  onMovedAside?: (from: string, to: string, reason: string) => void;
  /** DuckDB threads for this session. Default 2. */
  threads?: number;
  /**
   * Let DuckDB store the rows of one statement in any order, so that its threads each compress
   * and write a share of a large insert. For a session that only writes: a read without ORDER
   * BY may then return rows in any order. Default false.
   */
  anyInsertOrder?: boolean;
  /**
   * The write-ahead log this session lets grow before DuckDB checkpoints it. Default DuckDB's,
   * 16 MB; a session held long, across many writes, takes {@link HELD_CHECKPOINT_THRESHOLD}.
   */
  checkpointThreshold?: string;
  /**
   * Open for reading only, for a reader without write access to the file. Nothing is written,
   * not even a migration: an older store must be opened for writing once first.
   */
  readOnly?: boolean;
}

/**
 * The write-ahead log a store held across many writes may grow to before DuckDB checkpoints it.
 * A checkpoint rewrites the tables' last, partly filled row groups whole, so one every 16 MB
 * (DuckDB's default, a few writes) wrote the same rows several times over. Closing checkpoints
 * what is left, so this also bounds how long a close takes.
 */
export const HELD_CHECKPOINT_THRESHOLD = "128MB";

/**
 * Rows per row group of the tables, against DuckDB's default of 122,880. A query that names
 * one run scans every vector of the row group its zone maps leave, for each column it reads;
 * a run's row reads 40 columns and a stage's 23, so the size of the row group is most of what
 * a lookup costs. On a store of 1,000,000 runs (bench/server.ts's), in CPU per query: a run's
 * whole row 2.26 ms → 1.29 ms, its stages 1.56 → 0.93 ms, the newest 100 runs 5.1 → 1.3 ms,
 * the newest 100 failed runs and the stats of 7 days the same; 8,192 rows measured no better,
 * 32,768 in between. The file takes about a fifth more room. DuckDB keeps the size per
 * attachment, not in the file, so every open names it, and a file written by an older version
 * takes it on for the row groups written from then on.
 */
export const ROW_GROUP_SIZE = 16_384;

/** The ATTACH options of a store file: its row group size, and read-only when asked. */
export function attachOptions(readOnly = false): string {
  return `(ROW_GROUP_SIZE ${ROW_GROUP_SIZE}${readOnly ? ", READ_ONLY" : ""})`;
}

/**
 * Opens the store at `path` for this process, waiting while another process holds it, moving a
 * damaged file aside, and migrating the schema. Close the session soon: others wait for it.
 */
export async function openStore(
  path: string,
  options: OpenStoreOptions = {},
): Promise<StoreSession> {
  const create = options.create ?? true;
  const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
  const release = await lockStore(path);
  const attempts: Attempts = { spare: undefined };
  try {
    const deadline = Date.now() + lockTimeoutMs;
    let backoff = 5;
    let doubted = false;
    for (;;) {
      try {
        return await openOnce(path, create, options, release, attempts);
      } catch (error) {
        const failure = classifyDuckDbError(path, error);
        if (failure.kind === "locked" && Date.now() < deadline) {
          askForStore(path, options.command === true);
          await sleep(Math.min(backoff, deadline - Date.now()) * (0.5 + Math.random()));
          backoff = Math.min(backoff * 1.6, 100);
          // A writer lets a waiting command in first, while its own wait has time left.
          while (
            !options.command &&
            readerWaiting(path) &&
            deadline - Date.now() > lockTimeoutMs / 2
          ) {
            await sleep(50);
          }
          continue;
        }
        if (failure.kind === "corrupt" && !doubted) {
          // Read once more before believing it: a failure to replay the log may be passing.
          doubted = true;
          await sleep(200);
          continue;
        }
        if (failure.kind === "corrupt" && options.command) {
          const kind = fileKindOf(path);
          if (kind === "empty" || kind === "other") {
            const what = kind === "empty" ? "an empty file" : "not a DuckDB database file";
            throw new StoreError("foreign", `${path} is not a runtrail store (${what})`, {
              cause: error,
            });
          }
        }
        if (failure.kind === "corrupt" && !options.command && !options.readOnly) {
          const movedTo = moveAside(path);
          options.onMovedAside?.(path, movedTo, failure.message);
          continue;
        }
        throw failure;
      }
    }
  } catch (error) {
    release();
    throw error;
  } finally {
    closeSpare(attempts);
  }
}

/**
 * The instance and connection of an attempt whose ATTACH failed, for the next attempt: making
 * an instance costs about 11 ms of CPU and attaching the file with one already made under 1 ms,
 * and a process waits through many attempts while another one holds the store.
 */
interface Attempts {
  spare: { instance: DuckDBInstance; connection: DuckDBConnection } | undefined;
}

function closeSpare(attempts: Attempts): void {
  const spare = attempts.spare;
  attempts.spare = undefined;
  spare?.connection.closeSync();
  spare?.instance.closeSync();
}

async function openOnce(
  path: string,
  create: boolean,
  options: OpenStoreOptions,
  release: () => void,
  attempts: Attempts,
): Promise<StoreSession> {
  const existed = existsSync(path);
  if (!existed) {
    if (!create || options.readOnly)
      throw new StoreError("missing", `there is no store at ${path}`);
    mkdirSync(dirname(path), { recursive: true });
  }
  // The file is attached to an in-memory instance rather than opened as the instance's own
  // database: only ATTACH takes a row group size (see ROW_GROUP_SIZE).
  const spare = attempts.spare;
  attempts.spare = undefined;
  const instance =
    spare?.instance ??
    (await DuckDBInstance.create(":memory:", {
      threads: String(options.threads ?? 2),
      memory_limit: "512MB",
      ...(options.anyInsertOrder ? { preserve_insertion_order: "false" } : {}),
      ...(options.checkpointThreshold ? { checkpoint_threshold: options.checkpointThreshold } : {}),
    }));
  let connection: DuckDBConnection | undefined = spare?.connection;
  try {
    connection ??= await instance.connect();
    try {
      await connection.run(
        `ATTACH ${sqlString(path)} AS ${STORE_ALIAS} ${attachOptions(options.readOnly)}`,
      );
    } catch (error) {
      // Nothing is attached: the next attempt attaches with the same instance.
      attempts.spare = { instance, connection };
      throw error;
    }
    await StoreSession.prepareConnection(connection);
    const session = new StoreSession(path, instance, connection, release);
    if (options.command && existed && !(await holdsStore(session))) {
      throw new StoreError(
        "foreign",
        `${path} is not a runtrail store (a DuckDB database without runtrail's tables)`,
      );
    }
    if (options.readOnly) await requireCurrentSchema(session);
    else await migrate(session);
    return session;
  } catch (error) {
    if (attempts.spare === undefined) {
      connection?.closeSync();
      instance.closeSync();
    }
    throw error;
  }
}

/**
 * Whether an open database holds a store: runtrail's tables, or seed 000's `runs` table (with
 * its `run_id`, `stage`, `status` and `started_at`) that the migrations adopt. A database with
 * neither, another program's `runs` table included, would be made a store by migrating it.
 */
async function holdsStore(session: StoreSession): Promise<boolean> {
  const row = await session.one<{ meta: number; seed: number }>(
    `SELECT
       (SELECT count(*) FROM duckdb_tables()
        WHERE database_name = current_database() AND schema_name = 'main'
          AND table_name = 'runtrail_meta')::INTEGER AS meta,
       (SELECT count(*) FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'runs'
          AND column_name IN ('run_id', 'stage', 'status', 'started_at'))::INTEGER AS seed`,
  );
  return (row?.meta ?? 0) > 0 || row?.seed === 4;
}

/** Renames a damaged store and its write-ahead log out of the way; nothing is deleted. */
function moveAside(path: string): string {
  const stamp = new Date().toISOString().replaceAll(":", "-");
  const target = movedAsideOf(path, stamp);
  renameSync(path, target);
  if (existsSync(`${path}.wal`)) renameSync(`${path}.wal`, `${target}.wal`);
  return target;
}

/** Runs `work` with the store open and closes it afterwards, whatever happens. */
export async function withStore<T>(
  path: string,
  work: (session: StoreSession) => Promise<T>,
  options: OpenStoreOptions = {},
): Promise<T> {
  const session = await openStore(path, options);
  try {
    return await work(session);
  } finally {
    session.close();
  }
}
