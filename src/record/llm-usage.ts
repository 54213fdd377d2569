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
 * Reads the LLM role and token usage of a span from the OpenTelemetry GenAI conventions
 * (current and deprecated names), OpenInference and OpenLLMetry. Returns `undefined` for a
 * span with none of their attributes, which is nearly every span, as cheaply as possible.
 */
export function readLlmUsage(attributes: Attributes): LlmUsage | undefined {
  const input =
    countAttribute(attributes[A.genAiInputTokens]) ??
    countAttribute(attributes[A.genAiPromptTokens]) ??
    countAttribute(attributes[A.oiPromptTokens]);
  const output =
    countAttribute(attributes[A.genAiOutputTokens]) ??
    countAttribute(attributes[A.genAiCompletionTokens]) ??
    countAttribute(attributes[A.oiCompletionTokens]);
  const total =
    countAttribute(attributes[A.llmTotalTokens]) ??
    countAttribute(attributes[A.oiTotalTokens]) ??
    countAttribute(attributes[A.genAiTotalTokens]);
  const role = roleOf(
    attributes,
    input !== undefined || output !== undefined || total !== undefined,
  );
  if (role === "none") return undefined;
  const inputTokens = input ?? 0;
  const outputTokens = output ?? 0;
  return { role, inputTokens, outputTokens, tokens: total ?? inputTokens + outputTokens };
}

function roleOf(attributes: Attributes, hasTokens: boolean): LlmRole {
  const operation = attributes[A.genAiOperation];
  const oiKind = attributes[A.openInferenceKind];
  const requestType = attributes[A.llmRequestType];
  if (typeof operation === "string" && CALL_OPERATIONS.has(operation)) return "call";
  if (typeof oiKind === "string" && CALL_OPENINFERENCE_KINDS.has(oiKind.toUpperCase())) {
    return "call";
  }
  if (typeof requestType === "string" && requestType.length > 0) return "call";
  if (
    typeof operation === "string" ||
    typeof oiKind === "string" ||
    typeof attributes[A.traceloopKind] === "string"
  ) {
    // invoke_agent, execute_tool, AGENT, CHAIN, workflow, task ...: never a call of its own.
    return hasTokens ? "aggregate" : "none";
  }
  if (hasTokens) return "unclassified";
  return "none";
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
