import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { RunTrailSpanProcessor, type RunTrailStats } from "../dist/ingest/span-processor.js";
import { withStore } from "../dist/store/open-store.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  ms,
  num,
  percentiles,
  scratchDir,
  seconds,
} from "./_report.js";

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const CHILD_FLAG = "--contention-child";
const STAGES_PER_RUN = 10;
const TAIL_GOAL_MS = 2_000;

/** What a writer process did, as it reports it on its last line. */
interface WriterReport {
  pipeline: string;
  runs: number;
  /** From the start to the last run ended, and to the end of its provider's shutdown. */
  generateMs: number;
  shutdownMs: number;
  /** Peak resident set size of the process (VmHWM), bytes. */
  peakRss: number;
  stats: RunTrailStats;
}

/**
 * In a child process: runs of 10 stages, as fast as one thread makes them, for `durationMs`,
 * with runtrail's processor at its defaults; then shuts the provider down (every row durable)
 * and reports.
 */
async function writer(db: string, pipeline: string, durationMs: number): Promise<WriterReport> {
  const processor = new RunTrailSpanProcessor({ db });
  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  const tracer = provider.getTracer("contention");
  const began = performance.now();
  let runs = 0;
  while (performance.now() - began < durationMs) {
    for (let r = 0; r < 50; r++) {
      const root = tracer.startSpan(pipeline, {}, ROOT_CONTEXT);
      const inRun = trace.setSpan(ROOT_CONTEXT, root);
      for (let s = 0; s < STAGES_PER_RUN; s++) tracer.startSpan(`stage-${s}`, {}, inRun).end();
      root.end();
      runs += 1;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const generated = performance.now();
  const stats = processor.stats;
  await provider.shutdown();
  const finalStats = processor.stats;
  const status = readFileSync("/proc/self/status", "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return {
    pipeline,
    runs,
    generateMs: generated - began,
    shutdownMs: performance.now() - generated,
    peakRss: Number(hwm ?? Number.NaN) * 1024,
    stats: { ...finalStats, openRuns: stats.openRuns },
  };
}

interface TailCall {
  /** Since the writers started. */
  atMs: number;
  tookMs: number;
  code: number | null;
  stderr: string;
}

function tailOnce(db: string, began: number): Promise<TailCall> {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(process.execPath, [CLI, "tail", "-n", "5", "--json", "--db", db], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("close", (code) =>
      resolve({ atMs: start - began, tookMs: performance.now() - start, code, stderr }),
    );
  });
}

function startWriter(
  db: string,
  pipeline: string,
  durationMs: number,
): { done: Promise<WriterReport>; exited: () => boolean } {
  let exited = false;
  const child = spawn(
    process.execPath,
    ["--import", "tsx", THIS_FILE, CHILD_FLAG, db, pipeline, String(durationMs)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const done = new Promise<WriterReport>((resolve, reject) => {
    child.on("close", (code) => {
      exited = true;
      const line = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || !line.startsWith("{")) {
        reject(new Error(`writer ${pipeline} exited ${code}: ${err.trim() || out.trim()}`));
        return;
      }
      resolve(JSON.parse(line) as WriterReport);
    });
  });
  return { done, exited: () => exited };
}

/** Two pipelines writing flat out into one store, and `runtrail tail` asked all the while. */
export async function runContention(options: BenchOptions): Promise<BenchResult> {
  const durationMs = options.quick ? 4_000 : 15_000;
  const scratch = scratchDir("contention");
  const db = join(scratch.dir, "runs.duckdb");
  try {
    const began = performance.now();
    const writers = ["alpha", "beta"].map((name) => startWriter(db, name, durationMs));
    // Both writers are under way (and the store exists) before the first question.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const tails: TailCall[] = [];
    while (!writers.every((w) => w.exited())) {
      tails.push(await tailOnce(db, began));
      options.log(
        `  tail at ${seconds(tails.at(-1)?.atMs ?? 0, 1)}: ${ms(tails.at(-1)?.tookMs ?? 0)}`,
      );
    }
    const reports = await Promise.all(writers.map((w) => w.done));
    const stored = await withStore(db, (s) =>
      s.all<{ pipeline: string; runs: number; stages: number }>(
        `SELECT r.pipeline, count(*)::DOUBLE AS runs,
           (SELECT count(*) FROM stages s JOIN runs x USING (run_id) WHERE x.pipeline = r.pipeline)::DOUBLE AS stages
         FROM runs r GROUP BY r.pipeline ORDER BY r.pipeline`,
      ),
    );
    const ended = reports.reduce((n, r) => n + r.runs, 0);
    let landed = 0;
    for (const report of reports) {
      const row = stored.find((r) => r.pipeline === report.pipeline);
      // A run counts as landed with all its stages.
      if (row !== undefined && row.stages === row.runs * STAGES_PER_RUN) {
        landed += Math.min(row.runs, report.runs);
      }
    }
    const failed = tails.filter((t) => t.code !== 0 || t.stderr !== "");
    check(failed.length === 0, `tail failed: ${JSON.stringify(failed[0])}`);
    const generating = tails.filter((t) => reports.every((r) => t.atMs + t.tookMs <= r.generateMs));
    const catchingUp = tails.filter((t) => !generating.includes(t));
    const row = (label: string, calls: TailCall[]) => {
      if (calls.length === 0) return [label, "0", "-", "-", "-"];
      const p = percentiles(calls.map((c) => c.tookMs));
      return [label, num(calls.length), ms(p.p50), ms(p.p95), ms(p.max)];
    };
    const slowest = Math.max(...tails.map((t) => t.tookMs));
    return {
      name: "contention",
      section: {
        title: "Two pipelines outrunning the store, and tail meanwhile",
        description:
          `Two processes each make runs of ${STAGES_PER_RUN} stages as fast as one thread can (plain SDK spans through a ` +
          `BasicTracerProvider with RunTrailSpanProcessor at its defaults, no exporter) for ${seconds(durationMs, 0)}, into one store, ` +
          "then shut their providers down, which writes every row still pending. Together they make more rows than the store " +
          "takes, so rows pile up behind the writes. From 2 s after they start until both have exited, `runtrail tail -n 5 --json` " +
          "runs again and again (a new process each time, as a user would), each timed from spawn to exit. Afterwards every run " +
          "each writer ended is counted in the store.",
        tables: [
          {
            rows: [
              [
                "Writer",
                "Runs ended",
                "Runs/s made",
                "Shutdown (writing the rest)",
                "Writes",
                "Failed writes / spooled / dropped rows",
                "Peak RSS",
              ],
              ...reports.map((r) => [
                r.pipeline,
                num(r.runs),
                num(r.runs / (r.generateMs / 1000)),
                seconds(r.shutdownMs),
                num(r.stats.flushes),
                `${num(r.stats.failedFlushes)} / ${num(r.stats.spooledSegments)} / ${num(r.stats.droppedRows)}`,
                bytes(r.peakRss),
              ]),
            ],
          },
          {
            caption: "`runtrail tail` (wall time of the command):",
            rows: [
              ["When", "Calls", "p50", "p95", "max"],
              row("while both pipelines make runs", generating),
              row("while they write the rows left", catchingUp),
              row("all", tails),
            ],
          },
        ],
        goals: [
          {
            name: "tail answers within 2 s while two pipelines outrun the store",
            target: `every call ≤ ${seconds(TAIL_GOAL_MS, 0)}`,
            measured: `max ${ms(slowest)} of ${tails.length} calls`,
            met: slowest <= TAIL_GOAL_MS,
          },
          {
            name: "every run of both pipelines lands, with its stages",
            target: "all",
            measured: `${num(landed)} of ${num(ended)}`,
            met: landed === ended,
          },
        ],
        notes: [
          "The pipelines here do nothing but make spans; a real one spends its time on its stages' work and makes far fewer rows. This is the store's worst case: the rows pile up in the writers' memory while they wait for their turn, and the shutdown writes what is left.",
          "A command waiting for the store goes first: the writer holding it lets go within 250 ms of the end of its write (checkpointing and closing the file), and writers waiting let the command in. With a `tail` every half second, as here, that costs the writers much of their time: each turn closes and reopens the file. Writes are at most `maxQueuedRows` (50,000) stage rows each, so no one write holds the store long.",
        ],
      },
    };
  } finally {
    scratch.remove();
  }
}

if (
  process.argv.includes(CHILD_FLAG) &&
  import.meta.url === pathToFileURL(process.argv[1] ?? "").href
) {
  const [db, pipeline, duration] = process.argv.slice(process.argv.indexOf(CHILD_FLAG) + 1);
  writer(db ?? "", pipeline ?? "writer", Number(duration)).then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
