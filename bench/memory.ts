import { spawn } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ROOT_CONTEXT, type Span, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { RunTrailSpanProcessor, type RunTrailStats } from "../dist/ingest/span-processor.js";
import { withStore } from "../dist/store/open-store.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  ms,
  num,
  scratchDir,
} from "./_report.js";

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CHILD_FLAG = "--memory-child";
const WARMUP_RUNS = 200;

interface Snapshot {
  rss: number;
  heapUsed: number;
  external: number;
}

interface Phase {
  before: Snapshot;
  open: Snapshot;
  ended: Snapshot;
  statsOpen: RunTrailStats | null;
  statsEnded: RunTrailStats | null;
  flushOpenMs: number;
  flushEndedMs: number;
}

interface Figures {
  runs: number;
  without: Phase;
  with: Phase;
  stored: { runningWhileOpen: number; completedAfter: number; stages: number };
}

function snapshot(): Snapshot {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run the memory benchmark with node --expose-gc");
  gc();
  gc();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external };
}

async function countRuns(db: string, status: string): Promise<{ runs: number; stages: number }> {
  const row = await withStore(db, (s) =>
    s.one<{ runs: number; stages: number }>(
      `SELECT (SELECT count(*) FROM runs WHERE pipeline = 'memory-bench' AND status = $1)::DOUBLE AS runs,
         (SELECT count(*) FROM stages JOIN runs USING (run_id) WHERE runs.pipeline = 'memory-bench')::DOUBLE AS stages`,
      [status],
    ),
  );
  return row ?? { runs: 0, stages: 0 };
}

/** Opens `n` runs, each with one open stage, holds them, then ends them all. */
async function phase(
  n: number,
  db: string | undefined,
  stored: Figures["stored"] | undefined,
): Promise<Phase> {
  const processor = db === undefined ? undefined : new RunTrailSpanProcessor({ db });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": "bench-memory" }),
    spanProcessors: processor ? [processor] : [],
  });
  const tracer = provider.getTracer("runtrail-bench");
  const open = (count: number, pipeline: string, roots: Span[], stages: Span[]) => {
    for (let i = 0; i < count; i++) {
      const root = tracer.startSpan(
        pipeline,
        { attributes: { "runtrail.pipeline.name": pipeline } },
        ROOT_CONTEXT,
      );
      const stage = tracer.startSpan(
        "extract",
        { attributes: { "runtrail.rows.in": 1000 + i } },
        trace.setSpan(ROOT_CONTEXT, root),
      );
      roots[i] = root;
      stages[i] = stage;
    }
  };
  const endAll = (roots: Span[], stages: Span[]) => {
    for (let i = 0; i < roots.length; i++) {
      stages[i]?.end();
      roots[i]?.end();
    }
  };

  // Warm-up: the code paths compiled, DuckDB loaded, the store created.
  const warmRoots = new Array<Span>(WARMUP_RUNS);
  const warmStages = new Array<Span>(WARMUP_RUNS);
  open(WARMUP_RUNS, "warm-up", warmRoots, warmStages);
  await processor?.forceFlush();
  endAll(warmRoots, warmStages);
  await processor?.forceFlush();
  warmRoots.length = 0;
  warmStages.length = 0;

  let roots = new Array<Span>(n);
  let stages = new Array<Span>(n);
  const before = snapshot();
  open(n, "memory-bench", roots, stages);
  let began = performance.now();
  await processor?.forceFlush();
  const flushOpenMs = performance.now() - began;
  const openSnapshot = snapshot();
  const statsOpen = processor?.stats ?? null;
  if (processor && stored) {
    stored.runningWhileOpen = (await countRuns(processor.db, "running")).runs;
  }

  endAll(roots, stages);
  began = performance.now();
  await processor?.forceFlush();
  const flushEndedMs = performance.now() - began;
  roots = [];
  stages = [];
  const ended = snapshot();
  const statsEnded = processor?.stats ?? null;
  if (processor && stored) {
    const after = await countRuns(processor.db, "completed");
    stored.completedAfter = after.runs;
    stored.stages = after.stages;
  }
  await provider.shutdown();
  return {
    before,
    open: openSnapshot,
    ended,
    statsOpen,
    statsEnded,
    flushOpenMs,
    flushEndedMs,
  };
}

/** Runs in a child node with --expose-gc; prints its figures as JSON on stdout. */
async function measure(quick: boolean): Promise<Figures> {
  const n = quick ? 2_000 : 10_000;
  const scratch = scratchDir("memory");
  try {
    const without = await phase(n, undefined, undefined);
    const stored = { runningWhileOpen: 0, completedAfter: 0, stages: 0 };
    const withRt = await phase(n, join(scratch.dir, "runs.duckdb"), stored);
    return { runs: n, without, with: withRt, stored };
  } finally {
    scratch.remove();
  }
}

function runChild(quick: boolean, log: (line: string) => void): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", THIS_FILE, CHILD_FLAG, ...(quick ? ["--quick"] : [])],
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
    child.on("error", reject);
    child.on("close", (code) => {
      if (err.trim().length > 0) log(err.trimEnd());
      const last = out.trim().split("\n").pop() ?? "";
      if (code !== 0) {
        reject(new Error(`the memory benchmark child exited with ${code}: ${err}`));
        return;
      }
      try {
        resolve(JSON.parse(last) as Figures);
      } catch {
        reject(new Error(`the memory benchmark child printed no figures: ${out}`));
      }
    });
  });
}

