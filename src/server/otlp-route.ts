import { createGunzip } from "node:zlib";
import type { Context, Env, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type DecodedExport, decodeJson, decodeProtobuf, OtlpDecodeError } from "../otlp/decode.js";
import {
  IngestBusyError,
  IngestClosedError,
  type IngestResult,
  type OtlpIngest,
} from "../otlp/otlp-ingest.js";
import { ExportResponse, RpcCode, RpcStatus } from "../otlp/otlp-schema.js";
import { mediaEssence } from "../util/media-type.js";
import type { Grant } from "./tokens.js";

export interface OtlpRouteOptions {
  ingest: () => OtlpIngest | undefined;
  /** Largest request body as sent (compressed); the app's default is DEFAULT_OTLP_BODY_BYTES. */
  maxBodyBytes: number;
  /** Largest request body once decompressed; a larger one is refused, not inflated. Default 32 MiB. */
  maxDecodedBytes?: number;
  /**
   * Bytes of request bodies held at once, as sent and as inflated, from the moment each is read
   * until it is answered; past it requests get 429. Default 128 MiB, and never less than one
   * largest body as sent and inflated.
   */
  maxHeldBytes?: number;
  /** The grant of a request that may ingest; throws (401/403) otherwise. */
  grant: (c: Context) => Grant;
  observe?: (result: "accepted" | "rejected", spans: number) => void;
  log: (message: string) => void;
}

type Format = "protobuf" | "json";

/** Largest OTLP request body as sent, unless configured. */
export const DEFAULT_OTLP_BODY_BYTES = 16 * 1024 * 1024;

const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";

function formatOf(contentType: string | undefined): Format | undefined {
  const media = contentType === undefined ? undefined : mediaEssence(contentType);
  if (media === PROTOBUF) return "protobuf";
  if (media === JSON_TYPE) return "json";
  return undefined;
}

/** An OTLP error response: `google.rpc.Status` in the request's format. */
function statusResponse(
  format: Format,
  status: number,
  code: number,
  message: string,
  retryAfter?: number,
  headers: Record<string, string> = {},
): Response {
  if (retryAfter !== undefined) headers["Retry-After"] = String(retryAfter);
  if (format === "protobuf") {
    headers["Content-Type"] = PROTOBUF;
    const body = RpcStatus.encode(RpcStatus.fromObject({ code, message })).finish();
    return new Response(body, { status, headers });
  }
  headers["Content-Type"] = JSON_TYPE;
  return new Response(JSON.stringify({ code, message }), { status, headers });
}

/** The gRPC code of an HTTP status, as the OTLP/HTTP specification pairs them. */
const RPC_CODES: Record<number, number> = {
  400: RpcCode.invalidArgument,
  401: RpcCode.unauthenticated,
  403: RpcCode.permissionDenied,
  404: RpcCode.notFound,
  413: RpcCode.invalidArgument,
  415: RpcCode.invalidArgument,
  429: RpcCode.resourceExhausted,
  503: RpcCode.unavailable,
  504: RpcCode.deadlineExceeded,
};

/**
 * The answer to a request of the OTLP endpoint that failed outside its route (no token, a
 * token that may not ingest, a request that took too long, a bug), as OTLP clients read every
 * error: `google.rpc.Status`, in the request's format.
 */
export function otlpErrorResponse(
  contentType: string | undefined,
  status: number,
  message: string,
): Response {
  const format = formatOf(contentType) ?? "json";
  const code = RPC_CODES[status] ?? RpcCode.internal;
  const headers: Record<string, string> =
    status === 401 ? { "WWW-Authenticate": 'Bearer realm="runtrail"' } : {};
  const retryAfter = status === 503 ? 1 : undefined;
  return statusResponse(format, status, code, message, retryAfter, headers);
}

function successResponse(format: Format, rejected: number, errorMessage: string | undefined) {
  const partialSuccess =
    rejected > 0 ? { rejectedSpans: rejected, errorMessage: errorMessage ?? "" } : undefined;
  if (format === "protobuf") {
    const message = ExportResponse.fromObject(partialSuccess ? { partialSuccess } : {});
    return new Response(ExportResponse.encode(message).finish(), {
      status: 200,
      headers: { "Content-Type": PROTOBUF },
    });
  }
  // OTLP/JSON writes 64-bit integers as decimal strings.
  const body = partialSuccess
    ? {
        partialSuccess: {
          rejectedSpans: String(rejected),
          errorMessage: partialSuccess.errorMessage,
        },
      }
    : {};
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { "Content-Type": JSON_TYPE },
  });
}

