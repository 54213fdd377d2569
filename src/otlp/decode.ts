import type { Attributes, AttributeValue, HrTime } from "@opentelemetry/api";
import { SemconvAttributes } from "../record/attributes.js";
import type { SpanEventView } from "../record/span-view.js";
import {
  ExportRequest,
  type Int64,
  type PbAnyValue,
  type PbExportRequest,
  type PbKeyValue,
  type PbSpan,
  parentIsRemote,
} from "./otlp-schema.js";
import { isReadAttribute, isReadExceptionAttribute, RemoteSpan, statusOf } from "./remote-span.js";

/** The spans of one export request, and those of its spans that were not valid. */
export interface DecodedExport {
  spans: RemoteSpan[];
  rejected: number;
  /** Why spans were rejected: the first reason, and how many more there were. */
  errorMessage: string | undefined;
}

/** A body that is not an export request at all: answered 400, nothing of it kept. */
export class OtlpDecodeError extends Error {
  override readonly name = "OtlpDecodeError";
}

/** A span that is not valid: rejected on its own, the rest of the request goes on. */
class InvalidSpan extends Error {}

/** Nesting of array and key-value list attribute values beyond this is flattened to text. */
const MAX_VALUE_DEPTH = 8;
const NANOS = 1_000_000_000n;
/** OTLP times are fixed64: a JSON number past this is not a time. */
const MAX_NANOS = 2n ** 64n - 1n;
const HEX = /^[0-9a-fA-F]*$/;
/** What most spans have of the attributes and events runtrail reads: none, shared. */
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const NO_EVENTS: readonly SpanEventView[] = Object.freeze([]);

/** Collects the spans of a request, one span at a time, rejecting the invalid ones. */
class Collector {
  readonly spans: RemoteSpan[] = [];
  rejected = 0;
  private firstReason: string | undefined;

  add(index: number, build: () => RemoteSpan): void {
    try {
      this.spans.push(build());
    } catch (error) {
      if (!(error instanceof InvalidSpan)) throw error;
      this.rejected += 1;
      this.firstReason ??= `span ${index}: ${error.message}`;
    }
  }

  result(): DecodedExport {
    const more = this.rejected - 1;
    return {
      spans: this.spans,
      rejected: this.rejected,
      errorMessage:
        this.firstReason === undefined
          ? undefined
          : more > 0
            ? `${this.firstReason} (and ${more} more span${more === 1 ? "" : "s"})`
            : this.firstReason,
    };
  }
}

/** Which resource attribute the decoders keep: the service name. */
function isServiceName(key: string): boolean {
  return key === SemconvAttributes.serviceName;
}

/** The service a resource's kept attributes name, if any. */
function serviceNameOf(resource: Attributes): string | undefined {
  const service = resource[SemconvAttributes.serviceName];
  return typeof service === "string" && service.length > 0 ? service : undefined;
}

function hrTimeOf(nanos: bigint): HrTime {
  return [Number(nanos / NANOS), Number(nanos % NANOS)];
}

/** Start and end of a span, checked: both set, the end not before the start. */
function spanTimes(start: bigint | undefined, end: bigint | undefined): [HrTime, HrTime] {
  if (start === undefined || start <= 0n) {
    throw new InvalidSpan("start_time_unix_nano is not set, or not a time in nanoseconds");
  }
  if (end === undefined || end <= 0n) {
    throw new InvalidSpan("end_time_unix_nano is not set, or not a time in nanoseconds");
  }
  if (start > MAX_NANOS || end > MAX_NANOS) {
    throw new InvalidSpan("a time is past the 64-bit range of OTLP times");
  }
  if (end < start) throw new InvalidSpan("end_time_unix_nano is before start_time_unix_nano");
  return [hrTimeOf(start), hrTimeOf(end)];
}

/** An exception event's time; one not set or out of range is taken as the span's start. */
function eventTime(time: bigint | undefined, start: HrTime): HrTime {
  return time === undefined || time <= 0n || time > MAX_NANOS ? start : hrTimeOf(time);
}

