import { ROOT_CONTEXT, trace, type Context } from "@opentelemetry/api";
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor, type Span, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { RunRecorder, type TrackedSpan } from "./src/record/recorder.js";
const noop: SpanExporter = { export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {} };
class HooksOnly implements SpanProcessor {
  key = Symbol("k");
  rec = new RunRecorder({ runChanged() {}, stageEnded() {} }, { rootSpansAreRuns: true, isRun: undefined, isStage: undefined, tenant: null, owner: null, maxOpenRuns: 1e9, maxOpenSpans: 1e9, onDrop() {} });
  onStart(span: Span, ctx: Context) { const parent = span.parentSpanContext === undefined ? undefined : (trace.getSpan(ctx) as any)?.[this.key]; const t = this.rec.start(span, parent); if (t) (span as any)[this.key] = t; }
  onEnd(span: ReadableSpan) { const t = (span as any)[this.key]; if (!t) return; (span as any)[this.key] = undefined; this.rec.end(span, t as TrackedSpan); }
  async forceFlush() {} async shutdown() {}
}
class Empty implements SpanProcessor { onStart() {} onEnd() {} async forceFlush() {} async shutdown() {} }
async function round(kind: string) {
  const procs: SpanProcessor[] = [new BatchSpanProcessor(noop)];
  if (kind === "hooks") procs.push(new HooksOnly());
  if (kind === "empty") procs.push(new Empty());
  const provider = new NodeTracerProvider({ spanProcessors: procs });
  const tracer = provider.getTracer("hp");
  const t0 = performance.now();
  for (let r = 0; r < 2000; r++) {
    const run = tracer.startSpan("pipeline", { attributes: { "runtrail.pipeline.name": "bench" } }, ROOT_CONTEXT);
    const rc = trace.setSpan(ROOT_CONTEXT, run);
    for (let s = 0; s < 10; s++) {
      const st = tracer.startSpan(`stage_${s}`, { attributes: { "runtrail.rows.in": 10, "runtrail.rows.out": 9 } }, rc);
      const sc = trace.setSpan(ROOT_CONTEXT, st);
      for (let l = 0; l < 5; l++) {
        const llm = tracer.startSpan("chat gpt-4o", { attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20 } }, sc);
        llm.end();
      }
      st.end();
    }
    run.end();
    await new Promise((r) => setImmediate(r));
  }
  const t = performance.now() - t0;
  await provider.shutdown();
  return t;
}
const res: Record<string, number[]> = { base: [], empty: [], hooks: [] };
for (let i = 0; i < 9; i++) for (const k of ["base", "empty", "hooks"]) { const t = await round(k); if (i > 1) res[k]?.push(t); }
const med = (x: number[]) => x.sort((a, b) => a - b)[Math.floor(x.length / 2)] ?? 0;
console.log(Object.fromEntries(Object.entries(res).map(([k, v]) => [k, med(v).toFixed(0)])), "hooks overhead", ((med(res.hooks ?? []) / med(res.base ?? []) - 1) * 100).toFixed(1), "% empty", ((med(res.empty ?? []) / med(res.base ?? []) - 1) * 100).toFixed(1));
