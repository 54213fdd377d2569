import { setTimeout as sleep } from "node:timers/promises";
import type { Tracer } from "@opentelemetry/api";
import { fingerprint } from "../pipeline/fingerprint.js";
import { type PipelineRun, runPipeline } from "../pipeline/run-pipeline.js";
import { barChartPng } from "./png.js";

/** A small deterministic random source, so every demo tells the same story. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DemoOptions {
  tracer: Tracer;
  /** The store whose folder keeps the runs' artifacts. Default: as `runPipeline`'s. */
  store?: string;
  /** Keep artifacts. Default: as `runPipeline`'s. */
  tracking?: boolean;
  /** How many runs. Default 12. */
  runs?: number;
  /** Multiplies the simulated stage durations; 0 runs as fast as possible. Default 1. */
  pace?: number;
  /** Told about each run as it ends. */
  onRun?: (summary: DemoRunSummary) => void;
  /** Number of the first run (runs are told apart by their number). Default 1. */
  first?: number;
  /** Pause between runs, in milliseconds. Default 0. */
  betweenMs?: number;
  /** Asked before each run and pause; true ends the demo early. */
  shouldStop?: () => boolean;
}

export interface DemoRunSummary {
  runId: string;
  pipeline: string;
  /** The status the run should end with. */
  outcome: "completed" | "failed" | "rejected" | "degraded";
}

class RateLimitError extends Error {
  override readonly name = "RateLimitError";
}

/**
 * The bundled example: a "support-digest" pipeline that fetches tickets, cleans them,
 * summarises them with (simulated) LLM calls and publishes a digest. Every fifth run fails in
 * `summarize` with a rate-limit error, every seventh retries `publish` once (degraded), and every ninth
 * is rejected for an empty inbox.
 */
export async function runDemo(options: DemoOptions): Promise<DemoRunSummary[]> {
  const runs = options.runs ?? 12;
  const pace = options.pace ?? 1;
  const rand = random(20261123);
  const wait = (ms: number) => (pace > 0 ? sleep(ms * pace * (0.5 + rand())) : Promise.resolve());
  const summaries: DemoRunSummary[] = [];
  const first = options.first ?? 1;
  for (let i = first; i < first + runs; i++) {
    if (options.shouldStop?.()) break;
    if (i > first && options.betweenMs) {
      const until = Date.now() + options.betweenMs;
      while (Date.now() < until && !options.shouldStop?.()) {
        await sleep(Math.min(100, until - Date.now()));
      }
      if (options.shouldStop?.()) break;
    }
    const tickets = i % 9 === 0 ? 0 : 40 + Math.floor(rand() * 160);
    let outcome: DemoRunSummary["outcome"] = "completed";
    const config = { model: "gpt-4o-mini", batch: 20 };
    const body = async (run: PipelineRun) => {
      run.metadata("inbox", i % 2 === 0 ? "billing" : "support");
      const fetched = await run.stage("fetch", async (s) => {
        await wait(60);
        s.rows({ out: tickets });
        await s.artifact("tickets", { inbox: i % 2 === 0 ? "billing" : "support", count: tickets });
        return tickets;
      });
      if (fetched === 0) {
        outcome = "rejected";
        run.reject("the inbox was empty: nothing to digest");
        return;
      }
      const cleaned = await run.stage("clean", async (s) => {
        await wait(40);
        const kept = Math.floor(fetched * 0.9);
        s.rows({ in: fetched, out: kept });
        return kept;
      });
      await run.stage("summarize", async (s) => {
        s.rows({ in: cleaned });
        const batches = Math.ceil(cleaned / config.batch);
        for (let b = 0; b < batches; b++) {
          await wait(30);
          if (i % 5 === 0 && b === 1) {
            outcome = "failed";
            const error = new RateLimitError(
              "429 Too Many Requests: quota exceeded for gpt-4o-mini",
            );
            await s.errorArtifact(error, { batch: b, model: config.model });
            throw error;
          }
          s.llmCall({
            model: config.model,
            provider: "openai",
            inputTokens: 700 + Math.floor(rand() * 600),
            outputTokens: 90 + Math.floor(rand() * 80),
            durationMs: 200 + Math.floor(rand() * 400),
          });
        }
        s.rows({ out: batches });
        const perBatch = Array.from({ length: batches }, (_, b) =>
          Math.min(config.batch, cleaned - b * config.batch),
        );
        await s.artifact("digest", digestText(i, cleaned, batches));
        await s.artifact("batches", barChartPng(perBatch), { batches });
      });
      let attempts = 0;
      await run.stage(
        "publish",
        async (s) => {
          attempts += 1;
          await wait(50);
          if (i % 7 === 0 && attempts === 1) {
            outcome = "degraded";
            throw new Error("publish endpoint timed out");
          }
          s.rows({ in: 1, out: 1 });
        },
        { retries: 1 },
      );
    };
    let runId = "";
    try {
      await runPipeline(
        "support-digest",
        {
          tracer: options.tracer,
          ...(options.store ? { store: options.store } : {}),
          ...(options.tracking !== undefined ? { tracking: options.tracking } : {}),
          stages: 4,
          inputFingerprint: fingerprint({ inbox: i % 2, day: i }),
          configHash: fingerprint(config),
        },
        (run) => {
          runId = run.runId;
          return body(run);
        },
      );
    } catch {
      // The failure is what the demo shows; the run row records it.
    }
    const summary = { runId, pipeline: "support-digest", outcome };
    summaries.push(summary);
    options.onRun?.(summary);
  }
  return summaries;
}

function digestText(run: number, tickets: number, batches: number): string {
  return [
    `Support digest #${run}`,
    "",
    `${tickets} tickets in ${batches} batches.`,
    "Most asked about: refunds, password resets, invoice downloads.",
    "",
  ].join("\n");
}
