import {
  type Attributes,
  type HrTime,
  type SpanContext,
  type SpanStatus,
  SpanStatusCode,
  TraceFlags,
} from "@opentelemetry/api";
import { LlmAttributes, SemconvAttributes } from "../record/attributes.js";
import type { SpanEventView, SpanView } from "../record/span-view.js";

/** Attributes other than `runtrail.*` that the recorder reads. Everything else is dropped. */
const READ_KEYS: ReadonlySet<string> = new Set<string>([
  SemconvAttributes.cicdPipelineName,
  SemconvAttributes.cicdPipelineResult,
  SemconvAttributes.vcsRevision,
  ...Object.values(LlmAttributes),
]);
const EXCEPTION_PREFIX = "exception.";

/** Whether the recorder reads a span attribute: what an OTLP span keeps. */
export function isReadAttribute(key: string): boolean {
  return key.startsWith("runtrail.") || READ_KEYS.has(key);
}

/** Whether the recorder reads an attribute of an `exception` event. */
export function isReadExceptionAttribute(key: string): boolean {
  return key.startsWith(EXCEPTION_PREFIX);
}

/** Resources by service name: one object for all the spans of a service. */
const resources = new Map<string | undefined, { readonly attributes: Attributes }>();

function resourceOf(serviceName: string | undefined): { readonly attributes: Attributes } {
  let resource = resources.get(serviceName);
  if (resource === undefined) {
    resource = {
      attributes: serviceName === undefined ? {} : { [SemconvAttributes.serviceName]: serviceName },
    };
    // Service names are few; a flood of distinct ones is not kept.
    if (resources.size < 10_000) resources.set(serviceName, resource);
  }
  return resource;
}

/**
 * A span received over OTLP, reduced to what the recorder reads: ids, name, times, status,
 * the attributes of {@link isReadAttribute}, `exception` events and the service name. The
 * recorder reads it as it reads a live span, so both paths give the same rows.
 */
export class RemoteSpan implements SpanView {
  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly name: string,
    readonly startTime: HrTime,
    readonly endTime: HrTime,
    readonly status: SpanStatus,
    readonly attributes: Attributes,
    readonly events: readonly SpanEventView[],
    readonly serviceName: string | undefined,
    /** The parent is in another process (the span's flags say so): the span is a local root. */
    readonly parentIsRemote = false,
  ) {}

  // Made when asked for: a span waits in memory with as few objects of its own as it can.
  get parentSpanContext(): SpanContext | undefined {
    const parent = this.parentSpanId;
    if (parent === undefined) return undefined;
    return this.parentIsRemote
      ? { traceId: this.traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED, isRemote: true }
      : { traceId: this.traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED };
  }

  get resource(): { readonly attributes: Attributes } {
    return resourceOf(this.serviceName);
  }

  spanContext(): SpanContext {
    return { traceId: this.traceId, spanId: this.spanId, traceFlags: TraceFlags.SAMPLED };
  }

  /** The same span under another parent: how a span whose parent never arrived is placed. */
  withParent(parentSpanId: string): RemoteSpan {
    return new RemoteSpan(
      this.traceId,
      this.spanId,
      parentSpanId,
      this.name,
      this.startTime,
      this.endTime,
      this.status,
      this.attributes,
      this.events,
      this.serviceName,
    );
  }

  /**
   * The span as stored in `otlp_spans.span`: a JSON array, ids aside (they are columns). A
   * twelfth element, `1`, marks a remote parent; spans without one keep eleven.
   */
  toJSON(): unknown[] {
    const fields = [
      this.name,
      this.parentSpanId ?? null,
      this.startTime[0],
      this.startTime[1],
      this.endTime[0],
      this.endTime[1],
      this.status.code,
      this.status.message ?? null,
      Object.keys(this.attributes).length === 0 ? null : this.attributes,
      this.events.length === 0
        ? null
        : this.events.map((e) => [e.name, e.time[0], e.time[1], e.attributes ?? null]),
      this.serviceName ?? null,
    ];
    if (this.parentIsRemote) fields.push(1);
    return fields;
  }

  /** A span stored by {@link toJSON}. Throws on anything else. */
  static fromJSON(traceId: string, spanId: string, text: string): RemoteSpan {
    const value = JSON.parse(text) as unknown;
    if (!Array.isArray(value) || (value.length !== 11 && value.length !== 12)) {
      throw new Error(`otlp_spans: span ${spanId} is not a stored span`);
    }
    const [name, parent, ss, sn, es, en, code, message, attributes, events, service, remote] =
      value;
    return new RemoteSpan(
      traceId,
      spanId,
      typeof parent === "string" ? parent : undefined,
      String(name),
      [Number(ss), Number(sn)],
      [Number(es), Number(en)],
      {
        code: Number(code) as SpanStatusCode,
        ...(typeof message === "string" ? { message } : {}),
      },
      (attributes ?? {}) as Attributes,
      Array.isArray(events)
        ? events.map((e: unknown[]) => ({
            name: String(e[0]),
            time: [Number(e[1]), Number(e[2])] as HrTime,
            attributes: (e[3] ?? undefined) as Attributes | undefined,
          }))
        : [],
      typeof service === "string" ? service : undefined,
      remote === 1 && typeof parent === "string",
    );
  }
}

/** The status of a span, from OTLP's codes (0 unset, 1 ok, 2 error), which the JS API shares. */
export function statusOf(code: number, message: string | undefined): SpanStatus {
  const known =
    code === SpanStatusCode.OK || code === SpanStatusCode.ERROR ? code : SpanStatusCode.UNSET;
  return message ? { code: known, message } : { code: known };
}
