import { ROOT_CONTEXT, type Tracer, trace } from "@opentelemetry/api";
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { RunTrailSpanProcessor } from "../../src/ingest/span-processor.js";
import { type DecodedExport, decodeJson, decodeProtobuf } from "../../src/otlp/decode.js";
import type { RemoteSpan } from "../../src/otlp/remote-span.js";
import { traceRows } from "../../src/otlp/trace-rows.js";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { formatUuid } from "../../src/record/run-id.js";
import { sampleRuns } from "../fixtures/sample-pipelines.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { jsonBody, pythonRun } from "./_bodies.js";
import { byRunId, comparable } from "./_compare.js";

/** The sample runs recorded in process into a store, and the spans the SDK ended. */
async function recordBothWays(): Promise<{
  runs: RunRow[];
  stages: StageRow[];
  spans: ReadableSpan[];
}> {
  const db = tempStore();
  const exporter = new InMemorySpanExporter();
  const processor = new RunTrailSpanProcessor({ db });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "otlp-test" }),
    spanProcessors: [processor, new SimpleSpanProcessor(exporter)],
  });
  await sampleRuns(provider.getTracer("t"), db);
  // Taken before shutting down, which empties the exporter.
  const spans = [...exporter.getFinishedSpans()];
  await provider.shutdown();
  return { runs: (await storedRuns(db)).sort(byRunId), stages: await storedStages(db), spans };
}

/** Spans of `body` recorded in process into a new store: its rows, and the spans it ended. */
async function recordInProcess(
  body: (tracer: Tracer) => void,
): Promise<{ runs: RunRow[]; stages: StageRow[]; spans: ReadableSpan[] }> {
  const db = tempStore();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "otlp-test" }),
    spanProcessors: [new RunTrailSpanProcessor({ db }), new SimpleSpanProcessor(exporter)],
  });
  body(provider.getTracer("t"));
  const spans = [...exporter.getFinishedSpans()];
  await provider.shutdown();
  return { runs: (await storedRuns(db)).sort(byRunId), stages: await storedStages(db), spans };
}

/** A run span with two stages and an LLM call, started in `parent`, all ended. */
function smallRun(tracer: Tracer, parent = ROOT_CONTEXT, attributes = {}): void {
  const run = tracer.startSpan("etl", { attributes }, parent);
  const inRun = trace.setSpan(parent, run);
  tracer.startSpan("extract", {}, inRun).end();
  const summarize = tracer.startSpan("summarize", {}, inRun);
  tracer
    .startSpan(
      "chat",
      { attributes: { "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20 } },
      trace.setSpan(inRun, summarize),
    )
    .end();
  summarize.end();
  run.end();
}

let recorded: ReturnType<typeof recordBothWays> | undefined;
/** {@link recordBothWays}, once for the file: the tests only read what it gives. */
const bothWays = () => (recorded ??= recordBothWays());

/** Spans as the OTLP/JSON exporter sends them, decoded by the receiver. */
function viaJson(spans: ReadableSpan[]): DecodedExport {
  return decodeJson(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans)));
}

function byTrace(spans: RemoteSpan[]): Map<string, Map<string, RemoteSpan>> {
  const traces = new Map<string, Map<string, RemoteSpan>>();
  for (const span of spans) {
    const trace = traces.get(span.traceId) ?? new Map<string, RemoteSpan>();
    traces.set(span.traceId, trace);
    trace.set(span.spanId, span);
  }
  return traces;
}

function rowsOf(spans: RemoteSpan[]): { runs: RunRow[]; stages: StageRow[] } {
  const runs: RunRow[] = [];
  const stages: StageRow[] = [];
  for (const trace of byTrace(spans).values()) {
    const rows = traceRows(trace, { tenant: null, heartbeat: 0 });
    runs.push(...rows.runs);
    stages.push(...rows.stages);
  }
  runs.sort(byRunId);
  stages.sort((a, b) => (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : a.seq - b.seq));
  return { runs, stages };
}

