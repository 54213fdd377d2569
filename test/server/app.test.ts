import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/server/app.js";
import { ServedStore } from "../../src/server/served-store.js";
import { TokenSet } from "../../src/server/tokens.js";
import type { StoreSession } from "../../src/store/store-session.js";
import { writeRows } from "../../src/store/write-rows.js";
import { sharedStore } from "../cli/_fixtures.js";
import { eventually } from "../helpers/eventually.js";
import { blankRun } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";
import {
  getJson,
  type Recorded,
  recordKnownRuns,
  type Served,
  serveInProcess,
} from "./_fixtures.js";

let recorded: Recorded;
let served: Served;

beforeAll(async () => {
  const db = sharedStore();
  recorded = await recordKnownRuns(db);
  served = await serveInProcess(db, { jaegerUrl: "http://jaeger.example:16686/" });
});

afterAll(async () => {
  await served?.close();
});

const get = (path: string, init?: RequestInit) => getJson(served.app, path, init);
const id = (name: string) => recorded.runs[name]?.runId as string;
type ApiRun = { run_id: string; pipeline: string; status: string; tenant_id: string | null };
const runsOf = (body: Record<string, unknown>) => body.runs as ApiRun[];

describe("GET /api/runs", () => {
  it("lists runs newest first with the total", async () => {
    const { status, body } = await get("/api/runs");
    expect(status).toBe(200);
    const runs = runsOf(body);
    expect(body.total).toBe(8);
    expect(runs.map((r) => r.run_id)).toEqual(
      ["running", "cancelled", "rejected", "degraded", "failed", "ok2", "ok1", "old"].map(id),
    );
    expect(body.next_cursor).toBeNull();
    const first = runs[0] as Record<string, unknown>;
    expect(first.started_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(first).toMatchObject({ status: "running", stages_expected: 4, current_stage: "llm" });
  });

  it("pages with an opaque cursor through every run once", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `/api/runs?limit=3${cursor ? `&cursor=${cursor}` : ""}`;
      const { status, body } = await get(query);
      expect(status).toBe(200);
      expect(body.total).toBe(8);
      seen.push(...runsOf(body).map((r) => r.run_id));
      cursor = body.next_cursor as string | null;
    } while (cursor !== null);
    expect(seen).toHaveLength(8);
    expect(new Set(seen).size).toBe(8);
  });

  it("filters by status (several), pipeline, tenant, time, duration and error", async () => {
    const ids = async (query: string) => {
      const { status, body } = await get(`/api/runs?${query}`);
      expect(status, query).toBe(200);
      return runsOf(body)
        .map((r) => r.run_id)
        .sort();
    };
    const sorted = (...names: string[]) => names.map(id).sort();
    expect(await ids("status=failed,degraded")).toEqual(sorted("failed", "degraded"));
    expect(await ids("status=failed&status=rejected")).toEqual(sorted("failed", "rejected"));
    expect(await ids("pipeline=summarize")).toEqual(sorted("degraded", "rejected", "running"));
    expect(await ids("tenant=globex")).toEqual(sorted("failed", "degraded", "cancelled"));
    expect(await ids("since=7d&until=150m")).toEqual(sorted("ok1", "ok2", "failed"));
    expect(await ids("min_duration=10s")).toEqual(sorted("ok2"));
    expect(await ids("min_duration=5.5")).toEqual(sorted("ok2", "degraded"));
    // A degraded run keeps the error of the stage that failed.
    expect(await ids("has_error=true")).toEqual(sorted("failed", "degraded"));
    expect(await ids(`pipeline=${encodeURIComponent("ingest' OR '1'='1")}`)).toEqual([]);
  });

  it("answers a question again from what it kept until the next write; no-cache reads anew", async () => {
    const pipelineOf = async (init?: RequestInit) => {
      const { body } = await get("/api/runs", init);
      return runsOf(body).find((r) => r.run_id === id("ok1"))?.pipeline;
    };
    const rename = (name: string) => (s: StoreSession) =>
      s.run("UPDATE runs SET pipeline = $1 WHERE run_id = $2::UUID", [name, id("ok1")]);
    expect(await pipelineOf()).toBe("ingest");
    // A change the server does not make (a reading connection) is not seen until a write...
    await served.store.read(rename("renamed"));
    expect(await pipelineOf()).toBe("ingest");
    // ...or until a client asks for a fresh answer.
    expect(await pipelineOf({ headers: { "cache-control": "no-cache" } })).toBe("renamed");
    expect(await pipelineOf()).toBe("renamed");
    // The server's own writes are seen by the next request.
    await served.store.write(rename("ingest"));
    expect(await pipelineOf()).toBe("ingest");
  });

  it("gives 100 runs a page unless a limit is asked for", async () => {
    const own = await serveInProcess(tempStore());
    try {
      const now = Date.now() * 1000;
      const runs = Array.from({ length: 120 }, (_, i) => {
        const hex = (0xc0de0000 + i).toString(16);
        return blankRun({
          run_id: `${hex}-0000-4000-8000-000000000000`,
          trace_id: `${hex}000040008000000000000000`,
          span_id: "00000000000000a1",
          pipeline: "paged",
          status: "completed",
          started_at: now - (120 - i) * 1_000_000,
        });
      });
      await own.store.write((s) => writeRows(s, { runs, stages: [] }));
      const first = await getJson(own.app, "/api/runs");
      expect(first.status).toBe(200);
      expect(runsOf(first.body)).toHaveLength(100);
      expect(first.body.total).toBe(120);
      const rest = await getJson(own.app, `/api/runs?cursor=${first.body.next_cursor}`);
      expect(runsOf(rest.body)).toHaveLength(20);
      expect(rest.body.next_cursor).toBeNull();
    } finally {
      await own.close();
    }
  });

  it("answers 400 with { error, detail } for every invalid parameter", async () => {
    for (const query of [
      "status=finished",
      "status=failed,nope",
      "since=yesterday",
      "until=2026-13-45",
      "min_duration=fast",
      "has_error=maybe",
      "limit=0",
      "limit=1001",
      "limit=ten",
      "cursor=not-a-cursor",
      // Past the store's times: refused, not a failed query.
      "since=200000000d",
      "until=999999999999w",
      "min_duration=100000000000000000000000",
      "min_duration=100000000000000000000000w",
      "since=2026-02-30",
    ]) {
      const { status, body } = await get(`/api/runs?${query}`);
      expect(status, query).toBe(400);
      expect(body.error, query).toBe("invalid_parameter");
      expect(typeof body.detail, query).toBe("string");
      expect((body.detail as string).length, query).toBeGreaterThan(5);
    }
  });
});

