import type { z } from "@hono/zod-openapi";
import type { RunCursor } from "../query/list-runs.js";
import type { RunFilter } from "../query/run-filter.js";
import type { RunStatus } from "../record/run-status.js";
import { parseDuration, parseTimePoint } from "../util/duration.js";
import { ApiError } from "./api-error.js";
import type { RunFilterQuery } from "./schemas.js";
import type { Grant } from "./tokens.js";

/**
 * How a request's query becomes a run filter and a page cursor, the same for the API and the
 * pages: times and durations read (400 when they cannot be), the grant's tenant applied.
 */

const MAX_LIMIT = 1000;

function micros(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseTimePoint(text);
  } catch (error) {
    throw new ApiError(400, "invalid_parameter", `${name}: ${(error as Error).message}`);
  }
}

/**
 * Milliseconds of a duration parameter: a duration such as `90s` or `5m`, or a number of
 * seconds unless `unit` is required.
 */
export function durationMs(
  name: string,
  text: string,
  { unit }: { unit: "required" | "seconds" } = { unit: "seconds" },
): number {
  const seconds = unit === "seconds" && /^\d+(\.\d+)?$/.test(text.trim());
  try {
    return parseDuration(seconds ? `${text.trim()}s` : text);
  } catch (error) {
    throw new ApiError(400, "invalid_parameter", `${name}: ${(error as Error).message}`);
  }
}

/** Statuses of a `status` parameter, repeated or separated by commas, each once. */
export function statusesOf(value: string | string[] | undefined): RunStatus[] | undefined {
  if (value === undefined) return undefined;
  const list = (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(","));
  return [...new Set(list)] as RunStatus[];
}

/** A `limit` parameter, from 1 to 1000. */
export function limitOf(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new ApiError(400, "invalid_parameter", `limit: "${text}" is not from 1 to ${MAX_LIMIT}`);
  }
  return n;
}

/** The opaque text of a page cursor. */
export function encodeCursor(cursor: RunCursor): string {
  return Buffer.from(JSON.stringify([cursor.startedAt, cursor.runId])).toString("base64url");
}

/** The cursor an `encodeCursor` text holds; 400 for anything else. */
export function decodeCursor(text: string): RunCursor {
  try {
    const value = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown;
    if (
      Array.isArray(value) &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === "string" &&
      /^[0-9a-f-]{36}$/.test(value[1])
    ) {
      return { startedAt: value[0], runId: value[1] };
    }
  } catch {
    // answered below
  }
  throw new ApiError(400, "invalid_parameter", "cursor: not a next_cursor this server gave");
}

/** The tenant a request is limited to: the token's, which a `tenant` filter may not leave. */
function tenantOf(grant: Grant, asked: string | undefined): string | undefined {
  if (grant.tenant === null) return asked;
  if (asked !== undefined && asked !== grant.tenant) {
    throw new ApiError(403, "forbidden", `this token sees only the runs of tenant ${grant.tenant}`);
  }
  return grant.tenant;
}

/** The run filter of a request's query, limited to the grant's tenant. */
export function filterOf(grant: Grant, query: z.infer<typeof RunFilterQuery>): RunFilter {
  const tenant = tenantOf(grant, query.tenant);
  const since = micros("since", query.since);
  const until = micros("until", query.until);
  const statuses = statusesOf(query.status);
  return {
    ...(statuses ? { statuses } : {}),
    ...(query.pipeline !== undefined ? { pipeline: query.pipeline } : {}),
    ...(tenant !== undefined ? { tenant } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(query.min_duration !== undefined
      ? { minDurationSeconds: durationMs("min_duration", query.min_duration) / 1000 }
      : {}),
    ...(query.has_error !== undefined ? { hasError: query.has_error === "true" } : {}),
  };
}