class TooLarge extends Error {}

/** The bodies held together would pass the server's bound: 429, not more memory. */
class OverBudget extends Error {}

/**
 * The bytes of OTLP request bodies the server holds at once. Each request takes its share as it
 * reads and inflates its body, a chunk at a time, and gives it back once answered, so that many
 * requests at once (say, small gzip bodies that each inflate to just under the size limit) are
 * turned away with 429 instead of growing the server's memory with their number.
 */
class BodyBudget {
  private held = 0;
  /** Bodies being inflated, and those waiting for their turn (see `inTurn`). */
  private inflating = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  /** A share for one request, given back with `release()`. */
  share(): BodyShare {
    let taken = 0;
    return {
      get taken() {
        return taken;
      },
      take: (bytes) => {
        if (this.held + bytes > this.max) return false;
        this.held += bytes;
        taken += bytes;
        return true;
      },
      release: () => {
        this.held -= taken;
        taken = 0;
      },
    };
  }

  get full(): boolean {
    return this.held >= this.max;
  }

  /**
   * Runs `inflate` when fewer than {@link INFLATING_AT_ONCE} others do: bodies inflated all at
   * once would each take part of the budget and, past it, all be refused; in turn, the first
   * ones in are taken whole and only the excess is refused.
   */
  async inTurn<T>(inflate: () => Promise<T>): Promise<T> {
    if (this.inflating >= INFLATING_AT_ONCE) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.inflating += 1;
    }
    try {
      return await inflate();
    } finally {
      const next = this.waiting.shift();
      // The turn passes to the next waiting body as it is, or is given back.
      if (next !== undefined) next();
      else this.inflating -= 1;
    }
  }
}

/** Bodies inflated at once: zlib's work runs on libuv's threads, beside DuckDB's. */
const INFLATING_AT_ONCE = 2;

interface BodyShare {
  /** Bytes taken so far. */
  readonly taken: number;
  /** Takes `bytes` more, unless that would pass the bound. */
  take(bytes: number): boolean;
  release(): void;
}

const BUSY_MESSAGE = "the server is behind on writing what it received; retry later";
const HELD_MESSAGE = "the server holds as many request bodies as it may; retry later";

/**
 * `POST /v1/traces`, OTLP/HTTP: protobuf or JSON bodies, gzip or not. Spans are recorded by
 * the store's {@link OtlpIngest}; the answer comes once they are durable. Errors are
 * `google.rpc.Status` bodies in the request's format: 400 for a body that is not an export
 * request, 413 past the size limits (checked while inflating, so a gzip bomb stops at the
 * limit), 415 for other content types and encodings, 429 when the writer is behind and 503
 * while the store is not open, both with `Retry-After`.
 */
