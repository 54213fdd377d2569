import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { beforeAll, describe, expect, it } from "vitest";
import { RunTrailSpanProcessor } from "../../src/ingest/span-processor.js";
import { lookupRun } from "../../src/query/find-run.js";
import { InvalidIdPrefixError } from "../../src/record/run-id.js";
import { withStore } from "../../src/store/open-store.js";
import { tempStore } from "../helpers/temp-dir.js";

const TRACES = [
  "abcd0000000000000000000000000001",
  "abcd0000000000000000000000000002",
  "abcd1111000000000000000000000003",
  "ffff0000000000000000000000000004",
];
let db: string;

beforeAll(async () => {
  db = tempStore();
  let trace_i = 0;
  let span_i = 0;
  const processor = new RunTrailSpanProcessor({ db });
  const provider = new BasicTracerProvider({
    spanProcessors: [processor],
    idGenerator: {
      generateTraceId: () => TRACES[trace_i++] ?? "",
      generateSpanId: () => (++span_i).toString(16).padStart(16, "0"),
    },
  });
  const tracer = provider.getTracer("ids");
  for (let i = 0; i < 3; i++) tracer.startSpan(`root-${i}`).end();
  // The fourth trace holds a request span with a marked run nested in it.
  const request = tracer.startSpan("GET /ingest");
  tracer
    .startSpan(
      "nested",
      { attributes: { "runtrail.kind": "run" } },
      trace.setSpan(context.active(), request),
    )
    .end();
  request.end();
  await provider.shutdown();
});

async function find(prefix: string) {
  return withStore(db, (s) => lookupRun(s, prefix));
}

describe("run lookup by prefix", () => {
  it("finds a run by a unique prefix of its run id", async () => {
    const found = await find("abcd1111");
    expect(found).toMatchObject({ found: "one", run: { pipeline: "root-2" } });
  });

  it("finds a run by its whole id, with or without dashes, in any case", async () => {
    for (const id of ["abcd0000-0000-0000-0000-000000000001", "ABCD0000000000000000000000000001"]) {
      expect(await find(id)).toMatchObject({ found: "one", run: { pipeline: "root-0" } });
    }
  });

  it("lists the candidates of an ambiguous prefix, newest first", async () => {
    const found = await find("abcd0000");
    expect(found.found).toBe("many");
    if (found.found !== "many") return;
    expect(found.candidates.map((r) => r.pipeline)).toEqual(["root-1", "root-0"]);
  });

  it("says when nothing matches", async () => {
    expect(await find("0123")).toEqual({ found: "none" });
  });

  it("gives a nested run the first half of its trace id and its span id", async () => {
    const nested = await find("ffff0000-0000-0000-0000-000000000005");
    expect(nested).toMatchObject({
      found: "one",
      run: { pipeline: "nested", trace_id: TRACES[3] },
    });
  });

  it("finds every run of a trace by a trace id prefix, and the root run by the whole trace id", async () => {
    const byPrefix = await find("ffff0000");
    expect(byPrefix.found).toBe("many");
    if (byPrefix.found === "many") {
      expect(byPrefix.candidates.map((r) => r.pipeline).sort()).toEqual(["GET /ingest", "nested"]);
    }
    expect(await find(TRACES[3] ?? "")).toMatchObject({
      found: "one",
      run: { pipeline: "GET /ingest" },
    });
  });

  it("refuses prefixes shorter than 4 hex digits or not hex at all", async () => {
    await expect(find("abc")).rejects.toBeInstanceOf(InvalidIdPrefixError);
    await expect(find("xyz1")).rejects.toBeInstanceOf(InvalidIdPrefixError);
    await expect(find("ab'; DROP TABLE runs; --")).rejects.toBeInstanceOf(InvalidIdPrefixError);
  });
});

describe("run lookup in a trace with many runs", () => {
  it("finds a run by its whole id however many runs share its trace", async () => {
    const store = tempStore();
    const trace_id = "cafe0000000000000000000000000001";
    let span = 0;
    const processor = new RunTrailSpanProcessor({ db: store });
    const provider = new BasicTracerProvider({
      spanProcessors: [processor],
      idGenerator: {
        generateTraceId: () => trace_id,
        generateSpanId: () => (++span).toString(16).padStart(16, "0"),
      },
    });
    const tracer = provider.getTracer("many");
    const root = tracer.startSpan("orchestrator");
    for (let i = 0; i < 12; i++) {
      tracer
        .startSpan(
          `nested-${i}`,
          { attributes: { "runtrail.kind": "run" } },
          trace.setSpan(context.active(), root),
        )
        .end();
    }
    root.end();
    await provider.shutdown();
    const found = await withStore(store, (s) => lookupRun(s, trace_id));
    expect(found).toMatchObject({ found: "one", run: { pipeline: "orchestrator" } });
  });
});
