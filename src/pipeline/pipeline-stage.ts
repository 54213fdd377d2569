import type { AttributeValue, Span, Tracer } from "@opentelemetry/api";
import { RunTrailAttributes as R } from "../record/attributes.js";
import {
  type Artifact,
  type ArtifactContent,
  type ArtifactOptions,
  errorArtifactContent,
  type RunArtifacts,
} from "./artifacts.js";
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
    /** The run's artifact writer; none while tracking is off. */
    protected readonly artifacts: RunArtifacts | undefined,
    /** The stage this records for; none for the run. */
    private readonly stageName: string | null,
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

  /**
   * Keeps an artifact of the run, written at once to
   * `<store dir>/artifacts/<run_id>/NN_<kind>.<ext>` (NN in order of creation) and recorded
   * with the run. Text is kept as `text/plain`, bytes with the media type their first bytes
   * tell (PNG, JPEG, GIF, WebP, WAV, MP3, Ogg, MP4, WebM, PDF), other values as JSON.
   * Resolves to the artifact, or `undefined` when tracking is off or the file could not be
   * written (which is logged, and never fails the pipeline).
   */
  artifact(
    kind: string,
    content: ArtifactContent,
    metadata?: Record<string, unknown>,
    options?: ArtifactOptions,
  ): Promise<Artifact | undefined> {
    if (this.artifacts === undefined) return Promise.resolve(undefined);
    return this.artifacts.write(this.span, this.stageName, kind, content, metadata, options);
  }

  /** Keeps an `error` artifact: the error's type, message and stack, with structured details. */
  errorArtifact(error: unknown, details?: Record<string, unknown>): Promise<Artifact | undefined> {
    return this.artifact("error", errorArtifactContent(error, details));
  }
}

/** A stage while its body runs. */
export class PipelineStage extends SpanRecorder {
  constructor(
    span: Span,
    tracer: Tracer,
    artifacts: RunArtifacts | undefined,
    readonly name: string,
    /** 1 for the first execution, 2 for the first retry, and so on. */
    readonly attempt: number,
  ) {
    super(span, tracer, artifacts, name);
  }
}
