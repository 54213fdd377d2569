import { RunKeyIndex } from "../query/run-key-index.js";
import { ingestSpool, type SpoolIngest } from "../store/ingest-spool.js";
import { HELD_CHECKPOINT_THRESHOLD, openStore } from "../store/open-store.js";
import { reapCrashedRuns } from "../store/reap.js";
import { hasSpooled } from "../store/spool.js";
import type { StoreSession } from "../store/store-session.js";
import { ChangedRuns, ReadCache, type ReadScope } from "./read-cache.js";

export interface ServedStoreOptions {
  /** How long opening waits for another process to let go of the file. Default 30 s. */
  lockWaitMs?: number;
  /** A running run with no heartbeat for this long is crashed. */
  staleAfterMs: number;
  /** A running run recorded from OTLP that no span arrived for in this long is crashed. */
  silentAfterMs?: number;
  /** How often the spool is looked at. Default 250 ms, so a run shows within a second. */
  ingestIntervalMs?: number;
  /** How often crashed runs are looked for. Default 15 s. */
  reapIntervalMs?: number;
  /**
   * Connections that answer queries, next to the one that writes. Default 3: a query holds its
   * connection across several trips between the event loop and libuv's pool, so with two,
   * reads queued behind each other while a core sat idle (lookups by prefix under load: about
   * 10 % more answered per second with three, in alternating runs). Three of libuv's four
   * pool threads leave one for the writer and the file system.
   */
  readers?: number;
  /** How long an answer of {@link ServedStore.cachedRead} is kept at most. Default 1 s. */
  readCacheMs?: number;
  /**
   * How long an answer about the runs of an id prefix is kept at most, unless a write of those
   * runs drops it first. Default 60 s.
   */
  runCacheMs?: number;
  /** Told of every write: rows ingested, runs reaped, runs deleted. */
  onChange?: () => void;
  /** Told of every ingest of spooled rows. */
  onIngest?: (rows: number, seconds: number, ok: boolean) => void;
  /** Told of a background failure (the server logs it and goes on). */
  onError?: (error: unknown) => void;
}

/** Answers kept at most: a page of 100 runs takes about 200 KiB of heap. */
const READ_CACHE_ENTRIES = 256;
/**
 * Rows (runs and their stages) kept in answers about runs, at most: a row takes 1 to 2 KiB of
 * heap, so some 20 to 40 MiB; the answers of 5,000 runs of 3 stages.
 */
const READ_CACHE_RUN_ROWS = 20_000;

/** Reading connections of a served store, unless told otherwise (see `readers`). */
export const DEFAULT_READERS = 3;

/** How long closing waits for reads under way. */
const CLOSE_WAIT_MS = 10_000;

/**
 * The store as a server holds it: opened once and kept open, one connection that writes (one
 * write at a time) and a few that read alongside it. Writers in other processes spool their
 * rows while the server holds the file; the server writes the spool in every quarter second,
 * and marks crashed runs every few seconds.
 */
export class ServedStore {
  private writer: StoreSession | undefined;
  private readers: StoreSession[] = [];
  private next = 0;
  /** The tail of the chain of writes: each waits for the one before. */
  private writing: Promise<unknown> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | undefined;
  /** Reads under way: the store closes once they are done. */
  private reading = new Set<Promise<unknown>>();
  private lastError: string | undefined;
  private readonly cache: ReadCache;
  /** The runs the write under way changes, when it tells (see `write`). */
  private changing: ChangedRuns | undefined;
  /** Where each run is, for lookups by id prefix; kept current by the writer. */
  runKeys: RunKeyIndex | undefined;

  private constructor(
    readonly path: string,
    private readonly options: ServedStoreOptions,
  ) {
    this.cache = new ReadCache({
      maxAgeMs: options.readCacheMs ?? 1000,
      maxEntries: READ_CACHE_ENTRIES,
      runMaxAgeMs: options.runCacheMs ?? 60_000,
      maxRunRows: READ_CACHE_RUN_ROWS,
    });
  }

  /** Opens the store, writes in what was spooled, and starts the background work. */
  static async open(path: string, options: ServedStoreOptions): Promise<ServedStore> {
    const store = new ServedStore(path, options);
    store.writer = await openStore(path, {
      lockTimeoutMs: options.lockWaitMs ?? 30_000,
      // The server holds the store for as long as it runs.
      checkpointThreshold: HELD_CHECKPOINT_THRESHOLD,
      // A query or write runs on the thread that started it, and concurrent ones side by side;
      // DuckDB's own extra thread only competed with the event loop for a core (OTLP ingest
      // measured 42-46k spans/s with it, 49-50k without, on 2 cores).
      threads: 1,
    });
    try {
      for (let i = 0; i < (options.readers ?? DEFAULT_READERS); i++) {
        store.readers.push(await store.writer.connect());
      }
      // Built before anything is written in, and told of every run written after.
      const keys = await RunKeyIndex.build(store.writer);
      store.writer.watcher = {
        runRow: (runId, startedAt) => {
          keys.note(runId, startedAt);
          store.changing?.run(runId);
        },
        runChanged: (runId) => store.changing?.run(runId),
      };
      store.runKeys = keys;
    } catch (error) {
      for (const reader of store.readers) reader.close();
      store.writer.close();
      throw error;
    }
    await store.ingest();
    await store.reap();
    store.every(options.ingestIntervalMs ?? 250, () => store.ingest());
    store.every(options.reapIntervalMs ?? 15_000, () => store.reap());
    return store;
  }

