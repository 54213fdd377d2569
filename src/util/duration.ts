const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

export class InvalidTimeError extends Error {
  override readonly name = "InvalidTimeError";
}

/** The longest duration taken: 1,000 years. Longer ones are a typo, and overflow the store's times. */
const MAX_DURATION_MS = 1000 * 365.25 * 86_400_000;
/** The first and last instants the store's timestamps hold: 0001-01-01 and 9999-12-31T23:59:59Z. */
const FIRST_MS = -62_135_596_800_000;
export const LAST_MS = 253_402_300_799_000;

/**
 * Milliseconds of a duration such as `90s` or `1h30m`, or undefined when the text is not one;
 * throws for one longer than {@link MAX_DURATION_MS}.
 */
function durationTotal(text: string): number | undefined {
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let matched = 0;
  for (const match of text.matchAll(pattern)) {
    total += Number(match[1]) * (UNITS[match[2] as string] ?? 0);
    matched += match[0].length;
  }
  if (text.length === 0 || matched !== text.length) return undefined;
  if (!(total <= MAX_DURATION_MS)) {
    throw new InvalidTimeError(`"${text}" is longer than 1,000 years`);
  }
  return total;
}

/** Milliseconds of a duration such as `90s`, `15m`, `24h`, `30d`, `2w` or `1h30m`. */
export function parseDuration(text: string): number {
  const total = durationTotal(text.trim());
  if (total === undefined) {
    throw new InvalidTimeError(
      `"${text}" is not a duration: use a number and a unit, such as 90s, 15m, 24h, 30d or 2w`,
    );
  }
  return total;
}

/**
 * Epoch microseconds of a point in time given as a duration ago (`24h`) or as an ISO 8601
 * date or date-time (`2026-11-01`, `2026-11-01T12:00:00Z`), in UTC unless it gives an offset.
 */
export function parseTimePoint(text: string, nowMs: number = Date.now()): number {
  const trimmed = text.trim();
  const date = /^(\d{4})-(\d{2})-(\d{2})/.exec(trimmed);
  if (date !== null) {
    // Times are shown in UTC, so a time given without an offset is UTC too.
    const hasOffset = /(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed);
    const ms = Date.parse(trimmed.includes("T") && !hasOffset ? `${trimmed}Z` : trimmed);
    // Date.parse rolls an impossible day over (2026-02-30 becomes March 2nd): refused instead.
    const [year, month, day] = date.slice(1).map(Number) as [number, number, number];
    if (Number.isNaN(ms) || day < 1 || day > daysIn(year, month)) {
      throw new InvalidTimeError(`"${text}" is not a valid date`);
    }
    return inRange(ms, text) * 1000;
  }
  const total = durationTotal(trimmed);
  if (total === undefined) {
    throw new InvalidTimeError(
      `"${text}" is neither a duration ago (such as 24h or 7d) nor an ISO date (such as 2026-11-01)`,
    );
  }
  return inRange(nowMs - total, text) * 1000;
}

/** Days in a month (1 to 12) of a year; 0 for a month that does not exist. */
function daysIn(year: number, month: number): number {
  if (month < 1 || month > 12) return 0;
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function inRange(ms: number, text: string): number {
  if (ms < FIRST_MS || ms > LAST_MS) {
    throw new InvalidTimeError(`"${text}" is outside the years 1 to 9999`);
  }
  return ms;
}

/** A short human duration: `850ms`, `12.45s`, `3m 20s`, `2h 5m`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(2)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(seconds - minutes * 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes - hours * 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** ISO 8601 text of epoch microseconds, to the millisecond. */
export function isoOfMicros(micros: number): string {
  return new Date(Math.floor(micros / 1000)).toISOString();
}
