import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DuckDBInstance } from "@duckdb/node-api";
import { migrate, requireCurrentSchema } from "./migrations.js";
import { classifyDuckDbError, StoreError } from "./store-errors.js";
import { lockStore } from "./store-lock.js";
import { StoreSession } from "./store-session.js";
import { askForStore } from "./store-wanted.js";

export interface OpenStoreOptions {
  /** Create the store (and its folder) when it does not exist. Default true. */
  create?: boolean;
  /** How long to wait for another process to let go of the file. Default 10 s. */
  lockTimeoutMs?: number;
  /** Move a damaged file aside (never delete it) and start a new store. Default true. */
  moveCorruptAside?: boolean;
  /** Told where a damaged store was moved. */
  onMovedAside?: (from: string, to: string, reason: string) => void;
  /** DuckDB threads for this session. Default 2. */
  threads?: number;
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
  try {
    const deadline = Date.now() + lockTimeoutMs;
    let backoff = 5;
    let doubted = false;
    for (;;) {
      try {
        return await openOnce(path, create, options, release);
      } catch (error) {
        const failure = classifyDuckDbError(path, error);
        if (failure.kind === "locked" && Date.now() < deadline) {
          askForStore(path);
          await sleep(Math.min(backoff, deadline - Date.now()) * (0.5 + Math.random()));
          backoff = Math.min(backoff * 1.6, 100);
          continue;
        }
        if (failure.kind === "corrupt" && !doubted) {
          // Read once more before believing it: a failure to replay the log may be passing.
          doubted = true;
          await sleep(200);
          continue;
        }
        if (failure.kind === "corrupt" && (options.moveCorruptAside ?? true) && !options.readOnly) {
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
  }
}

async function openOnce(
  path: string,
  create: boolean,
  options: OpenStoreOptions,
  release: () => void,
): Promise<StoreSession> {
  if (!existsSync(path)) {
    if (!create || options.readOnly)
      throw new StoreError("missing", `there is no store at ${path}`);
    mkdirSync(dirname(path), { recursive: true });
  }
  const instance = await DuckDBInstance.create(path, {
    threads: String(options.threads ?? 2),
    memory_limit: "512MB",
    ...(options.checkpointThreshold ? { checkpoint_threshold: options.checkpointThreshold } : {}),
    ...(options.readOnly ? { access_mode: "READ_ONLY" } : {}),
  });
  let connection: Awaited<ReturnType<DuckDBInstance["connect"]>> | undefined;
  try {
    connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    const session = new StoreSession(path, instance, connection, release);
    if (options.readOnly) await requireCurrentSchema(session);
    else await migrate(session);
    return session;
  } catch (error) {
    connection?.closeSync();
    instance.closeSync();
    throw error;
  }
}

/** Renames a damaged store and its write-ahead log out of the way; nothing is deleted. */
function moveAside(path: string): string {
  const stamp = new Date().toISOString().replaceAll(":", "-");
  const target = `${path}.corrupt-${stamp}`;
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
