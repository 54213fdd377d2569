import type { Context, Hono } from "hono";
import type { Env } from "hono/types";
import { listRuns, type RunPage } from "../query/list-runs.js";
import { pipelinesOf } from "../query/trends.js";
import type { RunRow } from "../record/rows.js";
import { isRunStatus, RUN_STATUSES } from "../record/run-status.js";
import { ApiError } from "../server/api-error.js";
import { decodeCursor, encodeCursor, filterOf, statusesOf } from "../server/run-query.js";
import type { Grant } from "../server/tokens.js";
import { formatCount, formatProgress, formatRunDuration, shortId } from "../util/format.js";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";
import { ColumnHeads, htmlFragment, StatusBadge, Time, truncate } from "./run-views.js";

/** Runs a page shows. */
const RUNS_PER_PAGE = 50;

/** The time windows of the filter, as `since` values (a duration ago). */
const WINDOWS: readonly { value: string; label: string }[] = [
  { value: "1h", label: "Last hour" },
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
  { value: "", label: "Any time" },
];

/** Pipelines the filter offers, at most. */
const MAX_PIPELINES = 500;
/** Characters of an error shown in the table; the whole error is in its `title`. */
const ERROR_CHARS = 90;
const COLUMNS = 11;

/** What the runs page was asked for: the filters of its form, and where the page starts. */
interface RunsQuery {
  statuses: string[];
  pipeline: string | undefined;
  tenant: string | undefined;
  since: string | undefined;
  cursor: string | undefined;
}

function textParam(c: Context, name: string): string | undefined {
  const value = c.req.query(name)?.trim();
  if (value === undefined || value === "" || value === "all") return undefined;
  if (value.length > 500) {
    throw new ApiError(400, "invalid_parameter", `${name}: longer than 500 characters`);
  }
  return value;
}

function runsQueryOf(c: Context): RunsQuery {
  // An empty status (`?status=`, or a trailing comma) asks for none in particular.
  const statuses: string[] = (statusesOf(c.req.queries("status")) ?? []).filter(Boolean);
  for (const status of statuses) {
    if (!isRunStatus(status)) {
      throw new ApiError(
        400,
        "invalid_parameter",
        `status: "${status}" is not a status; use ${RUN_STATUSES.join(", ")}`,
      );
    }
  }
  return {
    statuses,
    pipeline: textParam(c, "pipeline"),
    tenant: textParam(c, "tenant"),
    since: textParam(c, "since"),
    cursor: textParam(c, "cursor"),
  };
}

/** The query string of the filters, and of a page and a fragment when given. */
function queryString(
  query: RunsQuery,
  extra: { cursor?: string | undefined; fragment?: string } = {},
): string {
  const params = new URLSearchParams();
  for (const status of query.statuses) params.append("status", status);
  if (query.pipeline !== undefined) params.set("pipeline", query.pipeline);
  if (query.tenant !== undefined) params.set("tenant", query.tenant);
  if (query.since !== undefined) params.set("since", query.since);
  if (extra.cursor !== undefined) params.set("cursor", extra.cursor);
  if (extra.fragment !== undefined) params.set("fragment", extra.fragment);
  const text = params.toString();
  return text === "" ? "/" : `/?${text}`;
}

function isStuck(run: RunRow, stuckAfterMs: number, nowMs: number): boolean {
  return run.status === "running" && nowMs * 1000 - run.started_at > stuckAfterMs * 1000;
}

/** What an unsuccessful run has to say: its error, else why it stopped. */
function problemOf(run: RunRow): string | null {
  return run.error ?? run.error_message ?? run.status_reason;
}

function RunRowView(props: { run: RunRow; stuckAfterMs: number; nowMs: number }) {
  const { run } = props;
  const problem = problemOf(run);
  const stuck = isStuck(run, props.stuckAfterMs, props.nowMs);
  return (
    <tr>
      <td class="status-cell">
        <StatusBadge status={run.status} />
        {stuck ? <StatusBadge status="stuck" /> : null}
      </td>
      <td>{run.pipeline}</td>
      <td class="id">
        <a href={`/runs/${run.run_id}`} title={run.run_id}>
          {shortId(run.run_id, run.trace_id)}
        </a>
      </td>
      <td>
        <Time micros={run.started_at} />
      </td>
      <td class="num">{formatRunDuration(run, props.nowMs)}</td>
      <td class="num">{formatProgress(run)}</td>
      <td class="num">{formatCount(run.rows_in)}</td>
      <td class="num">{formatCount(run.rows_out)}</td>
      <td class="num">{formatCount(run.llm_calls)}</td>
      <td class="num">{formatCount(run.tokens)}</td>
      {problem === null ? (
        <td></td>
      ) : (
        <td class="error" title={problem}>
          {truncate(problem, ERROR_CHARS)}
        </td>
      )}
    </tr>
  );
}

function totalText(page: RunPage): string {
  return `${formatCount(page.runs.length)} of ${formatCount(page.total)}`;
}