describe("GET /api/runs/:id", () => {
  it("gives the run with its stages and a Jaeger link, by run id or trace id prefix", async () => {
    const run = recorded.runs.ok1;
    for (const key of [
      run?.runId,
      run?.traceId,
      "aaaa0000000000000000000000000001",
      "AAAA-0000-0000-0000-0000-0000-0000-0001",
    ]) {
      const { status, body } = await get(`/api/runs/${key}`);
      expect(status, key).toBe(200);
      expect(body.run_id).toBe(run?.runId);
    }
    const { body } = await get(`/api/runs/${run?.runId}`);
    const stages = body.stages as { name: string; status: string; llm_calls: number }[];
    expect(stages.map((s) => s.name)).toEqual(["stage-1", "stage-2", "stage-3"]);
    expect(stages.every((s) => s.status === "completed" && s.llm_calls === 1)).toBe(true);
    expect(body.links).toEqual({
      self: `/api/runs/${run?.runId}`,
      jaeger: `http://jaeger.example:16686/trace/${run?.traceId}`,
    });
    expect(body).toMatchObject({ llm_calls: 3, tokens: 330, stages_completed: 3 });
  });

  it("answers 404 for no match, 409 with candidates for several, 400 for a short prefix", async () => {
    const none = await get("/api/runs/9999");
    expect(none.status).toBe(404);
    expect(none.body.error).toBe("not_found");
    const many = await get("/api/runs/aaaa");
    expect(many.status).toBe(409);
    expect(many.body.error).toBe("ambiguous");
    expect((many.body.candidates as { run_id: string }[]).map((c) => c.run_id).sort()).toEqual(
      [id("ok1"), id("ok2")].sort(),
    );
    // With their trace ids, so that a client can tell which prefixes name which run.
    for (const candidate of many.body.candidates as { run_id: string; trace_id: string }[]) {
      expect(candidate.trace_id).toMatch(/^[0-9a-f]{32}$/);
    }
    for (const bad of ["abc", "zzzz", "a".repeat(65)]) {
      const response = await get(`/api/runs/${bad}`);
      expect(response.status, bad).toBe(400);
      expect(typeof response.body.detail).toBe("string");
    }
  });
});

