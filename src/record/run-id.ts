/**
 * Run ids are known when a run starts and derive from its span alone, so the in-process
 * processor and the OTLP receiver give the same id to the same span. A run that is the root of
 * its trace takes the trace id itself; a run nested in a trace takes the first half of the trace
 * id and its span id. Either way its id shares its first 16 hex digits with its trace id.
 */
export function runIdOf(traceId: string, spanId: string, isTraceRoot: boolean): string {
  const hex = isTraceRoot ? traceId : traceId.slice(0, 16) + spanId;
  return formatUuid(hex);
}

/** The digits every run of a trace shares: the first half of the trace id. */
export const TRACE_HEAD_DIGITS = 16;

/** The fewest hex digits of a run id shown. */
export const SHORT_ID_DIGITS = 8;

/**
 * The digits shown of a run id that only a longer prefix tells apart from another run of its
 * trace: every run nested in a trace shares its first 16 digits with the trace id, so at least
 * the next group of the UUID is shown, which also tells it from a sibling it was not compared
 * with (one that started after the listing).
 */
export const PAST_TRACE_DIGITS = 20;

/** The first `digits` hex digits of a run id, with the UUID's dashes among them. */
export function uuidPrefix(runId: string, digits: number): string {
  const dashes = [8, 12, 16, 20].filter((at) => digits > at).length;
  return runId.toLowerCase().slice(0, digits + dashes);
}

export function formatUuid(hex: string): string {
  // Joined rather than concatenated: one flat string, not a tree of five slices and four joins
  // that every row of the run would keep alive until it is written.
  return [
    hex.slice(0, 8),
    hex.slice(8, 12),
    hex.slice(12, 16),
    hex.slice(16, 20),
    hex.slice(20, 32),
  ].join("-");
}

export const MIN_ID_PREFIX = 4;

export class InvalidIdPrefixError extends Error {
  override readonly name = "InvalidIdPrefixError";
}

/** Lower-case hex digits of a run id or trace id prefix, dashes removed. */
export function normalizeIdPrefix(input: string): string {
  const hex = input.trim().toLowerCase().replaceAll("-", "");
  if (!/^[0-9a-f]*$/.test(hex)) {
    throw new InvalidIdPrefixError(`"${input}" is not a run id or trace id: use hex digits`);
  }
  if (hex.length < MIN_ID_PREFIX) {
    throw new InvalidIdPrefixError(
      `"${input}" is too short: give at least ${MIN_ID_PREFIX} hex digits of a run id or trace id`,
    );
  }
  if (hex.length > 32) {
    throw new InvalidIdPrefixError(`"${input}" is longer than a run id`);
  }
  return hex;
}

/** The smallest and largest UUIDs starting with a hex prefix, for a range scan. */
export function uuidRange(prefix: string): [string, string] {
  return [formatUuid(prefix.padEnd(32, "0")), formatUuid(prefix.padEnd(32, "f"))];
}
