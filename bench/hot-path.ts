import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type Attributes, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import type { ExportResult } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { RunTrailSpanProcessor } from "../dist/ingest/span-processor.js";
import { withStore } from "../dist/store/open-store.js";
import {
  type BenchOptions,
  type BenchResult,
  check,
  collectGarbage,
  median,
  ms,
  num,
  percent,
  ratio,
  scratchDir,
  yieldToEventLoop,
} from "./_report.js";

const STAGES_PER_RUN = 10;
const LLM_SPANS_PER_STAGE = 5;
const SPANS_PER_RUN = 1 + STAGES_PER_RUN * (1 + LLM_SPANS_PER_STAGE);
const OVERHEAD_GOAL_PERCENT = 15;

const STAGE_NAMES = [
  "extract",
  "validate",
  "dedupe",
  "classify",
  "summarize",
  "embed",
  "enrich",
  "score",
  "aggregate",
  "load",
];
const MODELS = ["gpt-4o-mini", "claude-3-5-haiku", "llama-3.1-8b"];

/** An exporter that takes every batch and does nothing with it. */
class NoopExporter implements SpanExporter {
  exported = 0;

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.exported += spans.length;
    resultCallback({ code: 0 });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Without runtrail; with it as configured by default; with it but its writes deferred past the
 * loop (flush interval of an hour), which isolates the cost of the span hooks themselves.
 */
export type Variant = "without" | "with" | "deferred";

const VARIANT_LABEL: Record<Variant, string> = {
  without: "without ",
  with: "with    ",
  deferred: "deferred",
};

interface Round {
  variant: Variant;
  /** The loop that creates and ends every span, with a yield between runs. */
  loopMs: number;
  /** The final `forceFlush()` of runtrail's processor: the rows still pending made durable. */
  flushMs: number;
  spans: number;
  exported: number;
  /** Writes runtrail did during the loop and the final flush. */
  flushes: number;
}

export async function oneRound(runs: number, variant: Variant): Promise<Round> {
  const scratch = scratchDir("hot-path");
  const db = join(scratch.dir, "runs.duckdb");
  try {
    const exporter = new NoopExporter();
    const processor =
      variant === "without"
        ? undefined
        : new RunTrailSpanProcessor({
            db,
            ...(variant === "deferred" ? { flushIntervalMs: 3_600_000 } : {}),
          });
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "bench-pipeline" }),
      spanProcessors: [new BatchSpanProcessor(exporter), ...(processor ? [processor] : [])],
    });
    const tracer = provider.getTracer("runtrail-bench");
    collectGarbage();

    let spans = 0;
    const began = performance.now();
    for (let r = 0; r < runs; r++) {
      const root = tracer.startSpan(
        "nightly-enrichment",
        {
          attributes: {
            "runtrail.pipeline.name": "nightly-enrichment",
            "runtrail.run.stages_expected": STAGES_PER_RUN,
          },
        },
        ROOT_CONTEXT,
      );
      const rootContext = trace.setSpan(ROOT_CONTEXT, root);
      spans += 1;
      for (let s = 0; s < STAGES_PER_RUN; s++) {
        const stageAttributes: Attributes = {
          "runtrail.rows.in": 1000 + ((r * 7 + s) % 100),
          "runtrail.rows.out": 990 + ((r * 3 + s) % 10),
        };
        const stage = tracer.startSpan(
          STAGE_NAMES[s] as string,
          { attributes: stageAttributes },
          rootContext,
        );
        const stageContext = trace.setSpan(ROOT_CONTEXT, stage);
        spans += 1;
        for (let l = 0; l < LLM_SPANS_PER_STAGE; l++) {
          const model = MODELS[(r + l) % MODELS.length] as string;
          const llm = tracer.startSpan(
            `chat ${model}`,
            {
              attributes: {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 200 + ((r + s + l) % 300),
                "gen_ai.usage.output_tokens": 50 + ((r * s + l) % 100),
              },
            },
            stageContext,
          );
          llm.end();
          spans += 1;
        }
        stage.end();
      }
      root.end();
      await yieldToEventLoop();
    }
    const loopMs = performance.now() - began;

    let flushMs = 0;
    if (processor) {
      const flushBegan = performance.now();
      await processor.forceFlush();
      flushMs = performance.now() - flushBegan;
    }
    const flushes = processor?.stats.flushes ?? 0;
    const stats = processor?.stats;
    await provider.shutdown();

    if (processor && stats) {
      check(
        stats.droppedRuns === 0 && stats.droppedSpans === 0 && stats.hookErrors === 0,
        `runtrail dropped runs or spans or its hooks failed: ${JSON.stringify(stats)}`,
      );
      const stored = await withStore(db, (s) =>
        s.one<{ runs: number; completed: number; llm: number; stages: number }>(
          `SELECT (SELECT count(*) FROM runs)::DOUBLE AS runs,
             (SELECT count(*) FROM runs WHERE status = 'completed')::DOUBLE AS completed,
             (SELECT coalesce(sum(llm_calls), 0) FROM runs)::DOUBLE AS llm,
             (SELECT count(*) FROM stages)::DOUBLE AS stages`,
        ),
      );
      check(
        stored?.runs === runs && stored.stages === runs * STAGES_PER_RUN,
        `the store should hold ${runs} runs and ${runs * STAGES_PER_RUN} stages, it holds ${stored?.runs} runs and ${stored?.stages} stages`,
      );
      check(
        stored.completed === runs && stored.llm === runs * STAGES_PER_RUN * LLM_SPANS_PER_STAGE,
        `every run should be completed with ${STAGES_PER_RUN * LLM_SPANS_PER_STAGE} LLM calls: ${JSON.stringify(stored)}`,
      );
    }
    return { variant, loopMs, flushMs, spans, exported: exporter.exported, flushes };
  } finally {
    scratch.remove();
  }
}

