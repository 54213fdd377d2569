import type { Attributes } from "@opentelemetry/api";
import { LlmAttributes as A } from "./attributes.js";
import { countAttribute } from "./span-view.js";

/** How a span takes part in LLM accounting. */
export type LlmRole =
  /** Not an LLM span. */
  | "none"
  /** One LLM call: counted once, its tokens summed. */
  | "call"
  /** An agent, chain, workflow or tool span: its token attributes are totals of its children. */
  | "aggregate"
  /** Carries tokens but no kind: a call, unless an LLM call below it was already counted. */
  | "unclassified";

export interface LlmUsage {
  role: LlmRole;
  inputTokens: number;
  outputTokens: number;
  tokens: number;
}

const CALL_OPERATIONS = new Set([
  "chat",
  "text_completion",
  "generate_content",
  "embeddings",
  "completion",
]);
const CALL_OPENINFERENCE_KINDS = new Set(["LLM", "EMBEDDING"]);

/**
 * Filled by each call of {@link readLlmUsage}; read it before the next call. The attribute names
 * below are those of {@link A}, written as literals so that V8 reads them as named properties.
 */
const usage: LlmUsage = { role: "none", inputTokens: 0, outputTokens: 0, tokens: 0 };

/**
 * Reads the LLM role and token usage of a span from the OpenTelemetry GenAI conventions
 * (current and deprecated names), OpenInference and OpenLLMetry. Returns `undefined` for a
 * span with none of their attributes, which is nearly every span. It runs for every span that
 * ends, so it allocates nothing: the object it returns is reused by the next call.
 */
export function readLlmUsage(attributes: Attributes): LlmUsage | undefined {
  const input =
    countAttribute(attributes["gen_ai.usage.input_tokens"]) ??
    countAttribute(attributes["gen_ai.usage.prompt_tokens"]) ??
    countAttribute(attributes["llm.token_count.prompt"]);
  const output =
    countAttribute(attributes["gen_ai.usage.output_tokens"]) ??
    countAttribute(attributes["gen_ai.usage.completion_tokens"]) ??
    countAttribute(attributes["llm.token_count.completion"]);
  const total =
    countAttribute(attributes["llm.usage.total_tokens"]) ??
    countAttribute(attributes["llm.token_count.total"]) ??
    countAttribute(attributes["gen_ai.usage.total_tokens"]);
  const role = roleOf(
    attributes,
    input !== undefined || output !== undefined || total !== undefined,
  );
  if (role === "none") return undefined;
  usage.role = role;
  usage.inputTokens = input ?? 0;
  usage.outputTokens = output ?? 0;
  usage.tokens = total ?? usage.inputTokens + usage.outputTokens;
  return usage;
}

function roleOf(attributes: Attributes, hasTokens: boolean): LlmRole {
  const operation = attributes["gen_ai.operation.name"];
  if (typeof operation === "string") {
    if (CALL_OPERATIONS.has(operation)) return "call";
    // invoke_agent, execute_tool, ...: never a call of its own.
    return hasTokens ? "aggregate" : "none";
  }
  const oiKind = attributes["openinference.span.kind"];
  if (typeof oiKind === "string") {
    if (CALL_OPENINFERENCE_KINDS.has(oiKind.toUpperCase())) return "call";
    // AGENT, CHAIN, TOOL ...
    return hasTokens ? "aggregate" : "none";
  }
  const requestType = attributes["llm.request.type"];
  if (typeof requestType === "string" && requestType.length > 0) return "call";
  // OpenLLMetry's workflow, task, agent and tool spans.
  if (typeof attributes["traceloop.span.kind"] === "string")
    return hasTokens ? "aggregate" : "none";
  return hasTokens ? "unclassified" : "none";
}

/**
 * Whether a span says at its start that it is an LLM call: the instrumentations set the
 * operation or kind when they create the span, and the tokens only when it ends.
 */
export function isLlmSpanAtStart(attributes: Attributes): boolean {
  const operation = attributes[A.genAiOperation];
  if (typeof operation === "string") return CALL_OPERATIONS.has(operation);
  const oiKind = attributes[A.openInferenceKind];
  if (typeof oiKind === "string") return CALL_OPENINFERENCE_KINDS.has(oiKind.toUpperCase());
  return typeof attributes[A.llmRequestType] === "string";
}