export function registerOtlpRoute<E extends Env>(app: Hono<E>, options: OtlpRouteOptions): void {
  const maxDecoded = options.maxDecodedBytes ?? 32 * 1024 * 1024;
  const budget = new BodyBudget(
    Math.max(options.maxHeldBytes ?? 128 * 1024 * 1024, options.maxBodyBytes + maxDecoded),
  );
  /** Each request's share of the budget, from the first middleware to the answer. */
  const shares = new WeakMap<Context, BodyShare>();

  app.post(
    "/v1/traces",
    async (c, next) => {
      const format = formatOf(c.req.header("content-type"));
      if (format === undefined) {
        return statusResponse(
          "json",
          415,
          RpcCode.invalidArgument,
          `send ${PROTOBUF} or ${JSON_TYPE}, not ${c.req.header("content-type") ?? "no content type"}`,
        );
      }
      const encoding = (c.req.header("content-encoding") ?? "identity").trim().toLowerCase();
      if (encoding !== "gzip" && encoding !== "identity") {
        return statusResponse(
          format,
          415,
          RpcCode.invalidArgument,
          `content encoding ${encoding} is not supported: send gzip or identity`,
        );
      }
      options.grant(c);
      const ingest = options.ingest();
      if (ingest === undefined) {
        return statusResponse(format, 503, RpcCode.unavailable, "the store is not open", 1);
      }
      if (ingest.busy) {
        return statusResponse(format, 429, RpcCode.resourceExhausted, BUSY_MESSAGE, 1);
      }
      // A body that says its size takes its share before it is read.
      const share = budget.share();
      // (One over the limit is refused with 413 without being read: it takes no more than the limit.)
      const declared = Number(c.req.header("content-length") ?? 0);
      const bytes = Number.isSafeInteger(declared) ? Math.min(declared, options.maxBodyBytes) : 0;
      if (budget.full || !share.take(bytes)) {
        return statusResponse(format, 429, RpcCode.resourceExhausted, HELD_MESSAGE, 1);
      }
      shares.set(c, share);
      try {
        await next();
      } finally {
        share.release();
      }
    },
    bodyLimit({
      maxSize: options.maxBodyBytes,
      onError: (c) =>
        statusResponse(
          formatOf(c.req.header("content-type")) ?? "json",
          413,
          RpcCode.invalidArgument,
          `the request body is over ${options.maxBodyBytes} bytes`,
        ),
    }),
    async (c) => {
      const format = formatOf(c.req.header("content-type")) as Format;
      const grant = options.grant(c);
      const ingest = options.ingest();
      if (ingest === undefined) {
        return statusResponse(format, 503, RpcCode.unavailable, "the store is not open", 1);
      }
      let body: Uint8Array;
      try {
        body = await readBody(c, maxDecoded, shares.get(c) as BodyShare, budget);
      } catch (error) {
        if (error instanceof TooLarge) {
          return statusResponse(format, 413, RpcCode.invalidArgument, error.message);
        }
        if (error instanceof OverBudget) {
          return statusResponse(format, 429, RpcCode.resourceExhausted, HELD_MESSAGE, 1);
        }
        return statusResponse(
          format,
          400,
          RpcCode.invalidArgument,
          `the body is not valid gzip: ${(error as Error).message}`,
        );
      }
      let decoded: DecodedExport;
      try {
        decoded =
          format === "protobuf"
            ? decodeProtobuf(body)
            : decodeJson(Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8"));
      } catch (error) {
        if (error instanceof OtlpDecodeError) {
          return statusResponse(format, 400, RpcCode.invalidArgument, error.message);
        }
        throw error;
      }
      let result: IngestResult;
      try {
        result = await ingest.submit(decoded.spans, grant.tenant);
      } catch (error) {
        if (error instanceof IngestBusyError) {
          return statusResponse(
            format,
            429,
            RpcCode.resourceExhausted,
            error.message,
            error.retryAfterSeconds,
          );
        }
        if (error instanceof IngestClosedError) {
          return statusResponse(format, 503, RpcCode.unavailable, error.message, 1);
        }
        options.log(
          `runtrail serve: writing ${decoded.spans.length} OTLP spans failed: ${(error as Error).message}`,
        );
        return statusResponse(
          format,
          503,
          RpcCode.unavailable,
          "the spans could not be written to the store; retry later",
          1,
        );
      }
      const rejected = decoded.rejected + result.rejected;
      options.observe?.("accepted", decoded.spans.length - result.rejected);
      options.observe?.("rejected", rejected);
      return successResponse(format, rejected, decoded.errorMessage ?? result.errorMessage);
    },
  );
}

/**
 * The request body, inflated when gzipped, at most `max` bytes either way. The bytes are taken
 * from the request's share of the server's budget as they come (beyond those a body that
 * declared its length took before it was read), so that inflating stops as soon as either
 * bound is reached.
 */
async function readBody(
  c: Context,
  max: number,
  share: BodyShare,
  budget: BodyBudget,
): Promise<Uint8Array> {
  const raw = new Uint8Array(await c.req.arrayBuffer());
  if (!share.take(Math.max(0, raw.length - share.taken))) throw new OverBudget();
  const gzipped = (c.req.header("content-encoding") ?? "").trim().toLowerCase() === "gzip";
  if (!gzipped) {
    if (raw.length > max) throw new TooLarge(`the request body is over ${max} bytes`);
    return raw;
  }
  return budget.inTurn(() => inflate(raw, max, share));
}

function inflate(raw: Uint8Array, max: number, share: BodyShare): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip({ chunkSize: 64 * 1024 });
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (error: Error) => {
      gunzip.destroy();
      reject(error);
    };
    gunzip.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) stop(new TooLarge(`the request body inflates to over ${max} bytes`));
      else if (!share.take(chunk.length)) stop(new OverBudget());
      else chunks.push(chunk);
    });
    gunzip.on("end", () => resolve(Buffer.concat(chunks, size)));
    gunzip.on("error", reject);
    gunzip.end(raw);
  });
}
