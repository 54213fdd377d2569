import { ExportRequest } from "../../src/otlp/otlp-schema.js";

/**
 * OTLP/JSON bodies written by hand, as SDKs of other languages send them: ids in hex (upper
 * case here), 64-bit integers as decimal strings, resource and scope attributes, and
 * `exception` events.
 */

export interface HandSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** Milliseconds after the trace's base time. */
  startMs: number;
  endMs: number;
  attributes?: Record<string, string | number | boolean>;
  error?: { type: string; message: string; stacktrace?: string };
  /** OTLP span kind: 1 internal, 2 server, 3 client. */
  kind?: number;
  /** The parent is in another process: `flags` say so, as SDKs since OTLP 1.4 send them. */
  remoteParent?: boolean;
}

export const BASE_MS = Date.UTC(2026, 10, 20, 12, 0, 0);

function nanos(ms: number): string {
  return (BigInt(Math.round((BASE_MS + ms) * 1000)) * 1000n).toString();
}

function anyValue(value: string | number | boolean): Record<string, unknown> {
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "boolean") return { boolValue: value };
  return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value };
}

/** Attributes as OTLP/JSON key-values. The benchmarks build their bodies with it too. */
export function keyValues(attributes: Record<string, string | number | boolean>) {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: anyValue(value) }));
}

export function jsonSpan(span: HandSpan): Record<string, unknown> {
  return {
    traceId: span.traceId.toUpperCase(),
    spanId: span.spanId.toUpperCase(),
    ...(span.parentSpanId ? { parentSpanId: span.parentSpanId.toUpperCase() } : {}),
    // Sampled, and whether the parent is remote is known (0x100) and true (0x200) or not.
    flags: span.remoteParent ? 0x301 : 0x101,
    name: span.name,
    kind: span.kind ?? 1,
    startTimeUnixNano: nanos(span.startMs),
    endTimeUnixNano: nanos(span.endMs),
    attributes: keyValues(span.attributes ?? {}),
    droppedAttributesCount: 0,
    events: span.error
      ? [
          {
            timeUnixNano: nanos(span.endMs),
            name: "exception",
            attributes: keyValues({
              "exception.type": span.error.type,
              "exception.message": span.error.message,
              ...(span.error.stacktrace ? { "exception.stacktrace": span.error.stacktrace } : {}),
            }),
          },
        ]
      : [],
    status: span.error ? { code: 2, message: span.error.message } : { code: 0 },
    links: [],
    someFutureField: { ignored: true },
  };
}

/** An export request for spans of one service. */
export function jsonBody(spans: HandSpan[], service = "py-etl"): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: {
          attributes: keyValues({
            "service.name": service,
            "telemetry.sdk.language": "python",
            "host.name": "worker-7",
          }),
        },
        scopeSpans: [
          {
            scope: {
              name: "etl.pipeline",
              version: "1.4.0",
              attributes: keyValues({ team: "data" }),
            },
            spans: spans.map(jsonSpan),
            schemaUrl: "https://opentelemetry.io/schemas/1.26.0",
          },
        ],
      },
    ],
  });
}

/**
 * An export request in OTLP's JSON shape as protobuf: the same message, its hex ids as bytes.
 * The benchmarks build their protobuf bodies with it too.
 */
export function protobufOf(request: object): Uint8Array {
  const copy = structuredClone(request) as {
    resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[];
  };
  for (const rs of copy.resourceSpans) {
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        for (const field of ["traceId", "spanId", "parentSpanId"]) {
          if (typeof span[field] === "string") {
            span[field] = Buffer.from(span[field] as string, "hex");
          }
        }
      }
    }
  }
  return ExportRequest.encode(ExportRequest.fromObject(copy)).finish();
}

/** {@link jsonBody}'s request, in protobuf. */
export function protobufBody(spans: HandSpan[], service?: string): Uint8Array {
  return protobufOf(JSON.parse(jsonBody(spans, service)) as object);
}

const TRACE = "5B8EFFF798038103D269B633813FC60C";

/**
 * One run of a Python ETL pipeline in plain OTel spans: a root, three stages (the second
 * fails once and is retried), an LLM call under the last. Ids lower case here, sent upper.
 */
export function pythonRun(trace = TRACE.toLowerCase()) {
  const root = "1000000000000001";
  return {
    traceId: trace,
    root: {
      traceId: trace,
      spanId: root,
      name: "nightly-etl",
      startMs: 0,
      endMs: 5000,
      kind: 2,
      attributes: { "runtrail.pipeline.name": "nightly-etl", "runtrail.run.stages_expected": 3 },
    } satisfies HandSpan,
    extract: {
      traceId: trace,
      spanId: "2000000000000001",
      parentSpanId: root,
      name: "extract",
      startMs: 10,
      endMs: 1000,
      attributes: { "runtrail.rows.in": 500, "runtrail.rows.out": 480 },
    } satisfies HandSpan,
    transformFailed: {
      traceId: trace,
      spanId: "2000000000000002",
      parentSpanId: root,
      name: "transform",
      startMs: 1000,
      endMs: 1500,
      error: { type: "ValueError", message: "bad row 17", stacktrace: "Traceback ..." },
    } satisfies HandSpan,
    transform: {
      traceId: trace,
      spanId: "2000000000000003",
      parentSpanId: root,
      name: "transform",
      startMs: 1600,
      endMs: 3000,
    } satisfies HandSpan,
    summarize: {
      traceId: trace,
      spanId: "2000000000000004",
      parentSpanId: root,
      name: "summarize",
      startMs: 3000,
      endMs: 4900,
      attributes: { "runtrail.rows.out": 12 },
    } satisfies HandSpan,
    llm: {
      traceId: trace,
      spanId: "3000000000000001",
      parentSpanId: "2000000000000004",
      name: "chat gpt-4o-mini",
      startMs: 3100,
      endMs: 4800,
      kind: 3,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
      },
    } satisfies HandSpan,
  };
}
