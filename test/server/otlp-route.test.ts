import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ExportResponse, RpcStatus } from "../../src/otlp/otlp-schema.js";
import type { RunRow } from "../../src/record/rows.js";
import { createApp } from "../../src/server/app.js";
import { TokenSet } from "../../src/server/tokens.js";
import { withStore } from "../../src/store/open-store.js";
import { reapCrashedRuns } from "../../src/store/reap.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type HandSpan, jsonBody, protobufBody, pythonRun } from "../otlp/_bodies.js";
import { getJson, type Served, servedPerTest } from "./_fixtures.js";

const { serve: served, stop } = servedPerTest();

/** The spans the receiver kept, read from the store once the server has let go of it. */
async function storedSpanCount(db: string): Promise<number | undefined> {
  const row = await withStore(db, (session) =>
    session.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM otlp_spans"),
  );
  return row?.n;
}

interface Sent {
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  bytes: Uint8Array;
  json(): Record<string, unknown>;
}

async function post(
  s: Served,
  body: string | Uint8Array,
  headers: Record<string, string> = { "content-type": "application/json" },
): Promise<Sent> {
  const response = await s.app.request("/v1/traces", { method: "POST", body, headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    retryAfter: response.headers.get("retry-after"),
    bytes,
    json: () => JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>,
  };
}

const sendJson = (s: Served, spans: HandSpan[], headers: Record<string, string> = {}) =>
  post(s, jsonBody(spans), { "content-type": "application/json", ...headers });

/**
 * The statuses of requests sent at once: some taken (200) and some refused with 429, `Retry-After`
 * and `RESOURCE_EXHAUSTED` (saying `why`), and nothing else.
 */
function someRefused(results: readonly Sent[], why?: RegExp): number[] {
  const statuses = results.map((x) => x.status);
  expect(statuses).toContain(200);
  expect(statuses).toContain(429);
  expect(statuses.every((x) => x === 200 || x === 429)).toBe(true);
  for (const refused of results.filter((x) => x.status === 429)) {
    expect(refused.retryAfter).toBe("1");
    expect(refused.json()).toMatchObject({
      code: 8,
      ...(why ? { message: expect.stringMatching(why) } : {}),
    });
  }
  return statuses;
}

/** The store holds the traces whose requests were answered 200, and no other. */
async function expectStoredAsAnswered(
  s: Served,
  traces: readonly { traceId: string }[],
  statuses: readonly number[],
): Promise<void> {
  const { body } = await getJson(s.app, "/api/runs?limit=100");
  const stored = (body.runs as RunRow[]).map((run) => run.trace_id).sort();
  const accepted = traces
    .filter((_, i) => statuses[i] === 200)
    .map((r) => r.traceId)
    .sort();
  expect(stored).toEqual(accepted);
}

async function runOf(s: Served, id: string): Promise<Record<string, unknown>> {
  const { status, body } = await getJson(s.app, `/api/runs/${id}`);
  expect(status).toBe(200);
  return body;
}

describe("POST /v1/traces", () => {
  it("records a run sent by another language's SDK in OTLP/JSON", async () => {
    const s = await served(tempStore());
    const r = pythonRun();
    const sent = await sendJson(s, [
      r.root,
      r.extract,
      r.transformFailed,
      r.transform,
      r.summarize,
      r.llm,
    ]);
    expect(sent.status).toBe(200);
    expect(sent.contentType).toMatch(/^application\/json/);
    expect(sent.json()).toEqual({});
    const run = await runOf(s, r.traceId.slice(0, 8));
    expect(run).toMatchObject({
      trace_id: r.traceId,
      pipeline: "nightly-etl",
      service_name: "py-etl",
      status: "degraded",
      retry_count: 1,
      rows_in: 500,
      rows_out: 12,
      llm_calls: 1,
      tokens: 1500,
      input_tokens: 1200,
      output_tokens: 300,
      stages_expected: 3,
      stages_completed: 3,
      stages_executed: ["extract", "transform", "summarize"],
      stages_failed: ["transform"],
      error: "ValueError: bad row 17",
      owner_host: null,
      duration_seconds: 5,
    });
    const stages = run.stages as Record<string, unknown>[];
    expect(stages.map((st) => [st.name, st.attempt, st.status])).toEqual([
      ["extract", 1, "completed"],
      ["transform", 1, "failed"],
      ["transform", 2, "completed"],
      ["summarize", 1, "completed"],
    ]);
    expect(stages[1]).toMatchObject({ error_type: "ValueError", error_stack: "Traceback ..." });
  });

  it("shows a run as running from its first span, whatever order the rest come in", async () => {
    const s = await served(tempStore());
    const r = pythonRun();
    // A stage's child before the stage, the stage before its run, the root last.
    expect((await sendJson(s, [r.llm])).status).toBe(200);
    expect(await runOf(s, r.traceId)).toMatchObject({ status: "running", llm_calls: 1 });
    expect((await sendJson(s, [r.summarize, r.transform])).status).toBe(200);
    const running = await runOf(s, r.traceId);
    expect(running).toMatchObject({ status: "running", llm_calls: 1, tokens: 1500 });
    expect((running.stages as { name: string }[]).map((st) => st.name)).toEqual([
      "transform",
      "summarize",
    ]);
    expect((await sendJson(s, [r.root])).status).toBe(200);
    expect((await sendJson(s, [r.transformFailed, r.extract])).status).toBe(200);

    const other = await served(tempStore());
    await sendJson(other, [r.root, r.extract, r.transformFailed, r.transform, r.summarize, r.llm]);
    const inOrder = await runOf(other, r.traceId);
    const outOfOrder = await runOf(s, r.traceId);
    for (const run of [inOrder, outOfOrder]) delete run.last_heartbeat;
    expect(outOfOrder).toEqual(inOrder);
    expect(outOfOrder.status).toBe("degraded");
  });

  it("changes nothing when a request comes again", async () => {
    const db = tempStore();
    const s = await served(db);
    const r = pythonRun();
    const spans = [r.root, r.extract, r.summarize, r.llm];
    expect((await sendJson(s, spans)).status).toBe(200);
    const first = await runOf(s, r.traceId);
    expect((await sendJson(s, spans)).status).toBe(200);
    expect((await sendJson(s, [r.llm])).status).toBe(200);
    const again = await runOf(s, r.traceId);
    expect(again).toMatchObject({ llm_calls: 1, tokens: 1500 });
    expect(again.stages).toEqual(first.stages);
    await stop(s);
    expect(await storedSpanCount(db)).toBe(4);
  });

  it("lets go of the spans it kept when their runs are deleted", async () => {
    const db = tempStore();
    const s = await served(db);
    const r = pythonRun();
    await sendJson(s, [r.root, r.extract]);
    const deleted = await getJson(s.app, "/api/runs?older_than=1d", { method: "DELETE" });
    expect(deleted).toMatchObject({ status: 200, body: { runs: 1, stages: 1 } });
    await stop(s);
    expect(await storedSpanCount(db)).toBe(0);
  });

  it("loses nothing when the server restarts between two requests of a trace", async () => {
    const db = tempStore();
    const r = pythonRun();
    const first = await served(db);
    expect((await sendJson(first, [r.llm, r.summarize])).status).toBe(200);
    await stop(first);
    const second = await served(db);
    expect(await runOf(second, r.traceId)).toMatchObject({ status: "running", tokens: 1500 });
    // The retry of the first request after the restart counts nothing twice.
    expect((await sendJson(second, [r.llm, r.root, r.extract])).status).toBe(200);
    expect(await runOf(second, r.traceId)).toMatchObject({
      status: "completed",
      llm_calls: 1,
      tokens: 1500,
      stages_executed: ["extract", "summarize"],
    });
    await stop(second);
    expect((await storedStages(db)).map((st) => st.name)).toEqual(["extract", "summarize"]);
  });

  it("takes protobuf with gzip, and answers in protobuf", async () => {
    const s = await served(tempStore());
    const r = pythonRun();
    const body = protobufBody([r.root, r.extract]);
    const sent = await post(s, gzipSync(body), {
      "content-type": "application/x-protobuf",
      "content-encoding": "gzip",
    });
    expect(sent.status).toBe(200);
    expect(sent.contentType).toBe("application/x-protobuf");
    expect(ExportResponse.toObject(ExportResponse.decode(sent.bytes))).toEqual({});
    expect(await runOf(s, r.traceId)).toMatchObject({ status: "completed", rows_in: 500 });
  });

  it("rejects invalid spans alone, saying how many and why", async () => {
    const s = await served(tempStore());
    const r = pythonRun();
    const bad = { ...r.extract, spanId: "12" };
    const backwards = { ...r.transform, startMs: 3000, endMs: 2000 };
    const sent = await sendJson(s, [r.root, bad, backwards, r.summarize]);
    expect(sent.status).toBe(200);
    expect(sent.json()).toEqual({
      partialSuccess: {
        rejectedSpans: "2",
        errorMessage: "span 1: spanId is not 8 bytes (and 1 more span)",
      },
    });
    expect(await runOf(s, r.traceId)).toMatchObject({ stages_executed: ["summarize"] });

    const pb = await post(s, protobufBody([{ ...r.llm, traceId: "00".repeat(16) }]), {
      "content-type": "application/x-protobuf",
    });
    expect(pb.status).toBe(200);
    expect(ExportResponse.toObject(ExportResponse.decode(pb.bytes), { longs: Number })).toEqual({
      partialSuccess: { rejectedSpans: 1, errorMessage: "span 0: trace_id is all zeros" },
    });
  });

  it("answers 400 with a google.rpc.Status for a body that is not an export request", async () => {
    const s = await served(tempStore());
    const json = await post(s, "{ not json");
    expect(json.status).toBe(400);
    expect(json.json()).toMatchObject({ code: 3, message: expect.stringMatching(/not JSON/) });
    const shape = await post(s, JSON.stringify({ resourceSpans: {} }));
    expect(shape.json()).toMatchObject({
      code: 3,
      message: "request.resourceSpans is not an array",
    });
    const pb = await post(s, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f, 1]), {
      "content-type": "application/x-protobuf",
    });
    expect(pb.status).toBe(400);
    expect(pb.contentType).toBe("application/x-protobuf");
    expect(RpcStatus.toObject(RpcStatus.decode(pb.bytes))).toMatchObject({ code: 3 });
    const gz = await post(s, "not gzip", {
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    expect(gz.status).toBe(400);
  });

  it("answers 415 for other content types and encodings", async () => {
    const s = await served(tempStore());
    expect((await post(s, "x", { "content-type": "text/plain" })).status).toBe(415);
    expect((await post(s, "x", {})).status).toBe(415);
    const br = await post(s, "x", { "content-type": "application/json", "content-encoding": "br" });
    expect(br.status).toBe(415);
    expect(br.json()).toMatchObject({ message: expect.stringMatching(/br is not supported/) });
  });

  it("refuses a body over the limit, and a gzip bomb without inflating it", async () => {
    const s = await served(tempStore(), {
      maxOtlpBodyBytes: 64 * 1024,
      maxOtlpDecodedBytes: 256 * 1024,
    });
    const big = await post(s, "x".repeat(100 * 1024));
    expect(big.status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const sent = await post(s, bomb, {
      "content-type": "application/json",
      "content-encoding": "gzip",
    });
    expect(sent.status).toBe(413);
    expect(sent.json()).toMatchObject({ message: expect.stringMatching(/inflates to over/) });
    expect((await getJson(s.app, "/healthz")).status).toBe(200);
  });

  it("turns requests away with 429 and Retry-After when the writer is behind, losing none it took", async () => {
    const s = await served(tempStore(), { ingest: { maxPendingSpans: 2 } });
    const traces = Array.from({ length: 12 }, (_, i) =>
      pythonRun(`${String(i + 1).padStart(2, "0")}${"ab".repeat(15)}`),
    );
    const results = await Promise.all(traces.map((r) => sendJson(s, [r.root, r.extract])));
    const statuses = someRefused(results);
    await expectStoredAsAnswered(s, traces, statuses);
  });

  it("turns requests away with 429 when the bodies it holds at once reach its bound, losing none it took", async () => {
    const s = await served(tempStore(), {
      maxOtlpBodyBytes: 64 * 1024,
      maxOtlpDecodedBytes: 1024 * 1024,
      maxOtlpHeldBytes: 2 * 1024 * 1024,
    });
    const traces = Array.from({ length: 12 }, (_, i) =>
      pythonRun(`${String(i + 1).padStart(2, "0")}${"cd".repeat(15)}`),
    );
    // Small as sent, 700 KB each once inflated (an unknown field pads them): twelve at once are
    // far more than the 2 MiB the server may hold.
    const bodies = traces.map((r) => {
      const body = JSON.parse(jsonBody([r.root, r.extract])) as Record<string, unknown>;
      body.padding = "x".repeat(700 * 1024);
      return gzipSync(JSON.stringify(body));
    });
    expect(Math.max(...bodies.map((b) => b.length))).toBeLessThan(64 * 1024);
    const results = await Promise.all(
      bodies.map((body) =>
        post(s, body, { "content-type": "application/json", "content-encoding": "gzip" }),
      ),
    );
    const statuses = someRefused(results, /bodies/);
    await expectStoredAsAnswered(s, traces, statuses);
    // Answered, the bodies no longer count: one at a time, every refused one is taken.
    for (const [i, refused] of results.entries()) {
      if (refused.status !== 429) continue;
      const again = await post(s, bodies[i] as Uint8Array, {
        "content-type": "application/json",
        "content-encoding": "gzip",
      });
      expect(again.status).toBe(200);
    }
    expect((await getJson(s.app, "/api/runs?limit=100")).body.total).toBe(12);
  });

  it("answers 503 with Retry-After while the store is not open, and when a write fails, keeping nothing", async () => {
    const opening = createApp({
      tokens: TokenSet.none,
      store: () => undefined,
      otlp: () => undefined,
    });
    const r = pythonRun();
    for (const [body, type] of [
      [jsonBody([r.root]), "application/json"],
      [protobufBody([r.root]), "application/x-protobuf"],
    ] as const) {
      const response = await opening.request("/v1/traces", {
        method: "POST",
        body,
        headers: { "content-type": type },
      });
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("1");
      expect(response.headers.get("content-type")).toBe(type);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const status =
        type === "application/json"
          ? JSON.parse(new TextDecoder().decode(bytes))
          : RpcStatus.toObject(RpcStatus.decode(bytes));
      expect(status).toMatchObject({ code: 14, message: expect.stringMatching(/not open/) });
    }

    // A store that fails under the writer: the request is answered 503, and no row of it stays.
    const db = tempStore();
    const s = await served(db);
    await s.store.close();
    const failed = await sendJson(s, [r.root, r.extract]);
    expect(failed.status).toBe(503);
    expect(failed.retryAfter).toBe("1");
    expect(failed.json()).toMatchObject({ code: 14 });
    await stop(s);
    expect(await storedRuns(db)).toEqual([]);
    expect(await storedSpanCount(db)).toBe(0);
  });

  it("marks a run that went silent without its root as crashed, saying so", async () => {
    const db = tempStore();
    const s = await served(db);
    const r = pythonRun();
    await sendJson(s, [r.extract]);
    const reaped = await s.store.write((session) =>
      reapCrashedRuns(session, {
        staleAfterMs: 3_600_000,
        silentAfterMs: 60_000,
        now: Date.now() + 61_000,
      }),
    );
    expect(reaped).toHaveLength(1);
    const run = await runOf(s, r.traceId);
    expect(run).toMatchObject({ status: "crashed" });
    expect(run.status_reason).toMatch(
      /^no span of the run arrived for 1m \d+s and its run span never did/,
    );
    // Its root arriving after all brings it back.
    await sendJson(s, [r.root]);
    expect(await runOf(s, r.traceId)).toMatchObject({ status: "completed" });
  });
});

describe("POST /v1/traces refused outside its route", () => {
  it("answers a request that took too long with a google.rpc.Status, not the API's JSON", async () => {
    const s = await served(tempStore(), { requestTimeoutMs: 0 });
    // The writer busy, so that the spans cannot be written before the timeout.
    const busy = s.store.write((session) => session.run("SELECT sum(range) FROM range(100000000)"));
    const pb = await post(s, protobufBody([pythonRun().root]), {
      "content-type": "application/x-protobuf",
    });
    expect(pb).toMatchObject({ status: 504, contentType: "application/x-protobuf" });
    expect(RpcStatus.toObject(RpcStatus.decode(pb.bytes))).toMatchObject({
      code: 4,
      message: "the request took too long",
    });
    await busy;
  });
});

describe("POST /v1/traces with tokens", () => {
  const tokens = () =>
    TokenSet.fromText(
      "acme-in:acme:ingest, globex-in:globex:ingest, all-in:*:ingest, reader:*:read",
    );
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  it("needs the ingest scope", async () => {
    const s = await served(tempStore(), { tokens: tokens() });
    const r = pythonRun();
    // As OTLP clients read errors: a google.rpc.Status in the request's format.
    const none = await sendJson(s, [r.root]);
    expect(none.status).toBe(401);
    expect(none.contentType).toBe("application/json");
    expect(none.json()).toMatchObject({ code: 16, message: expect.stringMatching(/token/) });
    const reader = await sendJson(s, [r.root], auth("reader"));
    expect(reader.status).toBe(403);
    expect(reader.json()).toMatchObject({ code: 7, message: expect.stringMatching(/ingest/) });
    const pb = await post(s, protobufBody([r.root]), { "content-type": "application/x-protobuf" });
    expect(pb).toMatchObject({ status: 401, contentType: "application/x-protobuf" });
    expect(RpcStatus.toObject(RpcStatus.decode(pb.bytes))).toMatchObject({ code: 16 });
    expect((await sendJson(s, [r.root], auth("all-in"))).status).toBe(200);
  });

  it("sets the tenant of what a token sends, and keeps other tenants out of its traces", async () => {
    const db = tempStore();
    const s = await served(db, { tokens: tokens() });
    const r = pythonRun();
    const claimed = {
      ...r.root,
      attributes: { ...r.root.attributes, "runtrail.tenant.id": "globex" },
    };
    expect((await sendJson(s, [claimed, r.extract], auth("acme-in"))).status).toBe(200);
    const intruder = await sendJson(s, [r.summarize, r.llm], auth("globex-in"));
    expect(intruder.json()).toEqual({
      partialSuccess: {
        rejectedSpans: "2",
        errorMessage: `trace ${r.traceId} belongs to another tenant (and 1 more)`,
      },
    });
    await stop(s);
    const [run] = await storedRuns(db);
    expect(run).toMatchObject({ tenant_id: "acme", llm_calls: 0, stages_executed: ["extract"] });
  });

  it("keeps a trace sent with a token of every tenant from a tenant's token, after a restart too", async () => {
    const db = tempStore();
    const r = pythonRun();
    const root = { ...r.root, attributes: { ...r.root.attributes, "runtrail.tenant.id": "beta" } };
    const first = await served(db, { tokens: tokens() });
    expect((await sendJson(first, [root, r.extract], auth("all-in"))).status).toBe(200);
    const refused = {
      partialSuccess: {
        rejectedSpans: "2",
        errorMessage: `trace ${r.traceId} was sent with a token of every tenant; a tenant's token may not add to it (and 1 more)`,
      },
    };
    expect((await sendJson(first, [r.summarize, r.llm], auth("acme-in"))).json()).toEqual(refused);
    await stop(first);
    const second = await served(db, { tokens: tokens() });
    expect((await sendJson(second, [r.summarize, r.llm], auth("acme-in"))).json()).toEqual(refused);
    // A token of every tenant may still add to it.
    expect((await sendJson(second, [r.summarize, r.llm], auth("all-in"))).json()).toEqual({});
    await stop(second);
    const [run] = await storedRuns(db);
    expect(run).toMatchObject({
      tenant_id: "beta",
      llm_calls: 1,
      stages_executed: ["extract", "summarize"],
    });
  });
});
