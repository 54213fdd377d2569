import { type Attributes, SpanStatusCode } from "@opentelemetry/api";
import { SemconvAttributes as S } from "./attributes.js";
import { type SpanView, stringAttribute } from "./span-view.js";

export interface SpanError {
  type: string | null;
  message: string | null;
  stack: string | null;
}

/** A span failed when its status is ERROR or it recorded an `exception` event. */
export function spanFailed(span: SpanView): boolean {
  if (span.status.code === SpanStatusCode.ERROR) return true;
  for (const event of span.events) if (event.name === "exception") return true;
  return false;
}

/** The error of a failed span: its last `exception` event, else its status message. */
export function spanError(span: SpanView): SpanError | null {
  for (let i = span.events.length - 1; i >= 0; i--) {
    const event = span.events[i];
    if (event?.name === "exception") return exceptionOf(event.attributes ?? {});
  }
  if (span.status.code === SpanStatusCode.ERROR) {
    return { type: null, message: span.status.message || null, stack: null };
  }
  return null;
}

function exceptionOf(attributes: Attributes): SpanError {
  return {
    type: stringAttribute(attributes[S.exceptionType]) ?? null,
    message: stringAttribute(attributes[S.exceptionMessage]) ?? null,
    stack: stringAttribute(attributes[S.exceptionStacktrace]) ?? null,
  };
}

/** Seed 000's one-line `error`: `Type: message`. */
export function errorLine(error: SpanError | null): string | null {
  if (!error) return null;
  if (error.type && error.message) return `${error.type}: ${error.message}`;
  return error.type ?? error.message;
}
