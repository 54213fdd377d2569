import { createRoute, OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import { timeout } from "hono/timeout";
import type { OtlpIngest } from "../otlp/otlp-ingest.js";
import { lookupRun, type RunLookup } from "../query/find-run.js";
import { listRuns } from "../query/list-runs.js";
import { runStages } from "../query/run-stages.js";
import { groupStatsJson, runStats, type StatsGroup } from "../query/run-stats.js";
import { type RunRow, type StageRow, withIsoTimes } from "../record/rows.js";
import { InvalidIdPrefixError, normalizeIdPrefix } from "../record/run-id.js";
import { FAILURE_STATUSES, isFinished, type RunStatus } from "../record/run-status.js";
import { pruneResultJson, pruneRuns } from "../store/prune.js";
import type { StoreSession } from "../store/store-session.js";
import { isoOfMicros } from "../util/duration.js";
import { cookieToken, errorPage, isPublicWebPath, wantsHtml } from "../web/page.js";
import { registerWebRoutes } from "../web/web-routes.js";
import { ApiError } from "./api-error.js";
import { registerArtifactRoutes } from "./artifact-routes.js";
import { DEFAULT_OTLP_BODY_BYTES, otlpErrorResponse, registerOtlpRoute } from "./otlp-route.js";
import type { ReadScope } from "./read-cache.js";
import {
  decodeCursor,
  durationMs,
  encodeCursor,
  filterOf,
  limitOf,
  statusesOf,
} from "./run-query.js";
import {
  DeleteResultSchema,
  DeleteRunsQuery,
  API_ERRORS as ERRORS,
  HealthSchema,
  IdParam,
  jsonContent as json,
  ListRunsQuery,
  PipelineRunSchema,
  PipelineRunsQuery,
  PipelineRunsSchema,
  RUN_LOOKUP_ERRORS,
  RunDetailSchema,
  RunPageSchema,
  RunStatusSchema,
  StatsQuery,
  StatsSchema,
} from "./schemas.js";
import type { ServedStore } from "./served-store.js";
import { allows, type Grant, OPEN_GRANT, type Scope, type TokenSet } from "./tokens.js";
import { discardUnreadBody } from "./unread-body.js";

/** What the server tells its metrics; see `RunMetrics`. */
export interface ServerMetrics {
  refresh(read: ServedStore): Promise<void>;
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  render(accept: string | undefined): Promise<{ contentType: string; body: string }>;
  observeOtlp?(result: "accepted" | "rejected", spans: number): void;
}

export interface AppOptions {
  /** The store the server holds; undefined while it is being opened. */
  store: () => ServedStore | undefined;
  /** Accepted tokens; none means open (only allowed on loopback, checked by the caller). */
  tokens: TokenSet;
  /** Base URL of the Jaeger UI, for links to a run's trace. Default `RUNTRAIL_JAEGER_URL`. */
  jaegerUrl?: string;
  /** A running run older than this counts as stuck. Default 1 h. */
  stuckAfterMs?: number;
  /** Longest a request may take. Default 15 s. */
  requestTimeoutMs?: number;
  /** Largest request body, but for OTLP. Default 1 MiB. */
  maxBodyBytes?: number;
  /** The OTLP receiver's writer; `/v1/traces` answers 503 while there is none. */
  otlp?: () => OtlpIngest | undefined;
  /** Largest OTLP request body as sent, and once inflated. Default 16 MiB and 32 MiB. */
  maxOtlpBodyBytes?: number;
  maxOtlpDecodedBytes?: number;
  /** OTLP request bodies held at once, as sent and inflated, until answered. Default 128 MiB. */
  maxOtlpHeldBytes?: number;
  metrics?: ServerMetrics;
  /** Wakes streams of run events when the store changed. */
  changes?: ChangeFeed;
  /** Where failures (500s) are logged. Default: stderr. */
  log?: (message: string) => void;
}

/** Lets event streams wait for the next change of the store instead of polling blindly. */
export class ChangeFeed {
  private waiters = new Set<() => void>();
  /** The server is shutting down: streams end. */
  closed = false;

  close(): void {
    this.closed = true;
    this.notify();
  }

  notify(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves at the next change, or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.waiters.add(wake);
    });
  }
}

type Env = { Variables: { grant: Grant } };

