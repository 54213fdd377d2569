import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  type Goal,
  markdownTable,
  metMark,
  renderSection,
  seconds,
} from "./_report.js";
import { runContention } from "./contention.js";
import { runHotPath } from "./hot-path.js";
import { runIndexes } from "./indexes.js";
import { runMemory } from "./memory.js";
import { runOtlp } from "./otlp.js";
import { runPersistence } from "./persistence.js";
import { runQueries } from "./queries.js";
import { runServer } from "./server.js";

/** Every benchmark, in the order they run. */
const BENCHMARKS: Record<string, (options: BenchOptions) => Promise<BenchResult>> = {
  "hot-path": runHotPath,
  persistence: runPersistence,
  contention: runContention,
  queries: runQueries,
  memory: runMemory,
  indexes: runIndexes,
  server: runServer,
  otlp: runOtlp,
};

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const REPORT = fileURLToPath(new URL("../docs/benchmarks.md", import.meta.url));

const USAGE = `usage: npm run bench -- [--quick] [${Object.keys(BENCHMARKS).join(" | ")} ...]

Runs the named benchmarks (default: all) in sequence, prints the report and writes it to
docs/benchmarks.md. --quick uses smaller sizes, for a smoke run.`;

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    const model = line?.slice(line.indexOf(":") + 1).trim();
    if (model) return model;
  } catch {
    // not Linux: fall back to what node says
  }
  return cpus()[0]?.model ?? "unknown";
}

/** The commit measured, and whether src/ differed from it. */
function codeVersion(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, {
        cwd: ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    const commit = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--", "src").length > 0;
    return `${commit}${dirty ? " + uncommitted changes in src/" : " (src/ as committed)"}`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

/** Busy CPU time of the whole machine and of this process with its children, in clock ticks. */
function cpuTicks(): { machine: number; mine: number } | undefined {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1);
    const [user, nice, system, , , irq, softirq, steal] = (cpu ?? []).map(Number);
    const machine = [user, nice, system, irq, softirq, steal].reduce<number>(
      (sum, v) => sum + (v ?? 0),
      0,
    );
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    // utime, stime, cutime, cstime are fields 14-17 of /proc/self/stat: 11-14 after the name.
    const mine = [11, 12, 13, 14].reduce((sum, i) => sum + (fields[i] ?? 0), 0);
    return Number.isFinite(machine) && Number.isFinite(mine) ? { machine, mine } : undefined;
  } catch {
    return undefined;
  }
}

interface Outcome {
  name: string;
  result?: BenchResult;
  error?: Error;
  ms: number;
}

function summary(outcomes: readonly Outcome[]): string {
  const rows: string[][] = [["Benchmark", "Goal", "Target", "Measured", "Result"]];
  for (const outcome of outcomes) {
    if (outcome.error) {
      rows.push([outcome.name, "(benchmark failed)", "", outcome.error.message, "FAILED"]);
      continue;
    }
    const goals: readonly Goal[] = outcome.result?.section.goals ?? [];
    if (goals.length === 0) rows.push([outcome.name, "(no goal; see below)", "", "", ""]);
    for (const goal of goals) {
      rows.push([outcome.name, goal.name, goal.target, goal.measured, metMark(goal.met)]);
    }
  }
  return markdownTable(rows);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const quick = args.includes("--quick");
  const names = args.filter((a) => !a.startsWith("-"));
  const unknown = names.filter((n) => !(n in BENCHMARKS));
  const flags = args.filter((a) => a.startsWith("-") && a !== "--quick");
  if (unknown.length > 0 || flags.length > 0) {
    console.error(`unknown benchmark or option: ${[...unknown, ...flags].join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const selected = names.length > 0 ? names : Object.keys(BENCHMARKS);

  const startedAt = new Date();
  const loadBefore = loadavg();
  const ticksBefore = cpuTicks();
  const version = codeVersion();
  const options: BenchOptions = { quick, log: (line) => process.stderr.write(`${line}\n`) };
  const outcomes: Outcome[] = [];
  for (const name of selected) {
    const run = BENCHMARKS[name];
    if (run === undefined) continue;
    options.log(`${name}${quick ? " (quick)" : ""} ...`);
    const began = performance.now();
    try {
      const result = await run(options);
      outcomes.push({ name, result, ms: performance.now() - began });
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      options.log(`${name} FAILED: ${failure.stack ?? failure.message}`);
      outcomes.push({ name, error: failure, ms: performance.now() - began });
    }
    options.log(`${name} done in ${seconds(performance.now() - began, 1)}`);
  }

  const cores = cpus().length;
  const loadAfter = loadavg();
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(" / ");
  const ticksAfter = cpuTicks();
  const wallSeconds = (Date.now() - startedAt.getTime()) / 1000;
  // Clock ticks are 100 per second on Linux (USER_HZ).
  const othersCores =
    ticksBefore && ticksAfter
      ? Math.max(
          0,
          ticksAfter.machine - ticksBefore.machine - (ticksAfter.mine - ticksBefore.mine),
        ) /
        100 /
        wallSeconds
      : undefined;
  const busy = othersCores !== undefined && othersCores > 0.2;
  const lines = [
    "# runtrail benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts); every figure below is measured by that run, on this machine.",
    "",
    markdownTable([
      ["Run", "Value"],
      ["Date", startedAt.toISOString()],
      [
        "Mode",
        quick ? "**quick** (smaller sizes; a smoke run, not the reference figures)" : "full",
      ],
      ["Benchmarks", selected.join(", ")],
      ["Code", version],
      ["Node", process.version],
      ["CPU", `${cpuModel()} (${cores} logical cores)`],
      ["Memory", bytes(totalmem())],
      ["OS", `${platform()} ${release()} ${arch()}`],
      [
        "CPU used by other processes during the run",
        othersCores === undefined
          ? "unknown"
          : `${othersCores.toFixed(2)} of ${cores} cores on average`,
      ],
      ["Load average (1/5/15 min) at start / end", `${load(loadBefore)} — ${load(loadAfter)}`],
    ]),
    ...(busy
      ? [
          "",
          `> **Warning:** other processes used ${othersCores?.toFixed(2)} of the ${cores} cores on average ` +
            "during this run; absolute figures are pessimistic and noisier than on an idle machine.",
        ]
      : []),
    "",
    "## Summary",
    "",
    summary(outcomes),
    "",
  ];
  for (const outcome of outcomes) {
    if (outcome.result) {
      lines.push(renderSection(outcome.result.section));
      lines.push(`_${outcome.name} took ${seconds(outcome.ms, 1)} in all._`, "");
    } else {
      lines.push(`## ${outcome.name}: FAILED`, "", "```", outcome.error?.message ?? "", "```", "");
    }
  }
  const report = `${lines.join("\n").trimEnd()}\n`;
  process.stdout.write(`\n${report}`);
  mkdirSync(dirname(REPORT), { recursive: true });
  writeFileSync(REPORT, report);
  options.log(`report written to ${REPORT}`);
  return outcomes.some((o) => o.error) ? 1 : 0;
}

process.exitCode = await main();
