import { describe, expect, it } from "vitest";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import {
  exitWithin,
  type Started,
  serveOnAnyPort,
  stoppedAfterEach,
} from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type HandSpan, jsonBody } from "../otlp/_bodies.js";
import { comparable } from "../otlp/_compare.js";

/**
 * A trace whose root (run) span reaches a real `runtrail serve` in an earlier request than
 * some of its descendants: a stage that ended after the run span (and the LLM call under it),
 * and an LLM call of an earlier stage that the exporter flushed late. Whatever requests the
 * spans come in, the store ends with the rows one request of them all gives.
 */

const TRACE = "7c1e0a5d9b3f4e2a8d6c0b1a2f3e4d5c";
/** The run id of a trace's root run: the trace id as a UUID. */
const RUN_ID = "7c1e0a5d-9b3f-4e2a-8d6c-0b1a2f3e4d5c";
const ROOT = "a000000000000001";
const EXTRACT = "b000000000000001";
const SUMMARIZE = "b000000000000002";

const spans = {
  root: {
    traceId: TRACE,
    spanId: ROOT,
    name: "nightly-report",
    startMs: 0,
    endMs: 5000,
    kind: 2,
    attributes: { "runtrail.pipeline.name": "nightly-report", "runtrail.run.stages_expected": 2 },
  },
  extract: {
    traceId: TRACE,
    spanId: EXTRACT,
    parentSpanId: ROOT,
    name: "extract",
    startMs: 10,
    endMs: 1000,
    attributes: { "runtrail.rows.in": 500, "runtrail.rows.out": 480 },
  },
  /** Ends after the run span did, and fails: the run it belongs to is degraded, not completed. */
  summarize: {
    traceId: TRACE,
    spanId: SUMMARIZE,
    parentSpanId: ROOT,
    name: "summarize",
    startMs: 3000,
    endMs: 5600,
    error: { type: "ValidationError", message: "summary too long" },
  },
  /** Under the late stage, ended after the run span too. */
  summarizeLlm: {
    traceId: TRACE,
    spanId: "c000000000000001",
    parentSpanId: SUMMARIZE,
    name: "chat gpt-4o-mini",
    startMs: 3100,
    endMs: 5500,
    kind: 3,
    attributes: {
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.usage.input_tokens": 1200,
      "gen_ai.usage.output_tokens": 300,
    },
  },
  /** Under the first stage, ended long before the run span, flushed in a later batch. */
  extractLlm: {
    traceId: TRACE,
    spanId: "c000000000000002",
    parentSpanId: EXTRACT,
    name: "chat gpt-4o-mini",
    startMs: 100,
    endMs: 900,
    kind: 3,
    attributes: {
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.usage.input_tokens": 100,
      "gen_ai.usage.output_tokens": 20,
    },
  },
} satisfies Record<string, HandSpan>;

const track = stoppedAfterEach();

interface Server {
  process: Started;
  url: string;
}

/** `runtrail serve` on a port the OS chooses; resolves once it listens and holds the store. */
async function serve(db: string): Promise<Server> {
  const { server, url } = await serveOnAnyPort(track, db, { timeoutMs: 20_000 });
  return { process: server, url };
}

/** Stops a server as a service manager does, and checks it let go of the store cleanly. */
async function stop(server: Server): Promise<void> {
  server.process.child.kill("SIGTERM");
  const exit = await exitWithin(15_000, "the server to stop", server.process);
  expect(exit.code, exit.stderr).toBe(0);
}