const DEFAULT_STUCK_AFTER_MS = 3_600_000;
const OTLP_PATH = "/v1/traces";
function runStatusOf(run: RunRow, stages: StageRow[], now = Date.now()) {
  return {
    run_id: run.run_id,
    status: run.status,
    finished: isFinished(run.status),
    current_stage: run.current_stage,
    progress:
      run.stages_expected === null ? null : `${run.stages_completed}/${run.stages_expected}`,
    stages_completed: run.stages_completed,
    stages_expected: run.stages_expected,
    completed_stages: stages
      .filter((s) => s.status === "completed" || s.status === "cached")
      .map((s) => s.name),
    failed_stages: stages.filter((s) => s.status === "failed").map((s) => s.name),
    seconds_since_heartbeat:
      run.last_heartbeat === null ? null : Math.max(0, now * 1000 - run.last_heartbeat) / 1e6,
    started_at: isoOfMicros(run.started_at),
    finished_at: run.finished_at === null ? null : isoOfMicros(run.finished_at),
    duration_seconds: run.duration_seconds,
  };
}

/** The titles of error pages, by status (a 413 is shown as a 400). */
const ERROR_TITLES = {
  400: "Bad request",
  401: "Sign in needed",
  403: "Not allowed",
  404: "Not found",
  409: "More than one match",
  413: "Too large",
  503: "The store is not open yet",
  504: "That took too long",
} as const;

/** Seed 001's words for how a run ended. */
function resultOf(status: RunStatus): "success" | "failed" | "stopped" | "running" {
  switch (status) {
    case "completed":
    case "degraded":
      return "success";
    case "rejected":
    case "cancelled":
      return "stopped";
    case "running":
      return "running";
    default:
      return "failed";
  }
}

const RESULT_STATUSES: Record<"success" | "failed" | "stopped", RunStatus[]> = {
  success: ["completed", "degraded"],
  failed: [...FAILURE_STATUSES],
  stopped: ["rejected", "cancelled"],
};

function pipelineRunOf(run: RunRow): z.infer<typeof PipelineRunSchema> {
  return {
    run_id: run.run_id,
    pipeline: run.pipeline,
    status: run.status,
    started_at: isoOfMicros(run.started_at),
    ended_at: run.finished_at === null ? null : isoOfMicros(run.finished_at),
    result: resultOf(run.status),
    failure_reason: run.error ?? run.error_message ?? run.status_reason,
    stages_executed: run.stages_executed,
    stages_failed: run.stages_failed,
    retry_count: run.retry_count,
    metadata: run.metadata ?? {},
  };
}

/** The run one id or prefix names, for this grant; 400, 404 or 409 otherwise. */
function oneRun(lookup: RunLookup, id: string): RunRow {
  if (lookup.found === "one") return lookup.run;
  if (lookup.found === "none") throw new ApiError(404, "not_found", `no run matches "${id}"`);
  throw new ApiError(
    409,
    "ambiguous",
    `"${id}" matches ${lookup.candidates.length >= 10 ? "10 or more" : lookup.candidates.length} runs; give more of the id`,
    {
      candidates: lookup.candidates.map((r) => ({
        run_id: r.run_id,
        trace_id: r.trace_id,
        pipeline: r.pipeline,
        status: r.status,
        started_at: isoOfMicros(r.started_at),
      })),
    },
  );
}

/** The hex digits of a run id or trace id prefix in a path; 400 for anything else. */
function checkedPrefix(id: string): string {
  try {
    return normalizeIdPrefix(id);
  } catch (error) {
    if (error instanceof InvalidIdPrefixError) {
      throw new ApiError(400, "invalid_id", error.message);
    }
    throw error;
  }
}

function errorBody(error: ApiError) {
  return { error: error.error, detail: error.detail, ...error.extra };
}

/**
 * The runtrail server's HTTP app: the query API, `/metrics`, health and the OpenAPI document.
 * Tests call it in-process with `app.request(...)`; `runtrail serve` puts it on a port.
 */