function checkedId(
  hex: string,
  bytes: number,
  field: string,
  optional: boolean,
): string | undefined {
  if (hex.length === 0 && optional) return undefined;
  if (hex.length !== bytes * 2 || !HEX.test(hex)) {
    throw new InvalidSpan(`${field} is not ${bytes} bytes`);
  }
  if (/^0+$/.test(hex)) {
    if (optional) return undefined;
    throw new InvalidSpan(`${field} is all zeros`);
  }
  return hex.toLowerCase();
}

// --- protobuf ----------------------------------------------------------------------------

function hexOf(bytes: Uint8Array | undefined): string {
  if (bytes === undefined || bytes.length === 0) return "";
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex");
}

function pbNanos(value: Int64 | undefined): bigint | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number")
    return Number.isFinite(value) ? BigInt(Math.trunc(value)) : undefined;
  return (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
}

function pbInt(value: Int64): number {
  if (typeof value === "number") return value;
  const unsigned = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return Number(value.unsigned ? unsigned : BigInt.asIntN(64, unsigned));
}

function pbValue(value: PbAnyValue | undefined, depth: number): AttributeValue | undefined {
  if (value === undefined || value === null) return undefined;
  switch (value.value) {
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "intValue":
      return value.intValue === undefined ? undefined : pbInt(value.intValue);
    case "doubleValue":
      return value.doubleValue;
    case "bytesValue":
      return value.bytesValue === undefined
        ? undefined
        : Buffer.from(value.bytesValue).toString("base64");
    case "arrayValue":
      return arrayOf((value.arrayValue?.values ?? []).map((v) => pbNested(v, depth + 1)));
    case "kvlistValue":
      return JSON.stringify(pbObject(value.kvlistValue?.values ?? [], depth + 1));
    default:
      return undefined;
  }
}

function pbNested(value: PbAnyValue, depth: number): unknown {
  if (depth > MAX_VALUE_DEPTH) return null;
  if (value.value === "kvlistValue") {
    return pbObject(value.kvlistValue?.values ?? [], depth + 1);
  }
  if (value.value === "arrayValue") {
    return (value.arrayValue?.values ?? []).map((v) => pbNested(v, depth + 1));
  }
  return pbValue(value, depth) ?? null;
}

function pbObject(values: PbKeyValue[], depth: number): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  if (depth > MAX_VALUE_DEPTH) return object;
  for (const kv of values) if (kv.key) object[kv.key] = kv.value ? pbNested(kv.value, depth) : null;
  return object;
}

function pbAttributes(list: PbKeyValue[] | undefined, keep: (key: string) => boolean): Attributes {
  let attributes: Attributes | undefined;
  if (list === undefined) return NO_ATTRIBUTES;
  for (const kv of list) {
    const key = kv.key;
    if (!key || !keep(key)) continue;
    const value = pbValue(kv.value, 0);
    if (value !== undefined) {
      attributes ??= {};
      attributes[key] = value;
    }
  }
  return attributes ?? NO_ATTRIBUTES;
}

function pbSpan(span: PbSpan, serviceName: string | undefined): RemoteSpan {
  const traceId = checkedId(hexOf(span.traceId), 16, "trace_id", false) as string;
  const spanId = checkedId(hexOf(span.spanId), 8, "span_id", false) as string;
  const parentId = checkedId(hexOf(span.parentSpanId), 8, "parent_span_id", true);
  const [start, end] = spanTimes(pbNanos(span.startTimeUnixNano), pbNanos(span.endTimeUnixNano));
  const events: SpanEventView[] = [];
  for (const event of span.events ?? []) {
    if (event.name !== "exception") continue;
    events.push({
      name: "exception",
      time: eventTime(pbNanos(event.timeUnixNano), start),
      attributes: pbAttributes(event.attributes, isReadExceptionAttribute),
    });
  }
  return new RemoteSpan(
    traceId,
    spanId,
    parentId,
    span.name ?? "",
    start,
    end,
    statusOf(span.status?.code ?? 0, span.status?.message),
    pbAttributes(span.attributes, isReadAttribute),
    events.length === 0 ? NO_EVENTS : events,
    serviceName,
    parentId !== undefined && parentIsRemote(span.flags),
  );
}

