import type { RunLookup } from "../query/find-run.js";
import type { RunIds } from "../query/id-prefixes.js";
import type { RunFilter } from "../query/run-filter.js";
import type { GroupStats, StatsGroup } from "../query/run-stats.js";
import { type RunRow, type StageRow, TIME_FIELDS } from "../record/rows.js";
import { RUN_STATUSES, type RunStatus } from "../record/run-status.js";
import { liveClaim } from "../store/server-claim.js";
import { type CliIo, type ParsedValues, storePathOf, stringValue } from "./_command.js";
import { CliError, ExitCode } from "./cli-error.js";

export const URL_USAGE =
  "  --url URL          read through the runtrail server at URL (default: RUNTRAIL_URL, else the server holding the store, if any)";

/** A runtrail server the CLI reads through, instead of opening the store itself. */
export interface Remote {
  url: string;
  token: string | undefined;
  /** Found through the claim file of the store here: the server holds this very store. */
  holdsStoreHere: boolean;
  /** Aborts the requests under way, for a command that stops (Ctrl-C during `tail --follow`). */
  signal?: AbortSignal;
}

/**
 * The server to read through: `--url`, else `RUNTRAIL_URL`, else the server that holds the
 * store (its claim file says where it listens). None: the CLI opens the store itself.
 */
export function remoteOf(values: ParsedValues, io: CliIo): Remote | undefined {
  const token = io.env.RUNTRAIL_TOKEN || undefined;
  const given = stringValue(values, "url") ?? (io.env.RUNTRAIL_URL || undefined);
  if (given !== undefined) {
    if (!/^https?:\/\/[^/]/.test(given)) {
      throw new CliError(`--url: "${given}" is not an http(s) URL`, ExitCode.usage);
    }
    return { url: given.replace(/\/+$/, ""), token, holdsStoreHere: false };
  }
  const claim = liveClaim(storePathOf(values, io));
  return claim ? { url: claim.url, token, holdsStoreHere: true } : undefined;
}

/** A row as the API gives it back as a row object: ISO times to epoch microseconds. */
function rowOf<Row>(value: unknown): Row {
  const row = value as Record<string, unknown>;
  for (const key of TIME_FIELDS) {
    const time = row[key];
    if (typeof time === "string") row[key] = Date.parse(time) * 1000;
  }
  return row as Row;
}

interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

async function request(remote: Remote, path: string, query: Record<string, string | undefined>) {
  const url = new URL(`${remote.url}${path}`);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.append(key, value);
  }
  let response: Response;
  try {
    response = await fetch(url, {
      headers: {
        accept: "application/json",
        ...(remote.token ? { authorization: `Bearer ${remote.token}` } : {}),
      },
      signal: remote.signal
        ? AbortSignal.any([remote.signal, AbortSignal.timeout(30_000)])
        : AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new CliError(
      `cannot reach the runtrail server at ${remote.url}: ${cause ?? (error as Error).message}`,
    );
  }
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CliError(
      `the runtrail server at ${remote.url} answered ${response.status} with no JSON body`,
    );
  }
  return { status: response.status, body } satisfies ApiAnswer;
}

function failure(remote: Remote, answer: ApiAnswer): CliError {
  const detail = typeof answer.body.detail === "string" ? answer.body.detail : "";
  if (answer.status === 401 || answer.status === 403) {
    const hint =
      answer.status !== 401
        ? ""
        : remote.token
          ? " (check RUNTRAIL_TOKEN)"
          : " (set RUNTRAIL_TOKEN)";
    return new CliError(`the runtrail server at ${remote.url} refused: ${detail}${hint}`);
  }
  return new CliError(
    `the runtrail server at ${remote.url} answered ${answer.status}: ${detail || "no detail"}`,
    answer.status === 400 ? ExitCode.usage : ExitCode.failure,
  );
}

const isoOf = (micros: number | undefined) =>
  micros === undefined ? undefined : new Date(Math.floor(micros / 1000)).toISOString();