describe("GET /api/runs/:id/status", () => {
  it("shows the live state of a running run with progress k/n", async () => {
    const { status, body } = await get(`/api/runs/${id("running")}/status`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: "running",
      finished: false,
      current_stage: "llm",
      progress: "1/4",
      completed_stages: ["fetch"],
      stages_expected: 4,
    });
    expect(typeof body.seconds_since_heartbeat).toBe("number");
  });

  it("shows a finished run as finished", async () => {
    const { body } = await get(`/api/runs/${id("degraded")}/status`);
    expect(body).toMatchObject({
      status: "degraded",
      finished: true,
      progress: null,
      completed_stages: ["fetch"],
      failed_stages: ["llm"],
    });
  });
});

describe("GET /api/stats", () => {
  it("groups by pipeline over a window, with rates, percentiles and the running count", async () => {
    const { status, body } = await get("/api/stats?since=7d");
    expect(status).toBe(200);
    const groups = body.groups as Record<string, unknown>[];
    expect(groups.map((g) => g.key)).toEqual(["ingest", "summarize"]);
    const ingest = groups[0] as Record<string, unknown>;
    expect(ingest.runs).toBe(4);
    expect(ingest.by_status).toMatchObject({ completed: 2, failed: 1, cancelled: 1 });
    expect(ingest.failure_rate).toBeCloseTo(1 / 4);
    expect(ingest.llm_calls).toBe(5);
    expect(ingest.p50_seconds).toBeGreaterThan(0);
    expect(body).toMatchObject({ group_by: "pipeline", crashed: 0 });
  });

  it("groups by stage and by tenant, and counts stuck runs", async () => {
    const stages = await get("/api/stats?since=7d&group_by=stage");
    expect((stages.body.groups as { key: string }[]).map((g) => g.key)).toContain("stage-1");
    const tenants = await get("/api/stats?since=7d&group_by=tenant");
    expect((tenants.body.groups as { key: string | null }[]).map((g) => g.key)).toEqual([
      null,
      "acme",
      "globex",
    ]);
    const stuck = await get("/api/stats?since=7d&stuck_after=5m");
    expect(stuck.body.stuck).toBe(1);
    const notStuck = await get("/api/stats?since=7d&stuck_after=1h");
    expect(notStuck.body.stuck).toBe(0);
    expect((await get("/api/stats?group_by=team")).status).toBe(400);
  });
});