/** Decodes an `ExportTraceServiceRequest` in protobuf. */
export function decodeProtobuf(body: Uint8Array): DecodedExport {
  let request: PbExportRequest;
  try {
    request = ExportRequest.decode(body) as PbExportRequest;
  } catch (error) {
    throw new OtlpDecodeError(
      `the body is not an OTLP ExportTraceServiceRequest in protobuf: ${(error as Error).message}`,
    );
  }
  const collector = new Collector();
  let index = 0;
  for (const resourceSpans of request.resourceSpans ?? []) {
    const serviceName = serviceNameOf(
      pbAttributes(resourceSpans.resource?.attributes, isServiceName),
    );
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        collector.add(index++, () => pbSpan(span, serviceName));
      }
    }
  }
  return collector.result();
}

// --- JSON --------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A repeated field: absent or null is empty; anything but an array is a malformed body. */
function listField(owner: Json, field: string, where: string): unknown[] {
  const value = owner[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new OtlpDecodeError(`${where}.${field} is not an array`);
  return value;
}

/** An int64 as OTLP JSON writes it: a decimal string or a number. */
function jsonInt64(value: unknown): bigint | undefined {
  if (typeof value === "string" && /^-?\d{1,20}$/.test(value)) return BigInt(value);
  if (typeof value === "number" && Number.isFinite(value)) return BigInt(Math.trunc(value));
  return undefined;
}

function jsonDouble(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (value === "NaN") return Number.NaN;
  if (value === "Infinity") return Number.POSITIVE_INFINITY;
  if (value === "-Infinity") return Number.NEGATIVE_INFINITY;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) {
    return Number(value);
  }
  return undefined;
}

function jsonValue(value: unknown, depth: number): AttributeValue | undefined {
  if (!isObject(value)) return undefined;
  if (typeof value.stringValue === "string") return value.stringValue;
  if (typeof value.boolValue === "boolean") return value.boolValue;
  if ("intValue" in value) {
    const int = jsonInt64(value.intValue);
    return int === undefined ? undefined : Number(int);
  }
  if ("doubleValue" in value) return jsonDouble(value.doubleValue);
  if (typeof value.bytesValue === "string") return value.bytesValue;
  if (isObject(value.arrayValue)) {
    const values = value.arrayValue.values;
    return arrayOf(Array.isArray(values) ? values.map((v) => jsonNested(v, depth + 1)) : []);
  }
  if (isObject(value.kvlistValue)) {
    return JSON.stringify(jsonObject(value.kvlistValue.values, depth + 1));
  }
  return undefined;
}

function jsonNested(value: unknown, depth: number): unknown {
  if (depth > MAX_VALUE_DEPTH || !isObject(value)) return null;
  if (isObject(value.kvlistValue)) return jsonObject(value.kvlistValue.values, depth + 1);
  if (isObject(value.arrayValue)) {
    const values = value.arrayValue.values;
    return Array.isArray(values) ? values.map((v) => jsonNested(v, depth + 1)) : [];
  }
  return jsonValue(value, depth) ?? null;
}

function jsonObject(values: unknown, depth: number): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  if (depth > MAX_VALUE_DEPTH || !Array.isArray(values)) return object;
  for (const kv of values) {
    if (isObject(kv) && typeof kv.key === "string" && kv.key !== "") {
      object[kv.key] = jsonNested(kv.value, depth);
    }
  }
  return object;
}

