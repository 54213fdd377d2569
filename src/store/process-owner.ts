import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { RunOwner } from "../record/owner.js";

/** Ticks per second of /proc times: 100 on every Linux runtrail runs on (USER_HZ). */
const CLOCK_TICKS = 100;

let bootSeconds: number | null | undefined;

function bootTime(): number | null {
  if (bootSeconds === undefined) {
    try {
      const line = readFileSync("/proc/stat", "utf8")
        .split("\n")
        .find((l) => l.startsWith("btime "));
      bootSeconds = line ? Number(line.slice(6)) : null;
    } catch {
      bootSeconds = null;
    }
  }
  return bootSeconds;
}

/**
 * When a process started, in epoch microseconds, from /proc on Linux; undefined elsewhere or
 * when there is no such process.
 */
export function processStartedAt(pid: number): number | undefined {
  const boot = bootTime();
  if (boot === null) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: the fields follow the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[19]);
  if (!Number.isFinite(ticks)) return undefined;
  return Math.round((boot + ticks / CLOCK_TICKS) * 1_000_000);
}

let current: RunOwner | undefined;

/** This process as the owner of the runs it records. */
export function currentOwner(): RunOwner {
  current ??= {
    host: hostname(),
    pid: process.pid,
    startedAt:
      processStartedAt(process.pid) ?? Math.round((Date.now() - process.uptime() * 1000) * 1000),
  };
  return current;
}

/**
 * Tolerance when comparing start times read at different moments: the boot time they are
 * counted from moves when the wall clock is stepped, while a pid is reused only after the pid
 * space wrapped, which takes far longer on any host runtrail runs on.
 */
const START_TOLERANCE_US = 30_000_000;

/**
 * Whether the owner of a run is still alive, on this host: its pid exists and, where the start
 * time can be read, it is the same process and not a later one that reused the pid.
 */
export function ownerAlive(pid: number, startedAt: number | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (startedAt === null) return true;
  const actual = processStartedAt(pid);
  if (actual === undefined) return true;
  return Math.abs(actual - startedAt) <= START_TOLERANCE_US;
}
