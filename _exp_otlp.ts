import { performance } from "node:perf_hooks";
import { decodeProtobuf } from "./dist/otlp/decode.js";
import { OtlpIngest } from "./dist/otlp/otlp-ingest.js";
import { ServedStore } from "./dist/server/served-store.js";
import { keyValues, protobufOf } from "./test/otlp/_bodies.js";
import { hex, rng } from "./bench/_report.js";
import { rmSync, mkdirSync, readFileSync } from "node:fs";
const SPANS_PER_BODY = 512; const STAGES = 5; const CALLS_PER_STAGE = 2; const SPANS_PER_TRACE = 1 + STAGES * (1 + CALLS_PER_STAGE);
function requests(count: number, seed: number): Record<string, unknown>[] {
  const random = rng(seed);
  const base = BigInt(Date.now() - 3_600_000) * 1_000_000n;
  const out: Record<string, unknown>[] = [];
  let t = 0n;
  for (let b = 0; b < count; b++) {
    const spans: Record<string, unknown>[] = [];
    while (spans.length + SPANS_PER_TRACE <= SPANS_PER_BODY) {
      const traceId = hex(random, 32);
      const root = hex(random, 16);
      const start = base + t;
      t += 5_000_000n;
      const span = (
        spanId: string,
        parent: string | undefined,
        name: string,
        from: bigint,
        ms: number,
        attributes: Record<string, string | number>,
      ) => ({
        traceId,
        spanId,
        ...(parent ? { parentSpanId: parent } : {}),
        name,
        kind: 1,
        startTimeUnixNano: String(from),
        endTimeUnixNano: String(from + BigInt(ms) * 1_000_000n),
        attributes: keyValues(attributes),
        status: { code: 0 },
      });
      spans.push(
        span(root, undefined, "nightly-etl", start, 100 * STAGES + 10, {
          "runtrail.pipeline.name": `pipeline-${Math.floor(random() * 20)}`,
          "runtrail.run.stages_expected": STAGES,
        }),
      );
      for (let s = 0; s < STAGES; s++) {
        const stageId = hex(random, 16);
        const stageStart = start + BigInt(s * 100 + 1) * 1_000_000n;
        spans.push(
          span(stageId, root, `stage-${s}`, stageStart, 99, {
            "runtrail.rows.in": 1000,
            "runtrail.rows.out": 990,
          }),
        );
        for (let c = 0; c < CALLS_PER_STAGE; c++) {
          spans.push(
            span(
              hex(random, 16),
              stageId,
              "chat gpt-4o-mini",
              stageStart + BigInt(c * 40 + 1) * 1_000_000n,
              30,
              {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 800,
                "gen_ai.usage.output_tokens": 120,
              },
            ),
          );
        }
      }
    }
    // Fill the body to its size with spans of one more, unfinished trace's stages.
    const traceId = hex(random, 32);
    const parent = hex(random, 16);
    while (spans.length < SPANS_PER_BODY) {
      spans.push({
        traceId,
        spanId: hex(random, 16),
        parentSpanId: parent,
        name: "stage-x",
        kind: 1,
        startTimeUnixNano: String(base + t),
        endTimeUnixNano: String(base + t + 1_000_000n),
        attributes: keyValues({ "runtrail.rows.out": 1 }),
        status: { code: 0 },
      });
    }
    out.push({
      resourceSpans: [
        {
          resource: {
            attributes: keyValues({ "service.name": "bench-etl", "host.name": "bench" }),
          },
          scopeSpans: [{ scope: { name: "bench" }, spans }],
        },
      ],
    });
  }
  return out;
}

const per = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 40);
const bodies = requests(per * rounds + 10, 7).map((r) => decodeProtobuf(protobufOf(r)));
rmSync("/tmp/exp/ing", { recursive: true, force: true }); mkdirSync("/tmp/exp/ing");
const store = await ServedStore.open("/tmp/exp/ing/s.duckdb", { staleAfterMs: 1e12, reapIntervalMs: 1e9, ingestIntervalMs: 1e9 });
const ingest = await OtlpIngest.open(store, {});
let k = 0;
const submitN = async (n) => { const ps = []; for (let i = 0; i < n; i++) ps.push(ingest.submit(bodies[k++].spans, null)); await Promise.all(ps); };
for (let i = 0; i < 10; i++) await submitN(1);
const conn = store.writer.connection;
if (process.env.PROF) { await conn.run("SET enable_profiling = 'json'; SET profiling_mode = 'detailed'; SET profiling_output = '/tmp/exp/ing/prof.json'"); }
const c0 = process.cpuUsage(); const t0 = performance.now();
for (let r = 0; r < rounds; r++) await submitN(per);
const ms = (performance.now() - t0) / rounds; const c = process.cpuUsage(c0);
console.log(`bodies/write ${per}: ${ms.toFixed(2)} ms/write, cpu ${((c.user+c.system)/1000/rounds).toFixed(2)} ms/write, ${(per*512*1000/ms).toFixed(0)} spans/s`);
await ingest.close(); await store.close(); process.exit(0);
