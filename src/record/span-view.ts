import type {
  Attributes,
  AttributeValue,
  HrTime,
  SpanContext,
  SpanStatus,
} from "@opentelemetry/api";

/**
 * The part of a span runtrail reads. The SDK's `Span` and `ReadableSpan` satisfy it as they
 * are, so the in-process hooks pass spans through without copying them.
 */
export interface SpanView {
  readonly name: string;
  spanContext(): SpanContext;
  readonly parentSpanContext?: SpanContext | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly status: SpanStatus;
  readonly attributes: Attributes;
  readonly events: readonly SpanEventView[];
  readonly resource: { readonly attributes: Attributes };
}

export interface SpanEventView {
  readonly name: string;
  readonly time: HrTime;
  readonly attributes?: Attributes | undefined;
}

/** Epoch microseconds of an OpenTelemetry high-resolution time. */
export function hrTimeToMicros(time: HrTime): number {
  return time[0] * 1_000_000 + Math.floor(time[1] / 1000);
}

export function stringAttribute(value: AttributeValue | undefined): string | undefined {
  if (typeof value === "string") return value.length > 0 ? value : undefined;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

/** A non-negative finite number from a numeric or numeric-string attribute. */
export function countAttribute(value: AttributeValue | undefined): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value === "string" && value.length > 0) {
    const parsed = Number(value);
    return Number.isFinite(parsed) && parsed >= 0 ? parsed : undefined;
  }
  return undefined;
}