/** Runs as `listRuns` gives them, read through the server, up to `limit`, a page at a time. */
export async function remoteRuns(
  remote: Remote,
  filter: RunFilter,
  limit: number,
): Promise<{ runs: RunRow[]; total: number }> {
  const runs: RunRow[] = [];
  let total = 0;
  let cursor: string | undefined;
  do {
    const answer = await request(remote, "/api/runs", {
      status: filter.statuses?.join(","),
      pipeline: filter.pipeline,
      tenant: filter.tenant,
      since: isoOf(filter.since),
      until: isoOf(filter.until),
      limit: String(Math.min(1000, limit - runs.length)),
      cursor,
    });
    if (answer.status !== 200) throw failure(remote, answer);
    total = Number(answer.body.total);
    for (const run of answer.body.runs as unknown[]) runs.push(rowOf<RunRow>(run));
    cursor = (answer.body.next_cursor as string | null) ?? undefined;
  } while (cursor !== undefined && runs.length < limit);
  return { runs, total };
}

/** A run and its stages by prefix, as `show` needs them, read through the server. */
export async function remoteRun(
  remote: Remote,
  prefix: string,
): Promise<
  Exclude<RunLookup, { found: "one" }> | { found: "one"; run: RunRow; stages: StageRow[] }
> {
  const answer = await request(remote, `/api/runs/${encodeURIComponent(prefix)}`, {});
  if (answer.status === 404 && answer.body.error === "not_found") return { found: "none" };
  if (answer.status === 409) {
    const candidates = (answer.body.candidates as unknown[]).map((c) => rowOf<RunRow>(c));
    return { found: "many", candidates };
  }
  if (answer.status !== 200) throw failure(remote, answer);
  const { stages, links: _links, ...run } = answer.body;
  return {
    found: "one",
    run: rowOf<RunRow>(run),
    stages: (stages as unknown[]).map((s) => rowOf<StageRow>(s)),
  };
}

/** Lookups of lookalike runs under way at once. */
const TRACE_LOOKUPS_AT_ONCE = 8;

/**
 * The runs `lookalikeRuns` gives, read through the server: a lookup of each trace's first 16
 * hex digits, which names every run of the trace, and of each run id's first 8 (the server
 * lists at most 10 runs of each, the newest).
 */
export async function remoteLookalikeRuns(
  remote: Remote,
  runIds: readonly string[],
): Promise<RunIds[]> {
  const hex = runIds.map((id) => id.replaceAll("-", "").toLowerCase());
  const heads = [...new Set([...hex.map((h) => h.slice(0, 16)), ...hex.map((h) => h.slice(0, 8))])];
  const found: RunIds[] = [];
  const lookUp = async (head: string) => {
    const answer = await request(remote, `/api/runs/${head}`, {});
    if (answer.status === 404 && answer.body.error === "not_found") return;
    if (answer.status === 409) {
      for (const c of answer.body.candidates as Record<string, unknown>[]) found.push(idsOf(c));
      return;
    }
    if (answer.status !== 200) throw failure(remote, answer);
    found.push(idsOf(answer.body));
  };
  for (let i = 0; i < heads.length; i += TRACE_LOOKUPS_AT_ONCE) {
    await Promise.all(heads.slice(i, i + TRACE_LOOKUPS_AT_ONCE).map(lookUp));
  }
  return found;
}

function idsOf(run: Record<string, unknown>): RunIds {
  return { run_id: String(run.run_id), trace_id: (run.trace_id as string | null) ?? null };
}

/** Statistics as `runStats` gives them, read through the server. */
export async function remoteStats(
  remote: Remote,
  options: { groupBy: StatsGroup; since: number; stuckAfterMs: number; pipeline?: string },
): Promise<GroupStats[]> {
  const answer = await request(remote, "/api/stats", {
    group_by: options.groupBy,
    since: isoOf(options.since),
    pipeline: options.pipeline,
    stuck_after: String(options.stuckAfterMs / 1000),
  });
  if (answer.status !== 200) throw failure(remote, answer);
  return (answer.body.groups as Record<string, unknown>[]).map((g) => {
    const byStatus = g.by_status as Record<string, number>;
    return {
      key: g.key as string | null,
      runs: g.runs as number,
      byStatus: Object.fromEntries(RUN_STATUSES.map((s) => [s, byStatus[s] ?? 0])) as Record<
        RunStatus,
        number
      >,
      failureRate: g.failure_rate as number | null,
      p50Seconds: g.p50_seconds as number | null,
      p95Seconds: g.p95_seconds as number | null,
      p99Seconds: g.p99_seconds as number | null,
      llmCalls: g.llm_calls as number,
      tokens: g.tokens as number,
      inputTokens: g.input_tokens as number,
      outputTokens: g.output_tokens as number,
      rowsIn: g.rows_in as number,
      rowsOut: g.rows_out as number,
      stuck: g.stuck as number,
    };
  });
}
