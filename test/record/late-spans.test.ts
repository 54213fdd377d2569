import { type Attributes, context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type Traced, traced } from "../helpers/tracing.js";

function child(t: Traced, name: string, parent: Span, attributes: Attributes = {}): Span {
  return t.tracer.startSpan(name, { attributes }, trace.setSpan(context.active(), parent));
}

const CHAT = {
  "gen_ai.operation.name": "chat",
  "gen_ai.usage.input_tokens": 7,
  "gen_ai.usage.output_tokens": 3,
};

describe("spans that end out of order", () => {
  it("decides the run's status anew when a stage fails after the run ended", async () => {
    const db = tempStore();
    const t = traced({ db });
    const run = t.tracer.startSpan("fire-and-forget");
    const stage = child(t, "notify", run);
    run.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]?.status).toBe("completed");
    stage.recordException(new Error("webhook refused"));
    stage.setStatus({ code: SpanStatusCode.ERROR });
    stage.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({
      status: "degraded",
      failed_stage: "notify",
      error_message: "webhook refused",
      stages_failed: ["notify"],
    });
    await t.provider.shutdown();
  });

  it("counts an LLM call that ends after its stage, on the stage's row and the run's", async () => {
    const db = tempStore();
    const t = traced({ db });
    const run = t.tracer.startSpan("summaries");
    const stage = child(t, "summarize", run);
    const call = child(t, "chat", stage, CHAT);
    stage.end();
    run.end();
    await t.processor.forceFlush();
    call.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({ llm_calls: 1, tokens: 10 });
    expect((await storedStages(db)).map((s) => [s.name, s.llm_calls, s.tokens])).toEqual([
      ["summarize", 1, 10],
    ]);
    await t.provider.shutdown();
  });

  it("writes one row for a stage whose LLM calls end after it and its run, all in one write", async () => {
    const db = tempStore();
    const t = traced({ db });
    const run = t.tracer.startSpan("summaries");
    const stage = child(t, "summarize", run);
    const calls = [child(t, "chat", stage, CHAT), child(t, "chat", stage, CHAT)];
    stage.end();
    run.end();
    for (const call of calls) call.end();
    // The stage's row, and the two rows the late calls rewrite it with, go in one write.
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({ llm_calls: 2, tokens: 20 });
    expect((await storedStages(db)).map((s) => [s.name, s.llm_calls, s.tokens])).toEqual([
      ["summarize", 2, 20],
    ]);
    await t.provider.shutdown();
  });

  it("does not take stages of one name running side by side for retries when one fails", async () => {
    const db = tempStore();
    const t = traced({ db });
    const run = t.tracer.startSpan("fan-out");
    const chunks = [0, 1, 2].map(() => child(t, "chunk", run));
    const [first, second, third] = chunks as [Span, Span, Span];
    first.setStatus({ code: SpanStatusCode.ERROR, message: "bad chunk" });
    first.end();
    const fourth = child(t, "chunk", run);
    for (const span of [second, third, fourth]) span.end();
    run.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({ status: "degraded", retry_count: 0 });
    expect((await storedStages(db)).map((s) => s.attempt)).toEqual([1, 1, 1, 1]);
    await t.provider.shutdown();
  });

  it("lets go of spans that never end once their run has ended, and keeps recording", async () => {
    const db = tempStore();
    const t = traced({ db, maxOpenSpans: 50 });
    for (let i = 0; i < 120; i++) {
      const run = t.tracer.startSpan(`run-${i}`);
      child(t, "forgotten", run); // never ended
      run.end();
    }
    await t.processor.forceFlush();
    expect(t.processor.stats.droppedRuns + t.processor.stats.droppedSpans).toBe(0);
    expect(await storedRuns(db)).toHaveLength(120);
    expect(t.processor.stats.trackedSpans).toBeLessThanOrEqual(50);
    await t.provider.shutdown();
  });
});
