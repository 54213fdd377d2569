import protobuf from "protobufjs";

/**
 * The OTLP trace export messages runtrail reads and writes, written from the OpenTelemetry
 * protocol specification (opentelemetry-proto, `collector/trace/v1`, `trace/v1`,
 * `common/v1`, `resource/v1`) and `google.rpc.Status`. Field numbers are the specification's;
 * names follow it in lowerCamelCase, as protobuf.js reflects them. Fields runtrail does not
 * read (links, trace state, dropped counts) are declared all the same, so that a message with
 * them decodes as the specification says rather than as unknown fields.
 */
const SCHEMA = `
syntax = "proto3";

package runtrail.otlp;

message ExportTraceServiceRequest {
  repeated ResourceSpans resource_spans = 1;
}

message ExportTraceServiceResponse {
  ExportTracePartialSuccess partial_success = 1;
}

message ExportTracePartialSuccess {
  int64 rejected_spans = 1;
  string error_message = 2;
}

message ResourceSpans {
  Resource resource = 1;
  repeated ScopeSpans scope_spans = 2;
  string schema_url = 3;
}

message Resource {
  repeated KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
}

message ScopeSpans {
  InstrumentationScope scope = 1;
  repeated Span spans = 2;
  string schema_url = 3;
}

message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}

message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  Status status = 15;

  message Event {
    fixed64 time_unix_nano = 1;
    string name = 2;
    repeated KeyValue attributes = 3;
    uint32 dropped_attributes_count = 4;
  }

  message Link {
    bytes trace_id = 1;
    bytes span_id = 2;
    string trace_state = 3;
    repeated KeyValue attributes = 4;
    uint32 dropped_attributes_count = 5;
    fixed32 flags = 6;
  }
}

message Status {
  reserved 1;
  string message = 2;
  int32 code = 3;
}

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}

message ArrayValue {
  repeated AnyValue values = 1;
}

message KeyValueList {
  repeated KeyValue values = 1;
}

message KeyValue {
  string key = 1;
  AnyValue value = 2;
}

message RpcStatus {
  int32 code = 1;
  string message = 2;
  repeated RpcAny details = 3;
}

message RpcAny {
  string type_url = 1;
  bytes value = 2;
}
`;

const root = protobuf.parse(SCHEMA).root;

/** `ExportTraceServiceRequest`. */
export const ExportRequest = root.lookupType("runtrail.otlp.ExportTraceServiceRequest");
/** `ExportTraceServiceResponse`. */
export const ExportResponse = root.lookupType("runtrail.otlp.ExportTraceServiceResponse");
/** `google.rpc.Status`, the body of an OTLP error response. */
export const RpcStatus = root.lookupType("runtrail.otlp.RpcStatus");

/** A 64-bit integer as protobuf.js decodes it: a `Long`, or a number when it fits. */
export type Int64 = number | { low: number; high: number; unsigned: boolean };

/** The decoded messages, as far as runtrail reads them. Absent fields are undefined or empty. */
export interface PbAnyValue {
  /** Which field of the `value` oneof is set: protobuf.js names it in this virtual field. */
  value?: keyof Omit<PbAnyValue, "value">;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Int64;
  doubleValue?: number;
  arrayValue?: { values?: PbAnyValue[] };
  kvlistValue?: { values?: PbKeyValue[] };
  bytesValue?: Uint8Array;
}

export interface PbKeyValue {
  key?: string;
  value?: PbAnyValue;
}

export interface PbEvent {
  timeUnixNano?: Int64;
  name?: string;
  attributes?: PbKeyValue[];
}

export interface PbSpan {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  parentSpanId?: Uint8Array;
  flags?: number;
  name?: string;
  kind?: number;
  startTimeUnixNano?: Int64;
  endTimeUnixNano?: Int64;
  attributes?: PbKeyValue[];
  events?: PbEvent[];
  status?: { message?: string; code?: number };
}

export interface PbExportRequest {
  resourceSpans?: {
    resource?: { attributes?: PbKeyValue[] };
    scopeSpans?: { spans?: PbSpan[] }[];
  }[];
}

/** `Span.flags` says whether the parent is remote (bit 9) only when bit 8 is set. */
const SPAN_FLAGS_HAS_IS_REMOTE = 0x100;
const SPAN_FLAGS_IS_REMOTE = 0x200;

/** Whether a span's `flags` say that its parent is in another process. */
export function parentIsRemote(flags: unknown): boolean {
  const mask = SPAN_FLAGS_HAS_IS_REMOTE | SPAN_FLAGS_IS_REMOTE;
  return typeof flags === "number" && (flags & mask) === mask;
}

/** gRPC status codes used in `google.rpc.Status` bodies. */
export const RpcCode = {
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  permissionDenied: 7,
  resourceExhausted: 8,
  internal: 13,
  unavailable: 14,
  unauthenticated: 16,
} as const;