export interface MemoryResult extends BenchResult {
  figures: Figures;
  heapPerOpenRun: number;
  rssPerOpenRun: number;
  runtrailHeapPerOpenRun: number;
}

/** Memory held while many runs are open at once, and after they end. */
export async function runMemory(options: BenchOptions): Promise<MemoryResult> {
  const figures = await runChild(options.quick, options.log);
  const n = figures.runs;
  const w = figures.with;
  const wo = figures.without;
  const openStats = w.statsOpen;
  const endedStats = w.statsEnded;
  check(openStats !== null && endedStats !== null, "the processor's stats are missing");
  check(
    figures.stored.runningWhileOpen === n,
    `the store should hold ${n} running runs while they are open, it holds ${figures.stored.runningWhileOpen}`,
  );
  check(
    figures.stored.completedAfter === n && figures.stored.stages === n,
    `the store should hold ${n} completed runs and ${n} stages after they end: ${JSON.stringify(figures.stored)}`,
  );
  check(
    openStats.openRuns === n && openStats.trackedSpans === 2 * n,
    `while open the processor should follow ${n} runs and ${2 * n} spans: ${JSON.stringify(openStats)}`,
  );

  const delta = (a: Snapshot, b: Snapshot, key: keyof Snapshot) => b[key] - a[key];
  const heapWith = delta(w.before, w.open, "heapUsed");
  const heapWithout = delta(wo.before, wo.open, "heapUsed");
  const rssWith = delta(w.before, w.open, "rss");
  const rssWithout = delta(wo.before, wo.open, "rss");
  const row = (label: string, key: keyof Snapshot, at: "open" | "ended") => [
    label,
    bytes(delta(wo.before, wo[at], key)),
    bytes(delta(w.before, w[at], key)),
    bytes(delta(w.before, w[at], key) - delta(wo.before, wo[at], key)),
  ];

  return {
    name: "memory",
    figures,
    heapPerOpenRun: heapWith / n,
    rssPerOpenRun: rssWith / n,
    runtrailHeapPerOpenRun: (heapWith - heapWithout) / n,
    section: {
      title: `4. Memory with ${num(n)} runs open at once`,
      description:
        `In a child \`node --expose-gc\`: a NodeTracerProvider starts ${num(n)} root spans, each with one ` +
        "open child stage span, and the benchmark holds them; then `forceFlush()`, a full GC and " +
        "`process.memoryUsage()`. Then every span ends, the processor flushes, the references are dropped, " +
        "GC, measure again. Done once without runtrail (the SDK spans alone) and once with " +
        "RunTrailSpanProcessor (default flush interval), each after a 200-run warm-up; deltas are from just " +
        "before the spans start.",
      tables: [
        {
          rows: [
            ["Measure", "Without runtrail", "With runtrail", "runtrail's share"],
            row("Δ heapUsed, all open", "heapUsed", "open"),
            row("Δ rss, all open", "rss", "open"),
            [
              "Δ heapUsed per open run",
              bytes(heapWithout / n),
              bytes(heapWith / n),
              bytes((heapWith - heapWithout) / n),
            ],
            [
              "Δ rss per open run",
              bytes(rssWithout / n),
              bytes(rssWith / n),
              bytes((rssWith - rssWithout) / n),
            ],
            row("Δ heapUsed after all ended (refs dropped)", "heapUsed", "ended"),
            row("Δ rss after all ended (refs dropped)", "rss", "ended"),
            ["heapUsed before", bytes(wo.before.heapUsed), bytes(w.before.heapUsed), ""],
            ["rss before", bytes(wo.before.rss), bytes(w.before.rss), ""],
          ],
        },
        {
          rows: [
            ["runtrail", "While open", "After all ended"],
            ["stats.openRuns", num(openStats.openRuns), num(endedStats.openRuns)],
            ["stats.trackedSpans", num(openStats.trackedSpans), num(endedStats.trackedSpans)],
            [
              "stats.runRowsWritten / stageRowsWritten",
              `${num(openStats.runRowsWritten)} / ${num(openStats.stageRowsWritten)}`,
              `${num(endedStats.runRowsWritten)} / ${num(endedStats.stageRowsWritten)}`,
            ],
            ["forceFlush() time", ms(w.flushOpenMs), ms(w.flushEndedMs)],
            [
              "Store (pipeline memory-bench)",
              `${num(figures.stored.runningWhileOpen)} running`,
              `${num(figures.stored.completedAfter)} completed, ${num(figures.stored.stages)} stages`,
            ],
          ],
        },
      ],
      goals: [],
      notes: [
        "No goal was set for memory; the figures are reported as measured.",
        "Row counts include the 200 warm-up runs (pipeline warm-up) in the stats; the store checks count only the measured runs.",
        "heapUsed is the main thread's V8 heap, where open runs are kept: the better measure of what an open " +
          "run costs. rss also holds native memory (DuckDB, opened and closed for each flush, whose allocator " +
          "keeps memory after closing) and the heap of any worker thread the writer uses.",
      ],
    },
  };
}

if (
  process.argv.includes(CHILD_FLAG) &&
  import.meta.url === pathToFileURL(process.argv[1] ?? "").href
) {
  measure(process.argv.includes("--quick")).then(
    (figures) => {
      process.stdout.write(`${JSON.stringify(figures)}\n`);
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
