import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Options every benchmark takes. */
export interface BenchOptions {
  /** Smaller sizes, for a smoke run in CI. */
  quick: boolean;
  /** Progress lines go here (stderr), so that the report itself stays clean. */
  log: (line: string) => void;
}

/** A goal and whether the measured figure meets it. */
export interface Goal {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

/** One benchmark's part of the report. */
export interface Section {
  title: string;
  /** What was measured and how, in a sentence or two. */
  description: string;
  /** Markdown tables: header row first. */
  tables: { caption?: string; rows: string[][] }[];
  goals: Goal[];
  notes: string[];
}

/** What every benchmark returns: its figures (benchmark-specific) and its report section. */
export interface BenchResult {
  name: string;
  section: Section;
}

// ---------------------------------------------------------------------------------------------
// Statistics

export function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Percentile by nearest rank (p in 0..100) of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of an empty list");
  const s = sorted(values);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))] as number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of an empty list");
  const s = sorted(values);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  return {
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: percentile(values, 100),
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** 1234567.8 -> "1,234,568"; digits after the point on request. */
export function num(value: number, digits = 0): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function ms(value: number, digits = 1): string {
  return `${num(value, digits)} ms`;
}

export function seconds(valueMs: number, digits = 2): string {
  return `${num(valueMs / 1000, digits)} s`;
}

export function bytes(value: number): string {
  const sign = value < 0 ? "-" : "";
  const abs = Math.abs(value);
  if (abs >= 1024 ** 3) return `${sign}${num(abs / 1024 ** 3, 2)} GiB`;
  if (abs >= 1024 ** 2) return `${sign}${num(abs / 1024 ** 2, 1)} MiB`;
  if (abs >= 1024) return `${sign}${num(abs / 1024, 1)} KiB`;
  return `${sign}${num(abs)} B`;
}

export function ratio(value: number, digits = 2): string {
  return `${num(value, digits)}×`;
}

export function percent(value: number, digits = 1): string {
  return `${value >= 0 ? "+" : ""}${num(value, digits)} %`;
}

export function metMark(met: boolean): string {
  return met ? "met" : "NOT MET";
}

function escapeCell(cell: string): string {
  return cell.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** A markdown table, columns padded so it reads well in a terminal too. */
export function markdownTable(rows: readonly (readonly string[])[]): string {
  const [header, ...body] = rows;
  if (header === undefined) return "";
  const widths = header.map((_, c) =>
    Math.max(3, ...rows.map((row) => escapeCell(row[c] ?? "").length)),
  );
  const line = (row: readonly string[]) =>
    `| ${widths.map((w, c) => escapeCell(row[c] ?? "").padEnd(w)).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...body.map(line)]
    .map((l) => l.trimEnd())
    .join("\n");
}

export function goalsTable(goals: readonly Goal[]): string {
  return markdownTable([
    ["Goal", "Target", "Measured", "Result"],
    ...goals.map((g) => [g.name, g.target, g.measured, metMark(g.met)]),
  ]);
}

export function renderSection(section: Section): string {
  const parts = [`## ${section.title}`, "", section.description, ""];
  for (const table of section.tables) {
    if (table.caption) parts.push(table.caption, "");
    parts.push(markdownTable(table.rows), "");
  }
  if (section.goals.length > 0) parts.push(goalsTable(section.goals), "");
  if (section.notes.length > 0) {
    for (const note of section.notes) parts.push(`- ${note}`);
    parts.push("");
  }
  return parts.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A fresh temporary folder and a function that removes it. */
export function scratchDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `runtrail-bench-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

let gcFunction: (() => void) | undefined;

/**
 * A full garbage collection. Uses `global.gc` when node runs with --expose-gc, else exposes it
 * at run time through V8's flags (the flag applies to new contexts).
 */
export function collectGarbage(): void {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === "function") {
      gcFunction = exposed;
    } else {
      setFlagsFromString("--expose-gc");
      gcFunction = runInNewContext("gc") as () => void;
    }
  }
  gcFunction();
  gcFunction();
}

/** Lets timers and I/O callbacks run, as between two runs of a real pipeline. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Fails the benchmark loudly when a check does not hold. */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`benchmark check failed: ${message}`);
}

/** A small deterministic pseudo-random generator (mulberry32), so data is the same every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` random hex digits from a generator. */
export function hex(random: () => number, count: number): string {
  let out = "";
  while (out.length < count) {
    out += Math.floor(random() * 0x1_0000_0000)
      .toString(16)
      .padStart(8, "0");
  }
  return out.slice(0, count);
}

/**
 * User and system clock ticks (100 a second on Linux) of a process, all its threads, or of one
 * of its threads; undefined where /proc cannot tell.
 */
export function processTicks(pid: number, thread?: number): number | undefined {
  try {
    const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of /proc/PID/stat: 11 and 12 after the name.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
