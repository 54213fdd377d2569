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

/** Milliseconds of a duration such as `90s`, `15m`, `24h`, `30d`, `2w` or `1h30m`. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let matched = 0;
  for (const match of trimmed.matchAll(pattern)) {
    total += Number(match[1]) * (UNITS[match[2] as string] ?? 0);
    matched += match[0].length;
  }
  if (trimmed.length === 0 || matched !== trimmed.length) {
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
  if (/^\d{4}-\d{2}-\d{2}/.test(trimmed)) {
    // Times are shown in UTC, so a time given without an offset is UTC too.
    const hasOffset = /(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed);
    const ms = Date.parse(trimmed.includes("T") && !hasOffset ? `${trimmed}Z` : trimmed);
    if (Number.isNaN(ms)) throw new InvalidTimeError(`"${text}" is not a valid date`);
    return ms * 1000;
  }
  try {
    return (nowMs - parseDuration(trimmed)) * 1000;
  } catch {
    throw new InvalidTimeError(
      `"${text}" is neither a duration ago (such as 24h or 7d) nor an ISO date (such as 2026-11-01)`,
    );
  }
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
