export {
  formatBytes,
  formatCount,
  formatPercent,
  formatProgress,
  formatRunDuration,
  formatTime,
  shortId,
} from "../util/format.js";

/** JSON text of a row with its times as ISO 8601 strings. */
export function jsonOf(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