describe("seed 001's pipeline run API", () => {
  it("lists runs with result, failure_reason and the stage lists, filtered by result", async () => {
    const all = await get("/api/pipeline/runs?limit=100");
    expect(all.status).toBe(200);
    expect(all.body.total).toBe(8);
    const failed = await get("/api/pipeline/runs?result=failed");
    const runs = failed.body.runs as Record<string, unknown>[];
    expect(runs.map((r) => r.run_id)).toEqual([id("failed")]);
    expect(runs[0]).toMatchObject({
      result: "failed",
      failure_reason: "Error: disk full",
      stages_executed: ["extract"],
      stages_failed: ["extract"],
      retry_count: 0,
      metadata: {},
    });
    const stopped = await get("/api/pipeline/runs?result=stopped");
    expect((stopped.body.runs as { run_id: string }[]).map((r) => r.run_id).sort()).toEqual(
      [id("rejected"), id("cancelled")].sort(),
    );
    const success = await get("/api/pipeline/runs?result=success&limit=2");
    expect(success.body.total).toBe(4);
    expect(success.body.runs as unknown[]).toHaveLength(2);
    expect((await get("/api/pipeline/runs?result=ok")).status).toBe(400);
  });

  it("gets one run by id", async () => {
    const { status, body } = await get(`/api/pipeline/runs/${id("ok2")}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ run_id: id("ok2"), result: "success", failure_reason: null });
    expect(body.ended_at).toMatch(/Z$/);
  });
});

describe("health, OpenAPI and unknown paths", () => {
  it("answers 503 with Retry-After while the store is not open, and is alive but not ready", async () => {
    const opening = createApp({ store: () => undefined, tokens: TokenSet.none });
    const runs = await getJson(opening, "/api/runs");
    expect(runs).toMatchObject({ status: 503, body: { error: "unavailable" } });
    expect(runs.headers.get("retry-after")).toBe("1");
    expect((await getJson(opening, "/readyz")).status).toBe(503);
    expect((await getJson(opening, "/healthz")).status).toBe(200);
  });

  it("is not ready while its background writes fail, and ready again once one works", async () => {
    // Crashed runs looked for every 20 ms; the spool, empty here, every 5 ms.
    const store = await ServedStore.open(tempStore(), {
      staleAfterMs: 3_600_000,
      reapIntervalMs: 20,
      ingestIntervalMs: 5,
    });
    try {
      const app = createApp({ store: () => store, tokens: TokenSet.none });
      const write = store.write;
      store.write = () => Promise.reject(new Error("disk full"));
      await eventually(async () => {
        const ready = await getJson(app, "/readyz");
        expect(ready).toMatchObject({
          status: 503,
          body: { status: "not_ready", detail: "disk full" },
        });
      });
      // Looking at an empty spool writes nothing, so it does not make the store ready.
      for (let i = 0; i < 20; i++) {
        await sleep(10);
        expect((await getJson(app, "/readyz")).status, `after ${i * 10} ms`).toBe(503);
      }
      store.write = write;
      await eventually(async () => {
        expect(await getJson(app, "/readyz")).toMatchObject({
          status: 200,
          body: { status: "ready" },
        });
      });
    } finally {
      await store.close();
    }
  });

  it("is healthy and ready", async () => {
    expect(await get("/healthz")).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(await get("/readyz")).toMatchObject({ status: 200, body: { status: "ready" } });
  });

  it("describes every endpoint in /openapi.json, from the schemas that validate requests", async () => {
    const { status, body } = await get("/openapi.json");
    expect(status).toBe(200);
    const paths = body.paths as Record<string, Record<string, { parameters?: { name: string }[] }>>;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining([
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/status",
        "/api/runs/{id}/events",
        "/metrics",
        "/api/stats",
        "/api/pipeline/runs",
        "/api/pipeline/runs/{id}",
        "/healthz",
        "/readyz",
      ]),
    );
    const listParams = paths["/api/runs"]?.get?.parameters?.map((p) => p.name) ?? [];
    expect(listParams).toEqual(expect.arrayContaining(["status", "since", "limit", "cursor"]));
    expect(paths["/api/runs"]?.delete).toBeDefined();
  });

  it("answers 400, not a failed query, for times past the store's in stats and deletes", async () => {
    for (const [path, method] of [
      ["/api/stats?since=99999999999999w", "GET"],
      ["/api/stats?stuck_after=99999999999999w", "GET"],
      ["/api/runs?older_than=99999999999999w&dry_run=true", "DELETE"],
    ] as const) {
      const { status, body } = await get(path, { method });
      expect(status, path).toBe(400);
      expect(body.error, path).toBe("invalid_parameter");
    }
  });

  it("deletes as runtrail prune does: a unit required, no parameter it does not know", async () => {
    const bare = await get("/api/runs?older_than=0&dry_run=true", { method: "DELETE" });
    expect(bare).toMatchObject({ status: 400, body: { error: "invalid_parameter" } });
    expect(bare.body.detail).toMatch(/older_than/);
    const unknown = await get("/api/runs?older_than=1s&tenant=acme&dry_run=true", {
      method: "DELETE",
    });
    expect(unknown).toMatchObject({ status: 400, body: { error: "invalid_parameter" } });
    expect(unknown.body.detail).toMatch(/tenant/);
    const dry = await get("/api/runs?older_than=1000w&dry_run=true", { method: "DELETE" });
    expect(dry.status).toBe(200);
    expect(dry.body).toEqual({
      runs: 0,
      stages: 0,
      artifact_folders: 0,
      snapshots: 0,
      dry_run: true,
    });
  });

  it("answers unknown paths and oversized bodies with JSON errors", async () => {
    const missing = await get("/api/nothing");
    expect(missing).toMatchObject({ status: 404, body: { error: "not_found" } });
    const big = await get("/api/runs?older_than=1d", {
      method: "DELETE",
      body: "x".repeat(2 * 1024 * 1024),
      headers: { "content-type": "text/plain" },
    });
    expect(big).toMatchObject({ status: 413, body: { error: "too_large" } });
  });
});

describe("tokens and tenants", () => {
  let tenantApp: Served;
  /** This block's own store and runs, apart from those of the blocks above. */
  let tenantRuns: Recorded;

  beforeAll(async () => {
    const db = sharedStore();
    tenantRuns = await recordKnownRuns(db);
    tenantApp = await serveInProcess(db, {
      tokens: TokenSet.fromText(
        "acme-read:acme:read, all-read:*:read+metrics, acme-admin:acme:admin, ingest-only:*:ingest, acme-metrics:acme:read+metrics",
      ),
    });
  });

  afterAll(async () => {
    await tenantApp?.close();
  });

  const as = (token: string | undefined, path: string, method = "GET") =>
    getJson(tenantApp.app, path, {
      method,
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });

  it("refuses requests without a known token, and scopes a token may not use", async () => {
    const none = await as(undefined, "/api/runs");
    expect(none).toMatchObject({ status: 401, body: { error: "unauthorized" } });
    expect((await as("wrong", "/api/runs")).status).toBe(401);
    expect((await as("ingest-only", "/api/runs")).status).toBe(403);
    expect((await as("acme-read", "/api/runs?older_than=1d", "DELETE")).status).toBe(403);
    expect((await as(undefined, "/healthz")).status).toBe(200);
  });

  it("keeps /metrics, which covers every tenant, from a tenant's token", async () => {
    const tenant = await as("acme-metrics", "/metrics");
    expect(tenant).toMatchObject({ status: 403, body: { error: "forbidden" } });
    expect(tenant.body.detail).toMatch(/every tenant/);
    // A token for all tenants gets past the check (this app serves no metrics: 404).
    expect((await as("all-read", "/metrics")).status).toBe(404);
  });

  it("shows a tenant's token only its tenant's runs, in every endpoint", async () => {
    const list = await as("acme-read", "/api/runs");
    expect(list.status).toBe(200);
    const runs = runsOf(list.body);
    expect(runs.length).toBe(4);
    expect(runs.every((r) => r.tenant_id === "acme")).toBe(true);
    expect((await as("acme-read", "/api/runs?tenant=globex")).status).toBe(403);
    expect((await as("all-read", "/api/runs")).body.total).toBe(8);

    const other = tenantRuns.runs.failed?.runId as string;
    for (const path of [
      `/api/runs/${other}`,
      `/api/runs/${other}/status`,
      `/api/runs/${other}/events`,
      `/api/pipeline/runs/${other}`,
    ]) {
      expect((await as("acme-read", path)).status, path).toBe(404);
    }
    const own = tenantRuns.runs.ok1?.runId as string;
    expect((await as("acme-read", `/api/runs/${own}`)).status).toBe(200);
    // "dddd" names the rejected run, which has no tenant: not acme's.
    expect((await as("all-read", "/api/runs/dddd")).status).toBe(200);
    expect((await as("acme-read", "/api/runs/dddd")).status).toBe(404);

    const stats = await as("acme-read", "/api/stats?since=7d&group_by=tenant");
    expect((stats.body.groups as { key: string }[]).map((g) => g.key)).toEqual(["acme"]);
    const pipeline = await as("acme-read", "/api/pipeline/runs");
    expect(pipeline.body.total).toBe(4);
  });

  it("deletes only the tenant's old runs, as an admin of the tenant", async () => {
    // Another tenant's run as old as acme's, which acme's admin must leave alone.
    const old = tenantRuns.runs.old?.runId as string;
    const globexOld = "99990000-0000-0000-0000-000000000009";
    await tenantApp.store.write(async (session) => {
      await session.run(
        `INSERT INTO runs SELECT * REPLACE ('globex' AS tenant_id, $2::UUID AS run_id, '99990000000000000000000000000009' AS trace_id)
         FROM runs WHERE run_id = $1::UUID`,
        [old, globexOld],
      );
      await session.run(
        "INSERT INTO stages SELECT * REPLACE ($2::UUID AS run_id) FROM stages WHERE run_id = $1::UUID",
        [old, globexOld],
      );
    });
    expect((await as("all-read", "/api/runs")).body.total).toBe(9);
    const dry = await as("acme-admin", "/api/runs?older_than=30d&dry_run=true", "DELETE");
    expect(dry).toMatchObject({ status: 200, body: { runs: 1, stages: 1, dry_run: true } });
    const done = await as("acme-admin", "/api/runs?older_than=30d", "DELETE");
    expect(done).toMatchObject({ status: 200, body: { runs: 1, stages: 1, dry_run: false } });
    expect((await as("all-read", "/api/runs")).body.total).toBe(8);
    // (Read from the store: the server's index of run ids never saw the row written past it.)
    const left = await tenantApp.store.read((session) =>
      session.one<{ tenant_id: string; stages: number }>(
        "SELECT tenant_id, (SELECT count(*) FROM stages s WHERE s.run_id = r.run_id)::INTEGER AS stages FROM runs r WHERE run_id = $1::UUID",
        [globexOld],
      ),
    );
    expect(left).toEqual({ tenant_id: "globex", stages: 1 });
    expect((await as("all-read", `/api/runs/${old}`)).status).toBe(404);
    expect((await as("acme-admin", "/api/runs?older_than=soon", "DELETE")).status).toBe(400);
  });
});