/** Sends spans in one OTLP/JSON request; the server answers once they are committed. */
async function send(server: Server, sent: HandSpan[]): Promise<void> {
  const response = await fetch(`${server.url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: jsonBody(sent),
  });
  const body = await response.text();
  expect(response.status, body).toBe(200);
  // Nothing rejected: no partialSuccess.
  expect(JSON.parse(body)).toEqual({});
}

type RunDetail = RunRow & { stages: StageRow[] };

/** The run of the trace as the server shows it now. */
async function runOf(server: Server): Promise<RunDetail> {
  const response = await fetch(`${server.url}/api/runs/${TRACE}`);
  expect(response.status).toBe(200);
  return (await response.json()) as RunDetail;
}

/** Per stage: name, status, LLM calls and tokens. */
function stageSummary(stages: readonly StageRow[]) {
  return stages.map((s) => [s.name, s.status, s.llm_calls, s.tokens]);
}

/** What the store holds once the server has let go of it. */
async function rowsIn(db: string): Promise<{ runs: RunRow[]; stages: StageRow[] }> {
  return { runs: await storedRuns(db), stages: await storedStages(db) };
}

/** The spans the receiver kept in `otlp_spans`, read once the server has let go of the store. */
async function storedSpanCount(db: string): Promise<number | undefined> {
  const row = await withStore(db, (session) =>
    session.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM otlp_spans"),
  );
  return row?.n;
}

/** The rows a fresh server writes for the spans sent in one request. */
async function rowsOfOneRequest(sent: HandSpan[]) {
  const db = tempStore();
  const server = await serve(db);
  await send(server, sent);
  await stop(server);
  return rowsIn(db);
}

/** Rows that came in several requests are those of one request, but for arrival's own fields. */
function expectSameRows(
  split: { runs: RunRow[]; stages: StageRow[] },
  whole: { runs: RunRow[]; stages: StageRow[] },
): void {
  expect(split.runs.map(comparable)).toEqual(whole.runs.map(comparable));
  expect(split.stages).toEqual(whole.stages);
}

/** The run after its root and first stage came: finished, with one stage and no tokens yet. */
function expectRootAndExtractOnly(run: RunRow): void {
  expect(run).toMatchObject({
    run_id: RUN_ID,
    status: "completed",
    stages_executed: ["extract"],
    stages_failed: [],
    stages_completed: 1,
    llm_calls: 0,
    tokens: 0,
    error: null,
  });
}

/** The run once the late stage and its LLM call came too. */
const WITH_LATE_STAGE = {
  run_id: RUN_ID,
  trace_id: TRACE,
  pipeline: "nightly-report",
  status: "degraded",
  error: "ValidationError: summary too long",
  failed_stage: "summarize",
  stages_expected: 2,
  stages_executed: ["extract", "summarize"],
  stages_failed: ["summarize"],
  stages_completed: 1,
  llm_calls: 1,
  tokens: 1500,
  input_tokens: 1200,
  output_tokens: 300,
  rows_in: 500,
  duration_seconds: 5,
  current_stage: null,
} satisfies Partial<RunRow>;

/** The run as the server answers it once the late stage and its LLM call came, with its stages. */
function expectWithLateStage(run: RunDetail): void {
  expect(run).toMatchObject(WITH_LATE_STAGE);
  expect(stageSummary(run.stages)).toEqual([
    ["extract", "completed", 0, 0],
    ["summarize", "failed", 1, 1500],
  ]);
}

const ROOT_FIRST = [spans.root, spans.extract];
const LATE = [spans.summarize, spans.summarizeLlm];

describe("a trace whose root span comes before some of its descendants, through runtrail serve", () => {
  it("ends with the rows of one request when a late stage and its LLM call come in a later request", async () => {
    const db = tempStore();
    const [server, whole] = await Promise.all([
      serve(db),
      rowsOfOneRequest([...ROOT_FIRST, ...LATE]),
    ]);

    await send(server, ROOT_FIRST);
    const first = await runOf(server);
    expectRootAndExtractOnly(first);
    expect(stageSummary(first.stages)).toEqual([["extract", "completed", 0, 0]]);

    await send(server, LATE);
    const run = await runOf(server);
    expectWithLateStage(run);
    await stop(server);

    const split = await rowsIn(db);
    expect(split.runs).toHaveLength(1);
    expect(split.runs[0]).toMatchObject(WITH_LATE_STAGE);
    expect(split.runs[0]?.owner_host).toBeNull();
    expectSameRows(split, whole);
  });

  it("ends with the rows of one request when the server restarts between the two requests", async () => {
    const db = tempStore();
    const [before, whole] = await Promise.all([
      serve(db),
      rowsOfOneRequest([...ROOT_FIRST, ...LATE]),
    ]);
    await send(before, ROOT_FIRST);
    await stop(before);
    // What was answered 200 is in the store, as the run it makes so far.
    const stored = await rowsIn(db);
    expect(stored.runs).toHaveLength(1);
    expectRootAndExtractOnly(stored.runs[0] as RunRow);
    expect(stageSummary(stored.stages)).toEqual([["extract", "completed", 0, 0]]);

    // docs/otlp.md: "Restarts lose nothing: ... a trace's earlier spans are read back from
    // [otlp_spans] when more arrive." The late spans join the root and stage read back.
    const after = await serve(db);
    expectRootAndExtractOnly(await runOf(after));
    await send(after, LATE);
    const run = await runOf(after);
    expectWithLateStage(run);
    await stop(after);

    const split = await rowsIn(db);
    expect(split.runs).toHaveLength(1);
    expectSameRows(split, whole);
  });

  it("adds a late LLM call of a finished run's stage to the stage and the run, once however often it is sent", async () => {
    const db = tempStore();
    const all = [...ROOT_FIRST, ...LATE, spans.extractLlm];
    const [server, whole] = await Promise.all([serve(db), rowsOfOneRequest(all)]);

    await send(server, ROOT_FIRST);
    await send(server, LATE);
    const written = await runOf(server);
    expect(written).toMatchObject(WITH_LATE_STAGE);

    await send(server, [spans.extractLlm]);
    const withLlm = await runOf(server);
    const expected = {
      ...WITH_LATE_STAGE,
      llm_calls: 2,
      tokens: 1620,
      input_tokens: 1300,
      output_tokens: 320,
    };
    expect(withLlm).toMatchObject(expected);
    expect(stageSummary(withLlm.stages)).toEqual([
      ["extract", "completed", 1, 120],
      ["summarize", "failed", 1, 1500],
    ]);
    expect(withLlm.stages[0]).toMatchObject({ input_tokens: 100, output_tokens: 20 });

    // An exporter's retries of the last request, and of the one before it: nothing counted twice.
    await send(server, [spans.extractLlm]);
    await send(server, [spans.extractLlm, ...LATE]);
    const retried = await runOf(server);
    expect(retried).toMatchObject(expected);
    expect(retried.stages).toEqual(withLlm.stages);
    await stop(server);

    // Each span kept once: a retry is skipped, not stored again.
    expect(await storedSpanCount(db)).toBe(all.length);
    const split = await rowsIn(db);
    expect(split.runs).toHaveLength(1);
    expect(split.runs[0]).toMatchObject(expected);
    expectSameRows(split, whole);
  });
});
