import type { RunRow, StageRow } from "../record/rows.js";
import { hrTimeToMicros } from "../record/span-view.js";
import type { ServedStore } from "../server/served-store.js";
import { columnsOf, joinJsonLists, jsonText, recycleColumns } from "../store/column-batch.js";
import { STAGE_COLUMNS } from "../store/row-columns.js";
import { stageValues } from "../store/stage-columns.js";
import type { StoreSession } from "../store/store-session.js";
import { columnBatchOf, partsOf, type StoredSpan, writeColumns } from "../store/write-rows.js";
import { RemoteSpan } from "./remote-span.js";
import { TraceFilter } from "./trace-filter.js";
import { hasRoot, traceRows } from "./trace-rows.js";

export interface OtlpIngestOptions {
  /** Spans accepted and not yet written; past this, requests are turned away. Default 100,000. */
  maxPendingSpans?: number;
  /** Spans of recent traces kept in memory to rebuild their runs. Default 200,000. */
  maxCachedSpans?: number;
  /** Spans of one trace; more are rejected. Default 100,000. */
  maxTraceSpans?: number;
  /** Told of every write: spans stored, runs written, seconds it took, whether it worked. */
  onWrite?: (spans: number, runs: number, seconds: number, ok: boolean) => void;
}

/** What became of the spans of one request. */
export interface IngestResult {
  /** Spans not recorded, with why (the first reason). */
  rejected: number;
  errorMessage: string | undefined;
}

/** The writer is behind: the request is not taken, the client retries later. */
export class IngestBusyError extends Error {
  override readonly name = "IngestBusyError";
  constructor(readonly retryAfterSeconds: number) {
    super("the server is writing what it received already; retry later");
  }
}

/** The server is shutting down, or the store is not open. */
export class IngestClosedError extends Error {
  override readonly name = "IngestClosedError";
}

/**
 * Spans written in one transaction at most: larger writes are no faster per span and hold
 * more memory in DuckDB while they run.
 */
const MAX_WRITE_SPANS = 25_000;

interface Submission {
  spans: RemoteSpan[];
  /**
   * The spans as `otlp_spans` stores them, and those texts as one JSON list: made as the
   * request is taken, while the store writes the requests before it, rather than in the write.
   */
  texts: string[];
  textList: string;
  tenant: string | null;
  resolve: (result: IngestResult) => void;
  reject: (error: unknown) => void;
}

interface RowKeys {
  runs: string[];
  stages: { run_id: string; span_id: string }[];
}

/** A trace whose spans arrived, kept while it may receive more. */
interface TraceEntry {
  /**
   * The tenant its spans were sent for: that of the token that sent its first spans, null for
   * a token of every tenant (or none), whose spans name their own.
   */
  tenant: string | null;
  spans: Map<string, RemoteSpan>;
  /** The rows its last build gave, when it had no root: some may be gone from the next. */
  provisional: RowKeys | undefined;
}

function keysOf(runs: readonly RunRow[], stages: readonly StageRow[]): RowKeys {
  return {
    runs: runs.map((r) => r.run_id),
    stages: stages.map((s) => ({ run_id: s.run_id, span_id: s.span_id })),
  };
}

/**
 * Records spans received over OTLP. Spans arrive in any order, in any number of requests, and
 * more than once; each is kept in `otlp_spans` and the rows of its trace are rebuilt from all
 * of the trace's spans, so a retry changes nothing and a restart loses nothing.
 *
 * Requests queue while a write is under way and go together in the next one (one transaction:
 * spans and rows), and each is answered once its spans are durable. Past `maxPendingSpans`
 * queued, requests are turned away with {@link IngestBusyError} rather than held in memory.
 */