function jsonAttributes(list: unknown, keep: (key: string) => boolean): Attributes {
  let attributes: Attributes | undefined;
  if (!Array.isArray(list)) return NO_ATTRIBUTES;
  for (const kv of list) {
    if (!isObject(kv) || typeof kv.key !== "string" || !keep(kv.key)) continue;
    const value = jsonValue(kv.value, 0);
    if (value !== undefined) {
      attributes ??= {};
      attributes[kv.key] = value;
    }
  }
  return attributes ?? NO_ATTRIBUTES;
}

function jsonId(
  value: unknown,
  bytes: number,
  field: string,
  optional: boolean,
): string | undefined {
  if (value === undefined || value === null) {
    if (optional) return undefined;
    throw new InvalidSpan(`${field} is missing`);
  }
  if (typeof value !== "string") throw new InvalidSpan(`${field} is not a hex string`);
  return checkedId(value, bytes, field, optional);
}

function jsonSpan(span: unknown, serviceName: string | undefined): RemoteSpan {
  if (!isObject(span)) throw new InvalidSpan("not an object");
  const traceId = jsonId(span.traceId, 16, "traceId", false) as string;
  const spanId = jsonId(span.spanId, 8, "spanId", false) as string;
  const parentId = jsonId(span.parentSpanId, 8, "parentSpanId", true);
  if (span.name !== undefined && typeof span.name !== "string") {
    throw new InvalidSpan("name is not a string");
  }
  const [start, end] = spanTimes(
    jsonInt64(span.startTimeUnixNano),
    jsonInt64(span.endTimeUnixNano),
  );
  const status = isObject(span.status) ? span.status : {};
  const code = typeof status.code === "number" ? status.code : 0;
  const message = typeof status.message === "string" ? status.message : undefined;
  const events: SpanEventView[] = [];
  if (Array.isArray(span.events)) {
    for (const event of span.events) {
      if (!isObject(event) || event.name !== "exception") continue;
      events.push({
        name: "exception",
        time: eventTime(jsonInt64(event.timeUnixNano), start),
        attributes: jsonAttributes(event.attributes, isReadExceptionAttribute),
      });
    }
  }
  return new RemoteSpan(
    traceId,
    spanId,
    parentId,
    typeof span.name === "string" ? span.name : "",
    start,
    end,
    statusOf(code, message),
    jsonAttributes(span.attributes, isReadAttribute),
    events.length === 0 ? NO_EVENTS : events,
    serviceName,
    parentId !== undefined && parentIsRemote(span.flags),
  );
}

/** Decodes an `ExportTraceServiceRequest` in OTLP's JSON mapping. */
export function decodeJson(body: string): DecodedExport {
  let request: unknown;
  try {
    request = JSON.parse(body);
  } catch (error) {
    throw new OtlpDecodeError(`the body is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(request)) throw new OtlpDecodeError("the body is not a JSON object");
  const collector = new Collector();
  let index = 0;
  for (const [r, resourceSpans] of listField(request, "resourceSpans", "request").entries()) {
    const where = `resourceSpans[${r}]`;
    if (!isObject(resourceSpans)) throw new OtlpDecodeError(`${where} is not an object`);
    const resource = isObject(resourceSpans.resource) ? resourceSpans.resource : {};
    const serviceName = serviceNameOf(jsonAttributes(resource.attributes, isServiceName));
    for (const [s, scopeSpans] of listField(resourceSpans, "scopeSpans", where).entries()) {
      if (!isObject(scopeSpans))
        throw new OtlpDecodeError(`${where}.scopeSpans[${s}] is not an object`);
      for (const span of listField(scopeSpans, "spans", `${where}.scopeSpans[${s}]`)) {
        collector.add(index++, () => jsonSpan(span, serviceName));
      }
    }
  }
  return collector.result();
}

/** An attribute array as the JS API types it: primitives of one type; anything else as JSON. */
function arrayOf(values: unknown[]): AttributeValue {
  const first = values.find((v) => v !== null);
  const type = typeof first;
  if (
    (type === "string" || type === "number" || type === "boolean" || first === undefined) &&
    values.every((v) => v === null || typeof v === type)
  ) {
    return values as AttributeValue;
  }
  return JSON.stringify(values);
}
