import { lookupRun } from "../query/find-run.js";
import { runStages } from "../query/run-stages.js";
import type { RunRow, StageRow } from "../record/rows.js";
import { ingestSpool } from "../store/ingest-spool.js";
import { withStore } from "../store/open-store.js";
import { DEFAULT_STALE_AFTER_MS, reapCrashedRuns } from "../store/reap.js";
import { liveClaim } from "../store/server-claim.js";
import { StoreError } from "../store/store-errors.js";

/** The fields of a run and its stages that resuming it needs. */
export interface StoredRun {
  run: Pick<
    RunRow,
    | "run_id"
    | "trace_id"
    | "span_id"
    | "pipeline"
    | "status"
    | "tenant_id"
    | "retry_count"
    | "failed_stage"
    | "error"
    | "entry_point"
    | "input_snapshot"
    | "config_hash"
    | "code_ref"
    | "stages_expected"
  >;
  stages: Pick<StageRow, "name" | "seq" | "status" | "snapshot">[];
}

export type StoredRunLookup =
  | { found: "one"; stored: StoredRun }
  | { found: "none" }
  | { found: "many"; candidates: string[] };

/** Where to read a run from: the store file, or the runtrail server that holds it. */
export interface RunSource {
  /** Absolute path of the store. */
  store: string;
  /** A server to read through; default: the one holding the store, if any. */
  url?: string;
  /** Its token; default `RUNTRAIL_TOKEN`. */
  token?: string;
}

/**
 * A run and its stages by id or prefix, as they are now: read through the runtrail server
 * when one holds the store (or `url` names one), else from the file, with spooled rows written
 * in and crashed runs marked first, as every reading command does.
 */
export async function readStoredRun(source: RunSource, id: string): Promise<StoredRunLookup> {
  const url = source.url ?? liveClaim(source.store)?.url;
  if (url !== undefined)
    return readThroughServer(url, source.token ?? process.env.RUNTRAIL_TOKEN, id);
  try {
    return await withStore(
      source.store,
      async (session) => {
        await ingestSpool(session);
        await reapCrashedRuns(session, { staleAfterMs: DEFAULT_STALE_AFTER_MS });
        const lookup = await lookupRun(session, id);
        if (lookup.found === "none") return { found: "none" };
        if (lookup.found === "many") {
          return { found: "many", candidates: lookup.candidates.map((r) => r.run_id) };
        }
        return {
          found: "one",
          stored: { run: lookup.run, stages: await runStages(session, lookup.run) },
        };
      },
      // Read as a command reads: a damaged file or one that is not a store is refused and left
      // as it is, never moved aside.
      { create: false, command: true },
    );
  } catch (error) {
    if (error instanceof StoreError && error.kind === "missing") return { found: "none" };
    throw error;
  }
}

async function readThroughServer(
  base: string,
  token: string | undefined,
  id: string,
): Promise<StoredRunLookup> {
  const response = await fetch(`${base.replace(/\/+$/, "")}/api/runs/${encodeURIComponent(id)}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (response.status === 404) return { found: "none" };
  if (response.status === 409) {
    const candidates = Array.isArray(body.candidates) ? body.candidates : [];
    return {
      found: "many",
      candidates: candidates.map((c) => String((c as { run_id?: unknown }).run_id)),
    };
  }
  if (!response.ok) {
    throw new Error(
      `the runtrail server at ${base} answered ${response.status}: ${String(body.detail ?? body.error ?? "")}`,
    );
  }
  const { stages, ...run } = body as unknown as RunRow & { stages: StageRow[] };
  return { found: "one", stored: { run, stages } };
}