export interface HotPathResult extends BenchResult {
  runs: number;
  spansPerRun: number;
  rounds: Round[];
  medianWithoutMs: number;
  medianWithMs: number;
  medianDeferredMs: number;
  medianFlushMs: number;
  ratio: number;
  overheadPercent: number;
  spansPerSecondWithout: number;
  spansPerSecondWith: number;
}

/** The cost runtrail's span hooks add to a pipeline that already exports its spans. */
export async function runHotPath(options: BenchOptions): Promise<HotPathResult> {
  const runs = options.quick ? 200 : 2_000;
  const warmups = options.quick ? 1 : 2;
  const measured = options.quick ? 5 : 7;
  const rounds: Round[] = [];

  const describe = (round: Round) =>
    `${ms(round.loopMs)}${round.variant === "without" ? "" : `, flush ${ms(round.flushMs)}, ${round.flushes} writes`}`;
  const variants: Variant[] = ["without", "with", "deferred"];
  for (let i = 0; i < warmups; i++) {
    for (const variant of variants) {
      const round = await oneRound(runs, variant);
      options.log(`  warm-up ${VARIANT_LABEL[variant]}: ${describe(round)}`);
    }
  }
  for (let i = 0; i < measured; i++) {
    // ABC CBA order, so that no variant always runs right after another.
    const order = i % 2 === 0 ? variants : [...variants].reverse();
    for (const variant of order) {
      const round = await oneRound(runs, variant);
      rounds.push(round);
      options.log(`  round ${i + 1} ${VARIANT_LABEL[variant]}: ${describe(round)}`);
    }
  }

  const without = rounds.filter((r) => r.variant === "without");
  const withRt = rounds.filter((r) => r.variant === "with");
  const deferred = rounds.filter((r) => r.variant === "deferred");
  const spans = runs * SPANS_PER_RUN;
  for (const round of rounds) {
    check(round.spans === spans, `a round created ${round.spans} spans, not ${spans}`);
  }
  const medianWithoutMs = median(without.map((r) => r.loopMs));
  const medianWithMs = median(withRt.map((r) => r.loopMs));
  const medianDeferredMs = median(deferred.map((r) => r.loopMs));
  const medianFlushMs = median(withRt.map((r) => r.flushMs));
  const medianDeferredFlushMs = median(deferred.map((r) => r.flushMs));
  const ratioValue = medianWithMs / medianWithoutMs;
  const overheadPercent = (ratioValue - 1) * 100;
  const deferredRatio = medianDeferredMs / medianWithoutMs;
  const spansPerSecondWithout = spans / (medianWithoutMs / 1000);
  const spansPerSecondWith = spans / (medianWithMs / 1000);
  const perSpanNs = (loopMs: number) => `${num(((loopMs - medianWithoutMs) / spans) * 1e6)} ns`;
  const exportedMin = Math.min(...rounds.map((r) => r.exported));
  const medianOf = (list: Round[], pick: (r: Round) => number) => median(list.map(pick));

  return {
    name: "hot-path",
    runs,
    spansPerRun: SPANS_PER_RUN,
    rounds,
    medianWithoutMs,
    medianWithMs,
    medianDeferredMs,
    medianFlushMs,
    ratio: ratioValue,
    overheadPercent,
    spansPerSecondWithout,
    spansPerSecondWith,
    section: {
      title: "1. Hot path: span processing overhead",
      description:
        `${num(runs)} runs × ${STAGES_PER_RUN} stages × ${LLM_SPANS_PER_STAGE} LLM spans (${num(spans)} spans per round) ` +
        "through a NodeTracerProvider with a BatchSpanProcessor and a no-op exporter, without and with " +
        "RunTrailSpanProcessor (fresh provider and store each round). The loop yields to the event loop " +
        "(setImmediate) after every run, so runtrail's 250 ms flush timer and the batch processor run as " +
        `in a real pipeline, and their work counts. ${warmups} warm-up round(s) per variant, then ${measured} ` +
        "rounds each, in alternating order; medians reported. The final forceFlush() of runtrail is timed " +
        "apart. A third, informative variant defers runtrail's writes past the loop (flushIntervalMs of an " +
        "hour): its loop time is the cost of the span hooks alone, and its final flush writes every row at once.",
      tables: [
        {
          rows: [
            ["Measure", "Without runtrail", "With runtrail", "With, writes deferred (informative)"],
            ["Loop time (median)", ms(medianWithoutMs), ms(medianWithMs), ms(medianDeferredMs)],
            [
              "Spans/s (median)",
              num(spansPerSecondWithout),
              num(spansPerSecondWith),
              num(spans / (medianDeferredMs / 1000)),
            ],
            ["Final forceFlush() (median)", "-", ms(medianFlushMs), ms(medianDeferredFlushMs)],
            [
              "Loop + final flush (median)",
              ms(medianWithoutMs),
              ms(medianOf(withRt, (r) => r.loopMs + r.flushMs)),
              ms(medianOf(deferred, (r) => r.loopMs + r.flushMs)),
            ],
            [
              "Writes to the store per round, final flush included (median)",
              "-",
              num(medianOf(withRt, (r) => r.flushes)),
              num(medianOf(deferred, (r) => r.flushes)),
            ],
            ["Ratio to without", "1", ratio(ratioValue, 3), ratio(deferredRatio, 3)],
            ["Overhead", "", percent(overheadPercent), percent((deferredRatio - 1) * 100)],
            ["Added time per span", "", perSpanNs(medianWithMs), perSpanNs(medianDeferredMs)],
          ],
        },
        {
          caption: "Every measured round (loop time; final flush in parentheses):",
          rows: [
            ["Round", "Without", "With", "With, writes deferred"],
            ...Array.from({ length: measured }, (_, i) => {
              const cell = (r: Round | undefined) =>
                r === undefined ? "-" : `${ms(r.loopMs)} (${ms(r.flushMs)})`;
              return [
                String(i + 1),
                ms(without[i]?.loopMs ?? Number.NaN),
                cell(withRt[i]),
                cell(deferred[i]),
              ];
            }),
          ],
        },
      ],
      goals: [
        {
          name: "Hot-path overhead (loop time with / without − 1)",
          target: `≤ ${OVERHEAD_GOAL_PERCENT} %`,
          measured: percent(overheadPercent),
          met: overheadPercent <= OVERHEAD_GOAL_PERCENT,
        },
      ],
      notes: [
        `After every round with runtrail (both variants) the store was checked: ${num(runs)} completed runs, ` +
          `${num(runs * STAGES_PER_RUN)} stages and ${num(runs * STAGES_PER_RUN * LLM_SPANS_PER_STAGE)} LLM calls counted.`,
        `The no-op exporter received at least ${num(exportedMin)} of ${num(spans)} spans per round ` +
          "(the batch processor drops spans only when its queue is full).",
        "The loop time includes runtrail's periodic writes that ran while the loop yielded: whichever " +
          "thread stages the rows and runs DuckDB, on this 2-core machine that work competes with the pipeline for CPU.",
      ],
    },
  };
}
