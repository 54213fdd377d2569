import { type Attributes, context, type Span, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { readLlmUsage } from "../../src/record/llm-usage.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type Traced, traced } from "../helpers/tracing.js";

function child(t: Traced, name: string, parent: Span, attributes: Attributes = {}): Span {
  return t.tracer.startSpan(name, { attributes }, trace.setSpan(context.active(), parent));
}

/** An LLM call span, ended at once. */
function call(t: Traced, parent: Span, attributes: Attributes): void {
  child(t, "llm", parent, attributes).end();
}

describe("readLlmUsage", () => {
  it("reads the current OpenTelemetry GenAI names", () => {
    expect(
      readLlmUsage({
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
      }),
    ).toEqual({ role: "call", inputTokens: 120, outputTokens: 30, tokens: 150 });
  });

  it("reads the deprecated GenAI prompt and completion names", () => {
    expect(
      readLlmUsage({
        "gen_ai.system": "openai",
        "gen_ai.usage.prompt_tokens": 7,
        "gen_ai.usage.completion_tokens": 3,
      }),
    ).toEqual({ role: "unclassified", inputTokens: 7, outputTokens: 3, tokens: 10 });
  });

  it("reads OpenInference token counts and takes the total when given", () => {
    expect(
      readLlmUsage({
        "openinference.span.kind": "LLM",
        "llm.token_count.prompt": 11,
        "llm.token_count.completion": 4,
        "llm.token_count.total": 15,
      }),
    ).toEqual({ role: "call", inputTokens: 11, outputTokens: 4, tokens: 15 });
  });

  it("reads OpenLLMetry's request type and total", () => {
    expect(
      readLlmUsage({
        "llm.request.type": "chat",
        "gen_ai.usage.prompt_tokens": 5,
        "gen_ai.usage.completion_tokens": 2,
        "llm.usage.total_tokens": 7,
      }),
    ).toEqual({ role: "call", inputTokens: 5, outputTokens: 2, tokens: 7 });
  });

  it("takes agent, chain, workflow and tool spans for aggregates", () => {
    for (const attributes of [
      { "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 5 },
      { "openinference.span.kind": "AGENT", "llm.token_count.total": 5 },
      { "openinference.span.kind": "CHAIN", "llm.token_count.total": 5 },
      { "traceloop.span.kind": "workflow", "llm.usage.total_tokens": 5 },
    ]) {
      expect(readLlmUsage(attributes)?.role).toBe("aggregate");
    }
  });

  it("ignores spans without LLM attributes and bad counts", () => {
    expect(readLlmUsage({ "http.method": "GET" })).toBeUndefined();
    expect(readLlmUsage({ "gen_ai.usage.input_tokens": -3 })).toBeUndefined();
    expect(readLlmUsage({ "gen_ai.usage.input_tokens": "12" })?.inputTokens).toBe(12);
  });
});

describe("LLM aggregation over a run", () => {
  it("sums calls and tokens of every convention and counts cumulative agent totals once", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = t.tracer.startSpan("agentic-etl");

    // Stage 1: OpenTelemetry GenAI, an agent span above two chat calls carrying their sum.
    const plan = child(t, "plan", root);
    const agent = child(t, "invoke_agent planner", plan, {
      "gen_ai.operation.name": "invoke_agent",
    });
    call(t, agent, {
      "gen_ai.operation.name": "chat",
      "gen_ai.usage.input_tokens": 100,
      "gen_ai.usage.output_tokens": 10,
    });
    call(t, agent, {
      "gen_ai.operation.name": "chat",
      "gen_ai.usage.input_tokens": 200,
      "gen_ai.usage.output_tokens": 20,
    });
    agent.setAttributes({ "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 30 });
    agent.end();
    plan.end();

    // Stage 2: OpenInference, a CHAIN with the total above an LLM span, and an embedding.
    const retrieve = child(t, "retrieve", root);
    const chain = child(t, "chain", retrieve, {
      "openinference.span.kind": "CHAIN",
      "llm.token_count.total": 55,
    });
    call(t, chain, {
      "openinference.span.kind": "LLM",
      "llm.token_count.prompt": 40,
      "llm.token_count.completion": 10,
    });
    call(t, chain, {
      "openinference.span.kind": "EMBEDDING",
      "llm.token_count.prompt": 5,
      "llm.token_count.total": 5,
    });
    chain.end();
    retrieve.end();

    // Stage 3: OpenLLMetry, a workflow with the total and a deprecated-name chat call; and an
    // unclassified span with tokens above another unclassified one: only the lower one counts.
    const write = child(t, "write", root);
    const workflow = child(t, "workflow", write, {
      "traceloop.span.kind": "workflow",
      "llm.usage.total_tokens": 9,
    });
    call(t, workflow, {
      "llm.request.type": "chat",
      "gen_ai.usage.prompt_tokens": 6,
      "gen_ai.usage.completion_tokens": 3,
      "llm.usage.total_tokens": 9,
    });
    workflow.end();
    const wrapper = child(t, "custom wrapper", write);
    call(t, wrapper, {
      "gen_ai.system": "anthropic",
      "gen_ai.usage.input_tokens": 1,
      "gen_ai.usage.output_tokens": 1,
    });
    wrapper.setAttributes({ "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1 });
    wrapper.end();
    write.end();
    root.end();

    await t.processor.forceFlush();
    const [run] = await storedRuns(db);
    // 2 GenAI chats + 1 OpenInference LLM + 1 embedding + 1 OpenLLMetry chat + 1 unclassified.
    expect(run).toMatchObject({
      llm_calls: 6,
      input_tokens: 300 + 45 + 6 + 1,
      output_tokens: 30 + 10 + 3 + 1,
      tokens: 330 + 55 + 9 + 2,
    });
    const stages = await storedStages(db);
    expect(stages.map((s) => [s.name, s.llm_calls, s.tokens])).toEqual([
      ["plan", 2, 330],
      ["retrieve", 2, 55],
      ["write", 2, 11],
    ]);
    await t.provider.shutdown();
  });

  it("counts an unclassified span with tokens as a call when nothing below it was counted", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = t.tracer.startSpan("ingest");
    const stage = child(t, "summarize", root);
    call(t, stage, { "gen_ai.usage.input_tokens": 8, "gen_ai.usage.output_tokens": 2 });
    stage.end();
    root.end();
    await t.processor.forceFlush();
    const [run] = await storedRuns(db);
    expect(run).toMatchObject({ llm_calls: 1, tokens: 10 });
    await t.provider.shutdown();
  });
});

describe("rows in and out", () => {
  it("takes the first stage's input and the last stage's output", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = t.tracer.startSpan("etl");
    child(t, "extract", root, { "runtrail.rows.in": 1000, "runtrail.rows.out": 990 }).end();
    child(t, "transform", root, { "runtrail.rows.in": 990, "runtrail.rows.out": 900 }).end();
    child(t, "load", root, { "runtrail.rows.in": 900, "runtrail.rows.out": 880 }).end();
    root.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({ rows_in: 1000, rows_out: 880 });
    await t.provider.shutdown();
  });

  it("prefers the counts set on the run itself", async () => {
    const db = tempStore();
    const t = traced({ db });
    const root = t.tracer.startSpan("etl");
    child(t, "extract", root, { "runtrail.rows.in": 1000, "runtrail.rows.out": 990 }).end();
    root.setAttributes({ "runtrail.rows.in": 5, "runtrail.rows.out": 4 });
    root.end();
    await t.processor.forceFlush();
    expect((await storedRuns(db))[0]).toMatchObject({ rows_in: 5, rows_out: 4 });
    await t.provider.shutdown();
  });
});