describe("the rows of spans received over OTLP", () => {
  it("are the rows the in-process processor writes, from JSON and from protobuf", async () => {
    const inProcess = await bothWays();
    expect(Object.fromEntries(inProcess.runs.map((r) => [r.pipeline, r.status]))).toEqual({
      summaries: "degraded",
      ingest: "failed",
      classify: "completed",
    });
    // The artifacts and the reused stage travel as spans like the rest.
    const classify = inProcess.runs.find((r) => r.pipeline === "classify");
    expect(classify?.artifacts?.map((a) => [a.file, a.stage])).toEqual([
      ["01_input.txt", null],
      ["02_labels.json", "label"],
    ]);
    expect(
      inProcess.stages.filter((s) => s.run_id === classify?.run_id).map((s) => s.status),
    ).toEqual(["cached", "completed"]);
    const json = viaJson(inProcess.spans);
    const protobuf = decodeProtobuf(
      ProtobufTraceSerializer.serializeRequest(inProcess.spans) as Uint8Array,
    );
    for (const decoded of [json, protobuf]) {
      expect(decoded.rejected).toBe(0);
      const remote = rowsOf(decoded.spans);
      expect(remote.runs.map(comparable)).toEqual(inProcess.runs.map(comparable));
      expect(remote.stages).toEqual(inProcess.stages);
    }
  });

  it("do not depend on the order the spans arrive in", async () => {
    const decoded = viaJson((await bothWays()).spans);
    const forward = rowsOf(decoded.spans);
    const reversed = rowsOf([...decoded.spans].reverse());
    expect(reversed).toEqual(forward);
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 20; i++) {
      const shuffled = [...decoded.spans]
        .map((span) => ({ span, key: random() }))
        .sort((a, b) => a.key - b.key)
        .map((x) => x.span);
      expect(rowsOf(shuffled)).toEqual(forward);
    }
  });

  it("show a run as running from any one of its spans, named by the start marker", async () => {
    const decoded = viaJson((await bothWays()).spans);
    const marker = decoded.spans.find((s) => s.name === "runtrail.run.start");
    expect(marker).toBeDefined();
    const trace = byTrace(decoded.spans).get(marker?.traceId as string) as Map<string, RemoteSpan>;
    const alone = traceRows(new Map([[marker?.spanId as string, marker as RemoteSpan]]), {
      tenant: null,
      heartbeat: 0,
    });
    expect(alone.rootless).toBe(true);
    expect(alone.runs).toHaveLength(1);
    expect(alone.runs[0]).toMatchObject({
      status: "running",
      pipeline: "summaries",
      stages_expected: 3,
    });

    // Every span but the root: still running, the stages that ended are there.
    const withoutRoot = new Map([...trace].filter(([, s]) => s.parentSpanId !== undefined));
    const partial = traceRows(withoutRoot, { tenant: null, heartbeat: 0 });
    expect(partial.runs[0]).toMatchObject({ status: "running", pipeline: "summaries" });
    const bySeq = [...partial.stages].sort((a, b) => a.seq - b.seq);
    expect(bySeq.map((s) => [s.name, s.attempt, s.status])).toEqual([
      ["load", 1, "completed"],
      ["summarize", 1, "failed"],
      ["summarize", 2, "completed"],
      ["store", 1, "completed"],
    ]);
    const full = traceRows(trace, { tenant: null, heartbeat: 0 });
    expect(full.rootless).toBe(false);
    expect(full.runs[0]?.run_id).toBe(partial.runs[0]?.run_id);
    expect(full.runs[0]?.status).toBe("degraded");
  });

  it("take a span whose parent is in another process for a root, as the in-process processor does", async () => {
    // A pipeline started with a context from elsewhere: a job's TRACEPARENT, a request header.
    const upstream = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      isRemote: true,
    });
    const inProcess = await recordInProcess((tracer) => smallRun(tracer, upstream));
    expect(inProcess.runs).toHaveLength(1);
    const [run] = inProcess.runs;
    const runSpan = inProcess.spans.find((s) => s.name === "etl");
    // Not the trace's root: its id is the trace's first half and its own span id.
    expect(run).toMatchObject({
      run_id: formatUuid(`4bf92f3577b34da6${runSpan?.spanContext().spanId}`),
      status: "completed",
      llm_calls: 1,
      tokens: 120,
      stages_executed: ["extract", "summarize"],
    });
    for (const decoded of [
      viaJson(inProcess.spans),
      decodeProtobuf(ProtobufTraceSerializer.serializeRequest(inProcess.spans) as Uint8Array),
    ]) {
      expect(decoded.spans.find((s) => s.name === "etl")?.parentIsRemote).toBe(true);
      const rows = traceRows(byTrace(decoded.spans).get(run?.trace_id as string) ?? new Map(), {
        tenant: null,
        heartbeat: 0,
      });
      expect(rows.runs.map(comparable)).toEqual(inProcess.runs.map(comparable));
      expect(rows.stages).toEqual(inProcess.stages);
    }
  });

  it("make no stand-in for a marked run whose parent has not come, and keep it when it does", async () => {
    // A pipeline marked as a run inside an HTTP request span, which ends after it.
    const inProcess = await recordInProcess((tracer) => {
      const request = tracer.startSpan("POST /ingest");
      smallRun(tracer, trace.setSpan(ROOT_CONTEXT, request), { "runtrail.kind": "run" });
      request.end();
    });
    expect(inProcess.runs.map((r) => r.pipeline).sort()).toEqual(["POST /ingest", "etl"]);
    const nested = inProcess.runs.find((r) => r.pipeline === "etl");
    const spans = viaJson(inProcess.spans).spans;
    const trace_ = byTrace(spans).get(nested?.trace_id as string) as Map<string, RemoteSpan>;
    const withoutRequest = new Map([...trace_].filter(([, s]) => s.name !== "POST /ingest"));
    const early = traceRows(withoutRequest, { tenant: null, heartbeat: 0 });
    // Only the run itself, ended: no run stands in for the request, to crash when it never comes.
    expect(early.runs.map(comparable)).toEqual([comparable(nested as RunRow)]);
    expect(early.stages).toEqual(inProcess.stages.filter((st) => st.run_id === nested?.run_id));
    const full = traceRows(trace_, { tenant: null, heartbeat: 0 });
    expect([...full.runs].sort(byRunId).map(comparable)).toEqual(inProcess.runs.map(comparable));
    expect(full.stages).toEqual(inProcess.stages);
  });

  it("name a stand-in from the start marker of its own run when a trace holds several", () => {
    // Two runs started under a job span; neither run span nor the job's has come yet, only
    // their start markers and a stage of the first, the second run's marker first.
    const trace = "6a000000000000000000000000000001";
    const marker = (run: string, startMs: number, pipeline: string) => ({
      traceId: trace,
      spanId: `${run.slice(0, 15)}f`,
      parentSpanId: run,
      name: "runtrail.run.start",
      startMs,
      endMs: startMs,
      attributes: { "runtrail.kind": "run.start", "runtrail.pipeline.name": pipeline },
    });
    const first = "1000000000000001";
    const second = "2000000000000002";
    const stage = {
      traceId: trace,
      spanId: "1000000000000011",
      parentSpanId: first,
      name: "extract",
      startMs: 101,
      endMs: 150,
    };
    const { spans } = decodeJson(
      jsonBody([
        marker(second, 120, "second-pipeline"),
        marker(first, 100, "first-pipeline"),
        stage,
      ]),
    );
    const rows = traceRows(byTrace(spans).get(trace) as Map<string, RemoteSpan>, {
      tenant: null,
      heartbeat: 0,
    });
    expect(rows.rootless).toBe(true);
    // The stand-in is the parent of the earliest span waiting: the first run, by its own name.
    expect(rows.runs).toHaveLength(1);
    expect(rows.runs[0]).toMatchObject({
      status: "running",
      pipeline: "first-pipeline",
      stages_executed: ["extract"],
    });
  });

  it("keep a run waiting for its root under a stand-in when another process's span comes", async () => {
    const r = pythonRun();
    // Another service called from inside the pipeline: its span's parent is remote.
    const called = {
      traceId: r.traceId,
      spanId: "3000000000000009",
      parentSpanId: "2000000000000099",
      remoteParent: true,
      name: "POST /score",
      startMs: 100,
      endMs: 200,
      kind: 2,
    };
    const { spans } = decodeJson(jsonBody([r.extract, called]));
    const rows = traceRows(byTrace(spans).get(r.traceId) as Map<string, RemoteSpan>, {
      tenant: null,
      heartbeat: 0,
    });
    expect(rows.rootless).toBe(true);
    const byName = Object.fromEntries(rows.runs.map((run) => [run.pipeline, run]));
    // The pipeline's run, from its stage, until its root comes; the called service's own run.
    expect(byName["py-etl"]).toMatchObject({
      run_id: formatUuid(r.traceId),
      status: "running",
      stages_executed: ["extract"],
    });
    expect(byName["POST /score"]).toMatchObject({
      run_id: formatUuid(`${r.traceId.slice(0, 16)}3000000000000009`),
      status: "completed",
    });
    expect(rows.runs).toHaveLength(2);
  });
});