export class OtlpIngest {
  private readonly maxPendingSpans: number;
  private readonly maxCachedSpans: number;
  private readonly maxTraceSpans: number;
  private queue: Submission[] = [];
  private pendingSpans = 0;
  private cachedSpans = 0;
  /** Recent traces, least recently touched first. */
  private readonly traces = new Map<string, TraceEntry>();
  private loop: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly store: ServedStore,
    private readonly options: OtlpIngestOptions,
    /** The traces the store has spans of; rebuilt larger when full. */
    private filter: TraceFilter,
  ) {
    this.maxPendingSpans = options.maxPendingSpans ?? 100_000;
    this.maxCachedSpans = options.maxCachedSpans ?? 200_000;
    this.maxTraceSpans = options.maxTraceSpans ?? 100_000;
  }

  /** Starts ingesting into a store, learning which traces it holds spans of. */
  static async open(store: ServedStore, options: OtlpIngestOptions = {}): Promise<OtlpIngest> {
    const filter = await store.write((session) => storedTraces(session));
    return new OtlpIngest(store, options, filter);
  }

  /** Spans accepted and not yet durable. */
  get pending(): number {
    return this.pendingSpans;
  }

  /** Whether a request would be turned away now, before its body is read. */
  get busy(): boolean {
    return this.pendingSpans >= this.maxPendingSpans;
  }

  /**
   * Records the spans of one request for a tenant (null: as the spans say). Resolves once they
   * are durable, with the spans that were rejected.
   */
  submit(spans: RemoteSpan[], tenant: string | null): Promise<IngestResult> {
    if (this.closed) return Promise.reject(new IngestClosedError("the server is shutting down"));
    if (spans.length === 0) return Promise.resolve({ rejected: 0, errorMessage: undefined });
    if (this.pendingSpans > 0 && this.pendingSpans + spans.length > this.maxPendingSpans) {
      return Promise.reject(new IngestBusyError(1));
    }
    this.pendingSpans += spans.length;
    const texts = spans.map((span) => JSON.stringify(span));
    const textList = jsonText(texts);
    return new Promise((resolve, reject) => {
      this.queue.push({ spans, texts, textList, tenant, resolve, reject });
      this.loop ??= this.drain();
    });
  }

  /** Stops taking requests and waits for those taken to be written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.loop;
  }

  private async drain(): Promise<void> {
    // Requests that arrived together go together: a write starts once the I/O already under
    // way (other requests' bodies) has been read.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      // A write takes requests in the order they came, up to MAX_WRITE_SPANS (at least one).
      let count = 0;
      let taken = 0;
      while (taken < this.queue.length && (taken === 0 || count < MAX_WRITE_SPANS)) {
        count += (this.queue[taken] as Submission).spans.length;
        taken += 1;
      }
      const batch = this.queue.splice(0, taken);
      const began = performance.now();
      try {
        // Rows change only through writeColumns, which tells the store of every run it changes.
        const { results, runs } = await this.store.write((session) => this.write(session, batch), {
          tellsRuns: true,
        });
        this.options.onWrite?.(count, runs, (performance.now() - began) / 1000, true);
        for (const [i, submission] of batch.entries())
          submission.resolve(results[i] as IngestResult);
      } catch (error) {
        this.options.onWrite?.(0, 0, (performance.now() - began) / 1000, false);
        for (const submission of batch) submission.reject(error);
      } finally {
        this.pendingSpans -= count;
      }
    }
    this.loop = undefined;
  }

  private async write(
    session: StoreSession,
    batch: Submission[],
  ): Promise<{ results: IngestResult[]; runs: number }> {
    if (this.filter.full) this.filter = await storedTraces(session);
    const wanted = new Set<string>();
    for (const submission of batch) {
      for (const span of submission.spans) {
        const id = span.traceId;
        if (!this.traces.has(id) && !wanted.has(id) && this.filter.mightHave(id)) wanted.add(id);
      }
    }
    if (wanted.size > 0) await this.load(session, [...wanted]);

    const now = Date.now();
    const touched = new Map<string, TraceEntry>();
    const fresh = new Set<string>();
    const stored: StoredSpan[] = [];
    /** The texts of the stored spans, as JSON lists, a request's at a time. */
    const textLists: string[] = [];
    const results: IngestResult[] = [];
    for (const submission of batch) {
      const first = stored.length;
      let rejected = 0;
      let reason: string | undefined;
      const reject = (why: string) => {
        rejected += 1;
        reason ??= why;
      };
      for (let i = 0; i < submission.spans.length; i++) {
        const span = submission.spans[i] as RemoteSpan;
        const id = span.traceId;
        let entry = this.traces.get(id);
        if (entry === undefined) {
          entry = { tenant: submission.tenant, spans: new Map(), provisional: undefined };
          this.traces.set(id, entry);
          fresh.add(id);
        } else {
          // Least recently used last: eviction takes the first.
          this.traces.delete(id);
          this.traces.set(id, entry);
        }
        if (submission.tenant !== null && entry.tenant !== submission.tenant) {
          if (entry.tenant !== null) {
            reject(`trace ${id} belongs to another tenant`);
            continue;
          }
          if (entry.spans.size > 0) {
            // Sent first with a token of every tenant: its runs' tenant is the one its spans
            // name, which a tenant's token may not take over.
            reject(
              `trace ${id} was sent with a token of every tenant; a tenant's token may not add to it`,
            );
            continue;
          }
          entry.tenant = submission.tenant;
        }
        if (entry.spans.has(span.spanId)) continue; // sent before: nothing changes
        if (entry.spans.size >= this.maxTraceSpans) {
          reject(`trace ${id} has more than ${this.maxTraceSpans} spans`);
          continue;
        }
        entry.spans.set(span.spanId, span);
        this.cachedSpans += 1;
        touched.set(id, entry);
        stored.push({
          trace_id: id,
          span_id: span.spanId,
          tenant_id: submission.tenant,
          received_at: now * 1000,
          span: submission.texts[i] as string,
        });
      }
      // All of a request's spans stored (the rule), its list serves; else one of those stored.
      textLists.push(
        stored.length - first === submission.spans.length
          ? submission.textList
          : jsonText(stored.slice(first).map((span) => span.span)),
      );
      const more = rejected - 1;
      results.push({
        rejected,
        errorMessage:
          reason === undefined ? undefined : more > 0 ? `${reason} (and ${more} more)` : reason,
      });
    }

    // Runs of traces first seen now are appended, the others merged.
    const runs = new Map<string, RunRow>();
    const stages = new Map<string, StageRow>();
    const newRuns = new Map<string, RunRow>();
    const newStages = new Map<string, StageRow>();
    const staleRuns: string[] = [];
    const staleStages: RowKeys["stages"] = [];
    const provisional = new Map<TraceEntry, RowKeys | undefined>();
    let since = Number.POSITIVE_INFINITY;
    for (const [id, entry] of touched) {
      const rows = traceRows(entry.spans, { tenant: entry.tenant, heartbeat: now * 1000 });
      const isNew = fresh.has(id);
      for (const run of rows.runs) (isNew ? newRuns : runs).set(run.run_id, run);
      for (const stage of rows.stages) {
        (isNew ? newStages : stages).set(`${stage.run_id}/${stage.span_id}`, stage);
      }
      for (const span of entry.spans.values()) {
        since = Math.min(since, hrTimeToMicros(span.startTime));
      }
      const before = entry.provisional;
      if (before !== undefined) {
        const runIds = new Set(rows.runs.map((r) => r.run_id));
        const stageKeys = new Set(rows.stages.map((s) => `${s.run_id}/${s.span_id}`));
        staleRuns.push(...before.runs.filter((id) => !runIds.has(id)));
        staleStages.push(
          ...before.stages.filter(
            (s) => runIds.has(s.run_id) && !stageKeys.has(`${s.run_id}/${s.span_id}`),
          ),
        );
      }
      provisional.set(entry, rows.rootless ? keysOf(rows.runs, rows.stages) : undefined);
    }

    const rowColumns = columnBatchOf({
      runs: [...runs.values()].filter((run) => !newRuns.has(run.run_id)),
      newRuns: [...newRuns.values()],
      stages: [],
      stagesToMerge: [...stages.values()].filter((s) => !newStages.has(`${s.run_id}/${s.span_id}`)),
    });
    const newStageColumns = columnsOf(STAGE_COLUMNS, [...newStages.values()]);
    try {
      if (stored.length > 0) {
        await writeColumns(session, rowColumns, {
          spans: stored,
          spanTexts: joinJsonLists(textLists),
          newStages: newStageColumns,
          staleRuns,
          staleStages,
          since: Math.floor(since),
        });
      }
    } catch (error) {
      // What is in memory must be what is stored: these traces are read again when needed.
      for (const [id, entry] of touched) {
        this.traces.delete(id);
        this.cachedSpans -= entry.spans.size;
      }
      throw error;
    } finally {
      // Written or not, nothing reads the columns again: their chunks serve the next write.
      for (const part of [...partsOf(rowColumns), newStageColumns]) recycleColumns(part);
    }
    for (const [entry, keys] of provisional) entry.provisional = keys;
    for (const id of fresh) {
      if (touched.has(id)) {
        this.filter.add(id);
      } else if (this.traces.get(id)?.spans.size === 0) {
        this.traces.delete(id);
      }
    }
    this.evict();
    return { results, runs: runs.size + newRuns.size };
  }

  /** Reads the stored spans of traces into memory. */
  private async load(session: StoreSession, traceIds: string[]): Promise<void> {
    await stageValues(session, "runtrail_otlp_lookup", traceIds);
    const rows = await session.all<{
      trace_id: string;
      span_id: string;
      tenant_id: string | null;
      span: string;
    }>(
      `SELECT trace_id, span_id, tenant_id, span FROM otlp_spans
       WHERE trace_id IN (SELECT unnest(v) FROM temp.main.runtrail_otlp_lookup)
       ORDER BY received_at`,
    );
    const loaded = new Map<string, TraceEntry>();
    for (const row of rows) {
      let entry = loaded.get(row.trace_id);
      if (entry === undefined) {
        entry = { tenant: null, spans: new Map(), provisional: undefined };
        loaded.set(row.trace_id, entry);
      }
      entry.tenant ??= row.tenant_id;
      if (!entry.spans.has(row.span_id)) {
        entry.spans.set(row.span_id, RemoteSpan.fromJSON(row.trace_id, row.span_id, row.span));
      }
    }
    for (const [id, entry] of loaded) {
      // Rows of a trace without its root are provisional, to be replaced: only those are built.
      if (!hasRoot(entry.spans)) {
        const rows = traceRows(entry.spans, { tenant: entry.tenant, heartbeat: 0 });
        entry.provisional = keysOf(rows.runs, rows.stages);
      }
      this.traces.set(id, entry);
      this.cachedSpans += entry.spans.size;
    }
  }

  /** Lets go of the least recently touched traces past the memory budget; the store keeps them. */
  private evict(): void {
    for (const [id, entry] of this.traces) {
      if (this.cachedSpans <= this.maxCachedSpans) break;
      this.traces.delete(id);
      this.cachedSpans -= entry.spans.size;
    }
  }
}

/** The trace ids the store has spans of, in a filter with room for as many again. */
async function storedTraces(session: StoreSession): Promise<TraceFilter> {
  const ids = await session.all<{ trace_id: string }>("SELECT DISTINCT trace_id FROM otlp_spans");
  const filter = new TraceFilter(Math.max(1 << 20, ids.length * 2));
  for (const row of ids) filter.add(row.trace_id);
  return filter;
}