  /** Open, and the last background write worked. */
  get ready(): boolean {
    return this.writer !== undefined && this.closing === undefined && this.lastError === undefined;
  }

  /** Why the store is not ready, if it is not. */
  get problem(): string | undefined {
    if (this.closing) return "the server is shutting down";
    return this.lastError;
  }

  /** Runs a query on one of the reading connections. */
  async read<T>(work: (session: StoreSession) => Promise<T>): Promise<T> {
    const reader = this.readers[this.next++ % this.readers.length];
    if (reader === undefined || this.closing) throw new Error("the store is closed");
    const read = work(reader);
    const settled = read.catch(() => undefined);
    this.reading.add(settled);
    void settled.finally(() => this.reading.delete(settled));
    return read;
  }

  /**
   * A read whose answer is kept for the same `key` until a write changes it, or for at most
   * `readCacheMs` (`runCacheMs` for an answer about the runs of an id prefix; see
   * {@link ReadCache}). The key must name everything the answer depends on but the store: the
   * question and whose it is (the tenant).
   */
  cachedRead<T>(
    key: string,
    work: (session: StoreSession) => Promise<T>,
    scope: ReadScope<T> = {},
  ): Promise<T> {
    return this.cache.get(key, () => this.read(work), scope);
  }

  /**
   * Runs a change on the writing connection, after the changes before it. Once it is done,
   * before its caller hears of it, the answers kept are dropped: all of them, unless the change
   * `tellsRuns`, for then only those it may have changed are. A change tells its runs when it
   * changes rows only through `writeColumns` and `reapCrashedRuns`, which tell the session's
   * watcher of every run they change.
   */
  write<T>(
    work: (session: StoreSession) => Promise<T>,
    { tellsRuns = false }: { tellsRuns?: boolean } = {},
  ): Promise<T> {
    const writer = this.writer;
    if (writer === undefined) return Promise.reject(new Error("the store is closed"));
    const result = this.writing.then(async () => {
      const changing = tellsRuns ? new ChangedRuns() : undefined;
      this.changing = changing;
      try {
        const value = await work(writer);
        this.cache.changed(changing);
        return value;
      } catch (error) {
        // A change that failed was rolled back, but dropping every answer then costs little.
        this.cache.changed();
        throw error;
      } finally {
        this.changing = undefined;
      }
    });
    this.writing = result.catch(() => undefined);
    return result;
  }

  /** Writes in spooled rows, if there are any. */
  async ingest(): Promise<SpoolIngest> {
    if (!(await hasSpooled(this.path))) return { rows: 0, rejectedFiles: 0 };
    const began = performance.now();
    try {
      const result = await this.backgroundWrite((session) => ingestSpool(session));
      this.options.onIngest?.(result.rows, (performance.now() - began) / 1000, true);
      if (result.rows > 0) this.options.onChange?.();
      return result;
    } catch (error) {
      this.options.onIngest?.(0, (performance.now() - began) / 1000, false);
      throw error;
    }
  }

  private async reap(): Promise<void> {
    const reaped = await this.backgroundWrite((session) =>
      reapCrashedRuns(session, {
        staleAfterMs: this.options.staleAfterMs,
        ...(this.options.silentAfterMs !== undefined
          ? { silentAfterMs: this.options.silentAfterMs }
          : {}),
      }),
    );
    if (reaped.length > 0) this.options.onChange?.();
  }

  /**
   * A write of the background work, which tells the runs it changes (see `write`): once one
   * works, the last background failure is over.
   */
  private async backgroundWrite<T>(work: (session: StoreSession) => Promise<T>): Promise<T> {
    const result = await this.write(work, { tellsRuns: true });
    this.lastError = undefined;
    return result;
  }

  private every(ms: number, work: () => Promise<unknown>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.closing) return;
      busy = true;
      work()
        .catch((error: unknown) => {
          this.lastError = error instanceof Error ? error.message : String(error);
          this.options.onError?.(error);
        })
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Writes in the last spooled rows, then checkpoints and closes the store. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      // A query cut off by closing its connection would never settle: let reads finish first.
      await Promise.race([
        Promise.all(this.reading),
        new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref()),
      ]);
      await this.writing;
      const writer = this.writer;
      if (writer === undefined) return;
      try {
        if (await hasSpooled(this.path)) await ingestSpool(writer);
      } catch (error) {
        this.options.onError?.(error);
      }
      for (const reader of this.readers) reader.close();
      this.readers = [];
      this.writer = undefined;
      try {
        await writer.run("CHECKPOINT");
      } catch {
        // close() checkpoints again, or the write-ahead log keeps the rows for the next opener.
      }
      writer.close();
    })();
    return this.closing;
  }
}