export function createApp(options: AppOptions) {
  const jaegerUrl = (options.jaegerUrl ?? process.env.RUNTRAIL_JAEGER_URL)?.replace(/\/+$/, "");
  const stuckAfterMs = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const app = new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const where = issue?.path.join(".") || result.target;
        throw new ApiError(
          400,
          "invalid_parameter",
          `${where}: ${issue?.message ?? "invalid"}`.replace(/^: /, ""),
        );
      }
    },
  });

  const store = () => {
    const s = options.store();
    if (s === undefined || !s.ready) {
      throw new ApiError(503, "unavailable", s?.problem ?? "the store is being opened");
    }
    return s;
  };

  app.onError((error, c) => {
    const failed = () =>
      log(
        `runtrail serve: ${c.req.method} ${c.req.path} failed: ${(error as Error).stack ?? String(error)}`,
      );
    if (c.req.path === OTLP_PATH) {
      // Whatever refused the request (the tokens, the timeout), OTLP clients read a Status.
      const contentType = c.req.header("content-type");
      if (error instanceof ApiError) {
        return otlpErrorResponse(contentType, error.status, error.detail);
      }
      if (error instanceof HTTPException) {
        return otlpErrorResponse(contentType, error.status, error.message || "refused");
      }
      failed();
      return otlpErrorResponse(contentType, 500, "the server failed; see its log");
    }
    if (error instanceof ApiError) {
      if (error.status === 503) c.header("Retry-After", "1");
      if (!wantsHtml(c)) return c.json(errorBody(error), error.status);
      return errorPage(c, error.status, ERROR_TITLES[error.status], error.detail);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      const name =
        status === 413 ? "too_large" : status === 504 ? "timeout" : `http_${String(status)}`;
      if (!wantsHtml(c)) return c.json({ error: name, detail: error.message || name }, status);
      // A page that took too long (or a body too large) says so with its status, as the API does.
      if (status === 413 || status === 504) {
        return errorPage(c, status, ERROR_TITLES[status], error.message || name);
      }
    }
    failed();
    return wantsHtml(c)
      ? errorPage(c, 500, "Something went wrong", "The server failed; see its log.")
      : c.json({ error: "internal", detail: "the server failed; see its log" }, 500);
  });
  app.notFound((c) =>
    wantsHtml(c)
      ? errorPage(c, 404, "Not found", `There is no page at ${c.req.path}.`)
      : c.json(
          { error: "not_found", detail: `no such endpoint: ${c.req.method} ${c.req.path}` },
          404,
        ),
  );

  app.use("*", async (c, next) => {
    const began = performance.now();
    await next();
    options.metrics?.observeRequest(
      c.req.method,
      c.req.routePath,
      c.res.status,
      (performance.now() - began) / 1000,
    );
  });
  // A request answered without its body being read (refused, unauthorised, too large) has the
  // rest of it read and dropped first, up to its path's limit. A client still sending then gets
  // the answer and keeps its connection; otherwise the HTTP adapter cuts the connection when
  // the body has not arrived half a second after the answer.
  const queryMaxBody = options.maxBodyBytes ?? 1024 * 1024;
  const otlpMaxBody = options.maxOtlpBodyBytes ?? DEFAULT_OTLP_BODY_BYTES;
  app.use("*", async (c, next) => {
    await next();
    if (c.req.method === "GET" || c.req.method === "HEAD") return;
    await discardUnreadBody(c.req.raw, c.req.path === OTLP_PATH ? otlpMaxBody : queryMaxBody);
  });
  app.use(
    "*",
    timeout(
      options.requestTimeoutMs ?? 15_000,
      new HTTPException(504, { message: "the request took too long" }),
    ),
  );
  const queryBodyLimit = bodyLimit({
    maxSize: queryMaxBody,
    onError: () => {
      throw new ApiError(413, "too_large", "the request body is over the limit");
    },
  });
  // OTLP bodies have limits of their own, applied by their route.
  app.use("*", (c, next) => (c.req.path === OTLP_PATH ? next() : queryBodyLimit(c, next)));
  app.use("*", async (c, next) => {
    const header = c.req.header("authorization");
    if (options.tokens.size === 0) {
      c.set("grant", OPEN_GRANT);
      return next();
    }
    const path = c.req.path;
    if (
      path === "/healthz" ||
      path === "/readyz" ||
      path === "/openapi.json" ||
      isPublicWebPath(path)
    ) {
      c.set("grant", { name: "anonymous", tenant: null, scopes: new Set() });
      return next();
    }
    // A browser sends the token it gave the login page in a cookie.
    const token =
      header?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim() ?? cookieToken(c.req.header("cookie"));
    const grant = token ? options.tokens.authenticate(token) : undefined;
    if (grant === undefined && wantsHtml(c)) {
      const next = encodeURIComponent(c.req.url.slice(new URL(c.req.url).origin.length));
      return c.redirect(`/login?next=${next}${token ? "&failed=1" : ""}`, 303);
    }
    if (grant === undefined) {
      c.header("WWW-Authenticate", 'Bearer realm="runtrail"');
      throw new ApiError(
        401,
        "unauthorized",
        token ? "the token is not known" : "send a token: Authorization: Bearer <token>",
      );
    }
    c.set("grant", grant);
    return next();
  });

  const need = (c: Context<Env>, scope: Scope): Grant => {
    const grant = c.get("grant");
    if (!allows(grant, scope)) {
      throw new ApiError(403, "forbidden", `this token has no ${scope} scope`);
    }
    return grant;
  };

  /**
   * A read for this request's token, answered from the store's kept answers when the same
   * question of the same tenant was answered and no write changed its answer since (see
   * `ServedStore.cachedRead`; `scope` says what the answer is about).
   * `Cache-Control: no-cache` asks for a fresh answer. What is kept is shared: callers build
   * their answers from it and change nothing in it.
   */
  const cachedRead = <T>(
    c: Context<Env>,
    grant: Grant,
    question: string,
    work: (session: StoreSession) => Promise<T>,
    scope: Omit<ReadScope<T>, "fresh"> = {},
  ): Promise<T> => {
    const asked = c.req.header("cache-control") ?? "";
    const fresh = /\bno-(cache|store)\b/i.test(asked);
    return store().cachedRead(`${grant.tenant ?? "*"}\n${question}`, work, { ...scope, fresh });
  };
  /** The path and query of the request, which name its question. */
  const questionOf = (c: Context<Env>) => {
    const { pathname, search } = new URL(c.req.url);
    return pathname + search;
  };

  /**
   * Reads the run an id or prefix names, as the request's token may see it, and `then` of it;
   * kept (as `what` of that prefix) for pollers of the same run, until a write changes a run
   * the prefix may name.
   * `then` reads only that run's rows, and nothing that changes with time.
   */
  const readRun = async <T>(
    c: Context<Env>,
    id: string,
    what: string,
    then: (session: StoreSession, run: RunRow) => Promise<T>,
    rowsOf?: (answer: T) => number,
  ): Promise<T> => {
    const grant = need(c, "read");
    const prefix = checkedPrefix(id);
    return cachedRead(
      c,
      grant,
      `${what} ${prefix}`,
      async (s) =>
        then(s, oneRun(await lookupRun(s, prefix, grant.tenant ?? undefined, store().runKeys), id)),
      { idPrefix: prefix, ...(rowsOf ? { rowsOf } : {}) },
    );
  };
  const findOne = (c: Context<Env>, id: string) => readRun(c, id, "run", async (_, run) => run);
  /** The run and its stages, read together. */
  const findWithStages = (c: Context<Env>, id: string) =>
    readRun(
      c,
      id,
      "run and stages",
      async (s, run) => ({ run, stages: await runStages(s, run) }),
      (answer) => 1 + answer.stages.length,
    );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/runs",
      summary: "Runs, newest first, a page at a time",
      request: { query: ListRunsQuery },
      responses: { 200: json(RunPageSchema, "a page of runs"), ...ERRORS },
    }),
    async (c) => {
      const grant = need(c, "read");
      const query = c.req.valid("query");
      const filter = filterOf(grant, query);
      const limit = limitOf(query.limit, 100);
      const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const body = await cachedRead(c, grant, questionOf(c), async (s) => {
        const page = await listRuns(s, { ...filter, limit, ...(cursor ? { cursor } : {}) });
        return {
          runs: page.runs.map(withIsoTimes),
          total: page.total,
          next_cursor: page.next === null ? null : encodeCursor(page.next),
        };
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/runs/{id}",
      summary: "One run with its stages, by run id or trace id (or a prefix of either)",
      request: { params: IdParam },
      responses: { 200: json(RunDetailSchema, "the run"), ...RUN_LOOKUP_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { run, stages } = await findWithStages(c, id);
      const links: { self: string; jaeger?: string } = { self: `/api/runs/${run.run_id}` };
      if (jaegerUrl) links.jaeger = `${jaegerUrl}/trace/${run.trace_id}`;
      return c.json({ ...withIsoTimes(run), stages: stages.map(withIsoTimes), links }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/runs/{id}/status",
      summary: "The live state of a run, for polling",
      request: { params: IdParam },
      responses: { 200: json(RunStatusSchema, "the run's state"), ...RUN_LOOKUP_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { run, stages } = await findWithStages(c, id);
      return c.json(runStatusOf(run, stages), 200);
    },
  );

  app.get("/api/runs/:id/events", async (c) => {
    const id = c.req.param("id");
    const first = await findOne(c, id);
    const tenant = c.get("grant").tenant ?? undefined;
    const changes = options.changes;
    return streamSSE(c, async (stream) => {
      let closed = false;
      stream.onAbort(() => {
        closed = true;
      });
      let lastStatus = "";
      const stagesSeen = new Map<string, string>();
      let run = first;
      let eventId = 0;
      for (;;) {
        const stages = await store().read((s) => runStages(s, run));
        for (const stage of stages) {
          const state = `${stage.status}/${stage.finished_at ?? ""}`;
          if (stagesSeen.get(stage.span_id) === state) continue;
          stagesSeen.set(stage.span_id, state);
          await stream.writeSSE({
            event: "stage",
            id: String(++eventId),
            data: JSON.stringify(withIsoTimes(stage)),
          });
        }
        const status = runStatusOf(run, stages);
        const { seconds_since_heartbeat: _, ...comparable } = status;
        const text = JSON.stringify(comparable);
        if (text !== lastStatus) {
          lastStatus = text;
          await stream.writeSSE({
            event: "status",
            id: String(++eventId),
            data: JSON.stringify(status),
          });
        }
        if (status.finished) {
          await stream.writeSSE({ event: "end", id: String(++eventId), data: "{}" });
          return;
        }
        if (closed || changes?.closed) return;
        await (changes ? changes.next(1000) : stream.sleep(500));
        if (closed || changes?.closed) return;
        const lookup = await store().read((s) => lookupRun(s, run.run_id, tenant, store().runKeys));
        if (lookup.found !== "one") return;
        run = lookup.run;
      }
    });
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/stats",
      summary: "Counts by status, failure rate, duration percentiles, LLM calls, tokens, rows",
      request: { query: StatsQuery },
      responses: { 200: json(StatsSchema, "statistics per group"), ...ERRORS },
    }),
    async (c) => {
      const grant = need(c, "read");
      const query = c.req.valid("query");
      const filter = filterOf(grant, query);
      const since = filter.since ?? (Date.now() - 24 * 3_600_000) * 1000;
      const groupBy: StatsGroup = query.group_by ?? "pipeline";
      const stuck =
        query.stuck_after === undefined
          ? stuckAfterMs
          : durationMs("stuck_after", query.stuck_after);
      const body = await cachedRead(c, grant, questionOf(c), async (s) => {
        const groups = await runStats(s, { ...filter, since, groupBy, stuckAfterMs: stuck });
        // Stuck and crashed runs are counted once per run, whatever the grouping.
        const runGroups =
          groupBy === "stage"
            ? await runStats(s, { ...filter, since, groupBy: "pipeline", stuckAfterMs: stuck })
            : groups;
        return {
          group_by: groupBy,
          since: isoOfMicros(since),
          until: filter.until === undefined ? null : isoOfMicros(filter.until),
          groups: groups.map(groupStatsJson),
          stuck: runGroups.reduce((n, g) => n + g.stuck, 0),
          crashed: runGroups.reduce((n, g) => n + g.byStatus.crashed, 0),
        };
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/pipeline/runs",
      summary: "Runs in the shape of the pipeline run history API (result, failure_reason, ...)",
      request: { query: PipelineRunsQuery },
      responses: { 200: json(PipelineRunsSchema, "runs, newest first"), ...ERRORS },
    }),
    async (c) => {
      const grant = need(c, "read");
      const query = c.req.valid("query");
      const limit = limitOf(query.limit, 100);
      const page = await store().read((s) =>
        listRuns(s, {
          limit,
          ...(grant.tenant !== null ? { tenant: grant.tenant } : {}),
          ...(query.result ? { statuses: RESULT_STATUSES[query.result] } : {}),
        }),
      );
      return c.json({ runs: page.runs.map(pipelineRunOf), total: page.total }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/pipeline/runs/{id}",
      summary: "One run in the shape of the pipeline run history API",
      request: { params: IdParam },
      responses: { 200: json(PipelineRunSchema, "the run"), ...RUN_LOOKUP_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      return c.json(pipelineRunOf(await findOne(c, id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/runs",
      summary: "Deletes finished runs (and their stages) older than a time, as `runtrail prune`",
      request: { query: DeleteRunsQuery },
      responses: { 200: json(DeleteResultSchema, "what was deleted"), ...ERRORS },
    }),
    async (c) => {
      const grant = need(c, "admin");
      const query = c.req.valid("query");
      // As `runtrail prune --older-than`: a unit is required, so a bare number is refused.
      const olderThan = durationMs("older_than", query.older_than, { unit: "required" });
      const statuses = statusesOf(query.status);
      const dryRun = query.dry_run === "true";
      const s = store();
      const result = await s.write((session) =>
        pruneRuns(session, {
          before: (Date.now() - olderThan) * 1000,
          dryRun,
          ...(statuses ? { statuses } : {}),
          ...(grant.tenant !== null ? { tenant: grant.tenant } : {}),
        }),
      );
      if (!dryRun && result.runs > 0) options.changes?.notify();
      return c.json(pruneResultJson(result, dryRun), 200);
    },
  );

  registerArtifactRoutes(app, { findOne, storePath: () => store().path });

  registerWebRoutes(app, {
    store,
    readGrant: (c) => need(c, "read"),
    findWithStages,
    jaegerUrl,
    stuckAfterMs,
    tokensRequired: options.tokens.size > 0,
  });

  registerOtlpRoute(app, {
    ingest: () => (options.store()?.ready ? options.otlp?.() : undefined),
    grant: (c) => need(c as Context<Env>, "ingest"),
    observe: (result, spans) => options.metrics?.observeOtlp?.(result, spans),
    log,
    maxBodyBytes: otlpMaxBody,
    ...(options.maxOtlpDecodedBytes !== undefined
      ? { maxDecodedBytes: options.maxOtlpDecodedBytes }
      : {}),
    ...(options.maxOtlpHeldBytes !== undefined ? { maxHeldBytes: options.maxOtlpHeldBytes } : {}),
  });

  app.get("/metrics", async (c) => {
    const grant = need(c, "metrics");
    // Its figures and exemplars are every tenant's: a tenant's token would see the others'.
    if (grant.tenant !== null) {
      throw new ApiError(
        403,
        "forbidden",
        "the metrics cover every tenant: read them with a token for all tenants (*)",
      );
    }
    const metrics = options.metrics;
    if (metrics === undefined) throw new ApiError(404, "not_found", "metrics are off");
    const s = store();
    await metrics.refresh(s);
    const { contentType, body } = await metrics.render(c.req.header("accept"));
    return c.body(body, 200, { "Content-Type": contentType });
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/healthz",
      summary: "The process is up",
      responses: { 200: json(HealthSchema, "up") },
    }),
    (c) => c.json({ status: "ok" }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/readyz",
      summary: "The store is open and writable",
      responses: {
        200: json(HealthSchema, "ready"),
        503: json(HealthSchema, "not ready"),
      },
    }),
    (c) => {
      const s = options.store();
      if (s?.ready) return c.json({ status: "ready" }, 200);
      return c.json(
        { status: "not_ready", detail: s?.problem ?? "the store is being opened" },
        503,
      );
    },
  );

  // Routes not validated by a schema, described for the document all the same.
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/api/runs/{id}/events",
    summary: "Server-sent events of a run: `stage` and `status` as they change, then `end`",
    request: { params: IdParam },
    responses: {
      200: { description: "an event stream", content: { "text/event-stream": { schema: {} } } },
      ...RUN_LOOKUP_ERRORS,
    },
  });
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics; OpenMetrics with exemplars when the Accept header asks for it",
    responses: {
      200: { description: "the exposition", content: { "text/plain": { schema: {} } } },
      ...ERRORS,
    },
  });

  app.openAPIRegistry.registerPath({
    method: "post",
    path: OTLP_PATH,
    summary:
      "OTLP/HTTP trace export (ingest scope): protobuf or JSON, gzip or identity. The token's tenant, if it has one, is the tenant of the runs",
    request: {
      body: {
        content: { "application/x-protobuf": { schema: {} }, "application/json": { schema: {} } },
      },
    },
    responses: {
      200: {
        description: "ExportTraceServiceResponse; partialSuccess counts the spans rejected",
        content: { "application/x-protobuf": { schema: {} }, "application/json": { schema: {} } },
      },
      400: { description: "google.rpc.Status: the body is not an export request" },
      413: { description: "google.rpc.Status: the body is over the limit, sent or inflated" },
      415: { description: "google.rpc.Status: another content type or encoding" },
      429: { description: "google.rpc.Status: the writer is behind; see Retry-After" },
      503: { description: "google.rpc.Status: the store is not open; see Retry-After" },
    },
  });

  app.doc("/openapi.json", {
    openapi: "3.0.3",
    info: {
      title: "runtrail",
      version: "1",
      description:
        "Runs and stages of data and LLM pipelines, recorded from OpenTelemetry spans. Errors are `{ error, detail }`.",
    },
  });

  return app;
}

export type RunTrailApp = ReturnType<typeof createApp>;
