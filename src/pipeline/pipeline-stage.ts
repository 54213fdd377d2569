import type { AttributeValue, Span, Tracer } from "@opentelemetry/api";
import { RunTrailAttributes as R } from "../record/attributes.js";
import { type LlmCall, recordLlmCall } from "./llm-call.js";

/** Rows a run or stage read and wrote. */
export interface RowCounts {
  in?: number;
  out?: number;
}

/** What both a run and a stage can record on their span. */
export class SpanRecorder {
  constructor(
    /** The OpenTelemetry span, for anything the helpers do not cover. */
    readonly span: Span,
    protected readonly tracer: Tracer,
  ) {}

  /** Rows read and written. */
  rows(counts: RowCounts): void {
    if (counts.in !== undefined) this.span.setAttribute(R.rowsIn, counts.in);
    if (counts.out !== undefined) this.span.setAttribute(R.rowsOut, counts.out);
  }

  /** A finished LLM call with its model and tokens, as a child span. */
  llmCall(call: LlmCall): void {
    recordLlmCall(this.tracer, this.span, call);
  }

  /** A metadata entry, stored in the row's `metadata` JSON. */
  metadata(key: string, value: AttributeValue): void {
    this.span.setAttribute(R.metadataPrefix + key, value);
  }
}

/** A stage while its body runs. */
export class PipelineStage extends SpanRecorder {
  constructor(
    span: Span,
    tracer: Tracer,
    readonly name: string,
    /** 1 for the first execution, 2 for the first retry, and so on. */
    readonly attempt: number,
  ) {
    super(span, tracer);
  }
}
