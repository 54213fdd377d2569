import { rmSync } from "node:fs";
import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { RunTrailSpanProcessor } from "./src/ingest/span-processor.js";
import { findRuns, lookupRun } from "./src/query/find-run.js";
import { withStore } from "./src/store/open-store.js";

rmSync("/tmp/exp/dbg3", { recursive: true, force: true });
const db = "/tmp/exp/dbg3/r.duckdb";
const TRACES = [
  "abcd0000000000000000000000000001",
  "abcd0000000000000000000000000002",
  "abcd1111000000000000000000000003",
  "ffff0000000000000000000000000004",
];
let ti = 0,
  si = 0;
const processor = new RunTrailSpanProcessor({ db });
const provider = new BasicTracerProvider({
  spanProcessors: [processor],
  idGenerator: {
    generateTraceId: () => TRACES[ti++] ?? "",
    generateSpanId: () => (++si).toString(16).padStart(16, "0"),
  },
});
const tracer = provider.getTracer("ids");
for (let i = 0; i < 3; i++) tracer.startSpan(`root-${i}`).end();
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
for (const p of [
  process.argv[2] ?? "abcd1111",
  "abcd0000",
  "abcd0000-0000-0000-0000-000000000001",
]) {
  console.log(
    p,
    JSON.stringify(await withStore(db, async (s) => (await findRuns(s, p)).map((r) => r.run_id))),
  );
}
