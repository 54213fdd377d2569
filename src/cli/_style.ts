import type { RunStatus, StageStatus } from "../record/run-status.js";

export interface Style {
  color: boolean;
}

/** Colour only for a terminal, and never when `NO_COLOR` is set; `FORCE_COLOR` forces it. */
export function detectStyle(
  stream: { isTTY?: boolean } = process.stdout,
  env = process.env,
): Style {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return { color: false };
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return { color: true };
  return { color: stream.isTTY === true && env.TERM !== "dumb" };
}

const CODES = { green: 32, red: 31, yellow: 33, magenta: 35, cyan: 36, dim: 2, bold: 1 } as const;
export type Tint = keyof typeof CODES;

export function paint(style: Style, tint: Tint, text: string): string {
  return style.color ? `\u001b[${CODES[tint]}m${text}\u001b[0m` : text;
}

/** Colours of run statuses, and of stage statuses (`cached`: reused, not run). */
const STATUS_TINTS: Record<RunStatus | StageStatus, Tint> = {
  completed: "green",
  running: "yellow",
  failed: "red",
  crashed: "red",
  timed_out: "red",
  degraded: "magenta",
  rejected: "cyan",
  cancelled: "dim",
  cached: "cyan",
};

export function paintStatus(style: Style, status: string): string {
  const tint = STATUS_TINTS[status as RunStatus | StageStatus];
  return tint ? paint(style, tint, status) : status;
}

/** Length of text as shown, without colour codes. */
export function visibleLength(text: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI colour codes
  return text.replace(/\u001b\[[0-9;]*m/g, "").length;
}