/** The rows of the table: what the live script swaps in. */
function RunRows(props: {
  page: RunPage;
  filtered: boolean;
  live: boolean;
  stuckAfterMs: number;
  nowMs: number;
}) {
  const { page } = props;
  return (
    <tbody id="runs-rows" data-live={props.live ? "yes" : "no"} data-total-text={totalText(page)}>
      {page.runs.length === 0 ? (
        <tr>
          <td colspan={COLUMNS} class="empty">
            {props.filtered ? (
              <>
                No runs match these filters. <a href="/">Show every run</a>.
              </>
            ) : (
              <>
                <strong>No runs recorded yet.</strong> Runs show here as pipelines record them into
                this server's store: try <code>npm start</code> (the server with a demo pipeline
                feeding it) or <code>runtrail demo</code>, or add <code>RunTrailSpanProcessor</code>{" "}
                to your pipeline's OpenTelemetry provider.
              </>
            )}
          </td>
        </tr>
      ) : (
        page.runs.map((run) => (
          <RunRowView run={run} stuckAfterMs={props.stuckAfterMs} nowMs={props.nowMs} />
        ))
      )}
    </tbody>
  );
}

function Filters(props: { query: RunsQuery; grant: Grant; pipelines: string[] }) {
  const { query, grant } = props;
  const pipelines =
    query.pipeline !== undefined && !props.pipelines.includes(query.pipeline)
      ? [...props.pipelines, query.pipeline]
      : props.pipelines;
  const windows =
    query.since !== undefined && !WINDOWS.some((w) => w.value === query.since)
      ? [{ value: query.since, label: `Since ${query.since}` }, ...WINDOWS]
      : WINDOWS;
  return (
    <form method="get" action="/" class="filters" aria-label="Filter runs">
      <fieldset>
        <legend>Status</legend>
        <div class="checks">
          {RUN_STATUSES.map((status) => (
            <label class="check">
              <input
                type="checkbox"
                name="status"
                value={status}
                checked={query.statuses.includes(status)}
              />
              {status}
            </label>
          ))}
        </div>
      </fieldset>
      <label>
        Pipeline
        <select name="pipeline">
          <option value="">All pipelines</option>
          {pipelines.map((p) => (
            <option value={p} selected={p === query.pipeline}>
              {p}
            </option>
          ))}
        </select>
      </label>
      {grant.tenant === null ? (
        <label>
          Tenant
          <input name="tenant" type="text" value={query.tenant ?? ""} placeholder="any" />
        </label>
      ) : (
        <label>
          Tenant
          <input
            name="tenant"
            type="text"
            value={grant.tenant}
            readonly
            aria-describedby="tenant-hint"
          />
          <span id="tenant-hint" class="hint">
            Your token sees this tenant only.
          </span>
        </label>
      )}
      <label>
        Started
        <select name="since">
          {windows.map((w) => (
            <option value={w.value} selected={w.value === (query.since ?? "")}>
              {w.label}
            </option>
          ))}
        </select>
      </label>
      <div class="actions">
        <button type="submit">Apply filters</button>
        <a href="/">Clear</a>
      </div>
    </form>
  );
}

/** `GET /`: the runs, newest first, with filters and pages; `?fragment=rows` for the rows. */
export function registerRunsPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/", async (c) => {
    const grant = deps.readGrant(c);
    const query = runsQueryOf(c);
    const filter = filterOf(grant, {
      status: query.statuses,
      pipeline: query.pipeline,
      tenant: query.tenant,
      since: query.since,
    });
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const store = deps.store();
    const page = await store.read((s) => listRuns(s, { ...filter, limit: RUNS_PER_PAGE, cursor }));
    const nowMs = Date.now();
    const filtered =
      query.statuses.length > 0 ||
      query.pipeline !== undefined ||
      query.since !== undefined ||
      (query.tenant !== undefined && grant.tenant === null);
    // The first page takes new runs; a later one only changes while its runs are running.
    const live = cursor === undefined || page.runs.some((r) => r.status === "running");
    const rows = (
      <RunRows
        page={page}
        filtered={filtered}
        live={live}
        stuckAfterMs={deps.stuckAfterMs}
        nowMs={nowMs}
      />
    );
    if (c.req.query("fragment") === "rows") return htmlFragment(c, "rows", rows);

    // The pipelines of every run the grant sees, for the filter.
    const pipelines = await store.read((s) =>
      pipelinesOf(s, { tenant: grant.tenant ?? undefined }, MAX_PIPELINES),
    );
    const older =
      page.next === null ? undefined : queryString(query, { cursor: encodeCursor(page.next) });
    return htmlPage(
      c,
      200,
      <Layout title="Runs" section="runs" scripts={["/ui/runs-live.js"]}>
        <h1>Runs</h1>
        <Filters query={query} grant={grant} pipelines={pipelines} />
        <div class="table-wrap">
          <table
            id="runs"
            class="runs"
            data-live={
              live ? queryString(query, { cursor: query.cursor, fragment: "rows" }) : undefined
            }
          >
            <caption>
              Runs, newest first{cursor === undefined ? "" : ", older page"}:{" "}
              <span id="runs-total">{totalText(page)}</span>
              {filtered ? " matching the filters" : ""}. Times in UTC.
            </caption>
            <ColumnHeads
              columns={[
                "Status",
                "Pipeline",
                "Run",
                "Started",
                ["Duration", "num"],
                ["Stages", "num"],
                ["Rows in", "num"],
                ["Rows out", "num"],
                ["LLM calls", "num"],
                ["Tokens", "num"],
                "Error",
              ]}
            />
            {rows}
          </table>
        </div>
        {older !== undefined || cursor !== undefined ? (
          <nav class="pager" aria-label="Pages of runs">
            {cursor !== undefined ? <a href={queryString(query)}>Newest runs</a> : null}
            {older !== undefined ? (
              <a href={older} rel="next">
                Older runs
              </a>
            ) : null}
          </nav>
        ) : null}
      </Layout>,
    );
  });
}
