import { context, type Span, type Tracer, trace } from "@opentelemetry/api";
import { LlmAttributes as A, RunTrailAttributes as R } from "../record/attributes.js";

/** One LLM call to record: its model and token usage. */
export interface LlmCall {
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** `gen_ai.provider.name`, such as `openai`. */
  provider?: string;
  /** `gen_ai.operation.name`. Default `chat`. */
  operation?: string;
  /** How long the call took, ending now. Default 0. */
  durationMs?: number;
}

/**
 * Records a finished LLM call as a child span of `parent` with the OpenTelemetry GenAI
 * attributes, so runtrail, Jaeger and any GenAI-aware backend read the same thing.
 */
export function recordLlmCall(tracer: Tracer, parent: Span, call: LlmCall): void {
  const operation = call.operation ?? "chat";
  const end = Date.now();
  const span = tracer.startSpan(
    `${operation} ${call.model}`,
    {
      startTime: end - (call.durationMs ?? 0),
      attributes: {
        [R.kind]: "llm",
        [A.genAiOperation]: operation,
        [A.genAiRequestModel]: call.model,
        [A.genAiInputTokens]: call.inputTokens,
        [A.genAiOutputTokens]: call.outputTokens,
        ...(call.provider ? { [A.genAiProvider]: call.provider } : {}),
      },
    },
    trace.setSpan(context.active(), parent),
  );
  span.end(end);
}
