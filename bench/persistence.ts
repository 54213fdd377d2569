import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunRow, StageRow } from "../dist/record/rows.js";
import { formatUuid } from "../dist/record/run-id.js";
import type { RunStatus, StageStatus } from "../dist/record/run-status.js";
import { recycleColumns } from "../dist/store/column-batch.js";
import { openStore, withStore } from "../dist/store/open-store.js";
import type { StoreSession } from "../dist/store/store-session.js";
import { storeThread } from "../dist/store/store-thread.js";
import { columnBatchOf, partsOf } from "../dist/store/write-rows.js";
import {
  type BenchOptions,
  type BenchResult,
  check,
  hex,
  median,
  ms,
  num,
  ratio,
  rng,
  scratchDir,
  seconds,
} from "./_report.js";

const STAGES_PER_RUN = 10;
const RUNS_PER_SECOND_GOAL = 20_000;
const PER_ROW_RATIO_GOAL = 50;
/** The writer's default flush interval: how long before its first write it starts the thread. */
const THREAD_HEAD_START_MS = 250;

const PIPELINES = [
  "ingest-orders",
  "enrich-customers",
  "nightly-summaries",
  "classify-tickets",
  "embed-documents",
  "score-leads",
  "sync-inventory",
  "translate-catalog",
  "dedupe-contacts",
  "invoice-extraction",
];
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

export interface Dataset {
  runs: RunRow[];
  /** Stages of run i are stages[10 i .. 10 i + 9]. */
  stages: StageRow[];
}

/** `n` completed (or failed, or degraded) runs of 10 stages, the same for every approach. */
export function makeDataset(n: number, seed = 42): Dataset {
  const random = rng(seed);
  const runs: RunRow[] = [];
  const stages: StageRow[] = [];
  const host = hostname();
  const pid = process.pid;
  const ownerStartedAt = Date.now() * 1000 - 3_600_000_000;
  // Runs start 20 ms apart and end before now.
  const firstStart = Date.now() * 1000 - n * 20_000 - 600_000_000;
  for (let i = 0; i < n; i++) {
    const traceId = hex(random, 32);
    const runId = formatUuid(traceId);
    const rootSpanId = hex(random, 16);
    const startedAt = firstStart + i * 20_000;
    const roll = random();
    const status: RunStatus = roll < 0.03 ? "failed" : roll < 0.05 ? "degraded" : "completed";
    // A failed run fails in its last stage; a degraded one had a stage fail and went on.
    const failedSeq =
      status === "failed"
        ? STAGES_PER_RUN - 1
        : status === "degraded"
          ? Math.floor(random() * STAGES_PER_RUN)
          : -1;
    const runStages: StageRow[] = [];
    let at = startedAt + 1_000;
    let rowsIn: number | null = null;
    let rowsOut: number | null = null;
    const totals = { llm: 0, input: 0, output: 0 };
    for (let seq = 0; seq < STAGES_PER_RUN; seq++) {
      const name = STAGE_NAMES[seq] as string;
      const duration = 50_000 + Math.floor(random() * 2_000_000);
      const llmCalls = seq >= 3 && seq <= 7 ? 1 + Math.floor(random() * 5) : 0;
      const input = llmCalls * (200 + Math.floor(random() * 800));
      const output = llmCalls * (50 + Math.floor(random() * 300));
      const stageFailed = seq === failedSeq;
      const stageStatus: StageStatus = stageFailed ? "failed" : "completed";
      const stageRowsIn = 1_000 + Math.floor(random() * 9_000);
      const stageRowsOut = stageFailed ? 0 : stageRowsIn - Math.floor(random() * 50);
      rowsIn ??= stageRowsIn;
      rowsOut = stageRowsOut;
      totals.llm += llmCalls;
      totals.input += input;
      totals.output += output;
      runStages.push({
        run_id: runId,
        span_id: hex(random, 16),
        parent_span_id: rootSpanId,
        name,
        seq,
        attempt: 1,
        status: stageStatus,
        error_type: stageFailed ? "ValueError" : null,
        error_message: stageFailed ? `row ${stageRowsIn}: missing field "customer_id"` : null,
        error_stack: stageFailed
          ? `ValueError: row ${stageRowsIn}: missing field "customer_id"\n    at parse (stages/${name}.ts:42:11)`
          : null,
        started_at: at,
        finished_at: at + duration,
        duration_seconds: duration / 1e6,
        rows_in: stageRowsIn,
        rows_out: stageRowsOut,
        llm_calls: llmCalls,
        tokens: input + output,
        input_tokens: input,
        output_tokens: output,
        metadata: seq === 0 ? { source: "s3", bucket: "orders-raw" } : null,
        snapshot: null,
        cache_key: null,
        cached_from: null,
      });
      at += duration + 500;
    }
    const failedStage = runStages.find((s) => s.status === "failed");
    const finishedAt = at;
    const error = failedStage ? `${failedStage.error_type}: ${failedStage.error_message}` : null;
    runs.push({
      run_id: runId,
      trace_id: traceId,
      span_id: rootSpanId,
      tenant_id: i % 4 === 0 ? "acme" : null,
      pipeline: PIPELINES[i % PIPELINES.length] as string,
      service_name: "bench-service",
      status,
      status_reason: null,
      error,
      error_type: failedStage?.error_type ?? null,
      error_message: failedStage?.error_message ?? null,
      error_stack: failedStage?.error_stack ?? null,
      failed_stage: failedStage?.name ?? null,
      input_fingerprint: `sha256:${hex(random, 16)}`,
      code_ref: "git:4f1c2a9",
      config_hash: "cfg:9d2e",
      started_at: startedAt,
      finished_at: finishedAt,
      duration_seconds: (finishedAt - startedAt) / 1e6,
      deadline_at: null,
      rows_in: rowsIn,
      rows_out: rowsOut,
      llm_calls: totals.llm,
      tokens: totals.input + totals.output,
      input_tokens: totals.input,
      output_tokens: totals.output,
      stages_expected: STAGES_PER_RUN,
      stages_completed: runStages.filter((s) => s.status === "completed").length,
      stages_executed: runStages.map((s) => s.name),
      stages_failed: runStages.filter((s) => s.status === "failed").map((s) => s.name),
      retry_count: 0,
      current_stage: null,
      metadata: null,
      owner_host: host,
      owner_pid: pid,
      owner_started_at: ownerStartedAt,
      last_heartbeat: finishedAt,
      resumed_from: null,
      cached_from: null,
      entry_point: null,
      input_snapshot: null,
      artifacts: null,
    });
    stages.push(...runStages);
  }
  return { runs, stages };
}

async function storedCounts(path: string): Promise<{ runs: number; stages: number }> {
  const row = await withStore(path, (s) =>
    s.one<{ runs: number; stages: number }>(
      "SELECT (SELECT count(*) FROM runs)::DOUBLE AS runs, (SELECT count(*) FROM stages)::DOUBLE AS stages",
    ),
  );
  return row ?? { runs: 0, stages: 0 };
}

/**
 * (a) runtrail: the writer's own path. Rows become columns on this thread (as the writer fills
 * them when stages end) while the store thread writes the batch before, one write at a time as
 * the writer does: its `BatchWriter` writes each batch in a transaction of its own (durable once
 * committed), keeping the store open across batches that follow closely, then checkpointing and
 * closing it. Everything is timed, up to the last close.
 */
async function runtrailBatches(data: Dataset, n: number, batch: number, path: string) {
  const batchMs: number[] = [];
  // Started a flush interval before the clock, as a writer starts it when its first run starts.
  if (!storeThread.started) {
    storeThread.start();
    await sleep(THREAD_HEAD_START_MS);
  }
  const began = performance.now();
  let writing: Promise<void> = Promise.resolve();
  for (let offset = 0; offset < n; offset += batch) {
    const end = Math.min(n, offset + batch);
    const runs = data.runs.slice(offset, end);
    const stages = data.stages.slice(offset * STAGES_PER_RUN, end * STAGES_PER_RUN);
    // Each run is new to the store, as for a run that starts and ends within a flush interval.
    const columns = columnBatchOf({ runs: [], newRuns: runs, stages });
    await writing;
    const t = performance.now();
    writing = storeThread.write(path, columns, 10_000).then((outcome) => {
      check(outcome.written, `a runtrail batch was not written: ${outcome.error?.message ?? "?"}`);
      batchMs.push(performance.now() - t);
      // Written, its buffers serve the rows of a later batch, as in the writer.
      for (const part of partsOf(columns)) recycleColumns(part);
    });
  }
  await writing;
  await storeThread.close(path);
  const totalMs = performance.now() - began;
  return { totalMs, batchMs };
}

const PER_ROW_INSERT_RUN = `INSERT INTO runs (run_id, trace_id, span_id, tenant_id, pipeline,
  service_name, status, input_fingerprint, code_ref, config_hash, started_at, stages_expected,
  owner_host, owner_pid, owner_started_at, last_heartbeat)
VALUES ($1::UUID, $2, $3, $4, $5, $6, 'running', $7, $8, $9, make_timestamptz($10::BIGINT), $11,
  $12, $13, make_timestamptz($14::BIGINT), make_timestamptz($15::BIGINT))`;

const PER_ROW_INSERT_STAGE = `INSERT INTO stages (run_id, span_id, parent_span_id, name, seq,
  attempt, status, error_type, error_message, error_stack, started_at, finished_at,
  duration_seconds, rows_in, rows_out, llm_calls, tokens, input_tokens, output_tokens, metadata)
VALUES ($1::UUID, $2, $3, $4, $5, $6, $7, $8, $9, $10, make_timestamptz($11::BIGINT),
  make_timestamptz($12::BIGINT), $13, $14, $15, $16, $17, $18, $19, $20::JSON)`;

const PER_ROW_UPDATE_RUN = `UPDATE runs SET status = $2, status_reason = $3, error = $4,
  error_type = $5, error_message = $6, error_stack = $7, failed_stage = $8,
  finished_at = make_timestamptz($9::BIGINT), duration_seconds = $10, rows_in = $11,
  rows_out = $12, llm_calls = $13, tokens = $14, input_tokens = $15, output_tokens = $16,
  stages_completed = $17, stages_executed = from_json($18, '["VARCHAR"]'),
  stages_failed = from_json($19, '["VARCHAR"]'), retry_count = $20, current_stage = NULL,
  last_heartbeat = make_timestamptz($21::BIGINT)
WHERE run_id = $1::UUID`;

/**
 * (b) Seed 000's approach: an INSERT when a run starts, one per stage, an UPDATE when it ends,
 * each a prepared statement committed on its own, on one connection held open.
 */
async function perRowStatements(data: Dataset, n: number, path: string) {
  const began = performance.now();
  const session: StoreSession = await openStore(path);
  let statements = 0;
  try {
    const connection = session.connection;
    const insertRun = await connection.prepare(PER_ROW_INSERT_RUN);
    const insertStage = await connection.prepare(PER_ROW_INSERT_STAGE);
    const updateRun = await connection.prepare(PER_ROW_UPDATE_RUN);
    for (let i = 0; i < n; i++) {
      const run = data.runs[i] as RunRow;
      insertRun.bind([
        run.run_id,
        run.trace_id,
        run.span_id,
        run.tenant_id,
        run.pipeline,
        run.service_name,
        run.input_fingerprint,
        run.code_ref,
        run.config_hash,
        run.started_at,
        run.stages_expected,
        run.owner_host,
        run.owner_pid,
        run.owner_started_at,
        run.started_at,
      ]);
      await insertRun.run();
      statements += 1;
      for (let s = 0; s < STAGES_PER_RUN; s++) {
        const stage = data.stages[i * STAGES_PER_RUN + s] as StageRow;
        insertStage.bind([
          stage.run_id,
          stage.span_id,
          stage.parent_span_id,
          stage.name,
          stage.seq,
          stage.attempt,
          stage.status,
          stage.error_type,
          stage.error_message,
          stage.error_stack,
          stage.started_at,
          stage.finished_at,
          stage.duration_seconds,
          stage.rows_in,
          stage.rows_out,
          stage.llm_calls,
          stage.tokens,
          stage.input_tokens,
          stage.output_tokens,
          stage.metadata === null ? null : JSON.stringify(stage.metadata),
        ]);
        await insertStage.run();
        statements += 1;
      }
      updateRun.bind([
        run.run_id,
        run.status,
        run.status_reason,
        run.error,
        run.error_type,
        run.error_message,
        run.error_stack,
        run.failed_stage,
        run.finished_at,
        run.duration_seconds,
        run.rows_in,
        run.rows_out,
        run.llm_calls,
        run.tokens,
        run.input_tokens,
        run.output_tokens,
        run.stages_completed,
        JSON.stringify(run.stages_executed),
        JSON.stringify(run.stages_failed),
        run.retry_count,
        run.last_heartbeat,
      ]);
      await updateRun.run();
      statements += 1;
    }
  } finally {
    session.close();
  }
  return { totalMs: performance.now() - began, statements };
}

/** (c) Seed 001's approach: one JSON line per completed run, stages inline, appended. */
function jsonLines(data: Dataset, n: number, path: string): { totalMs: number } {
  const began = performance.now();
  for (let i = 0; i < n; i++) {
    const stages = data.stages.slice(i * STAGES_PER_RUN, (i + 1) * STAGES_PER_RUN);
    appendFileSync(path, `${JSON.stringify({ ...data.runs[i], stages })}\n`);
  }
  return { totalMs: performance.now() - began };
}

/** (d) Informative: the same lines, each fsynced before the next run, as a durable log must. */
function jsonLinesFsync(data: Dataset, n: number, path: string): { totalMs: number } {
  const began = performance.now();
  const fd = openSync(path, "a");
  try {
    for (let i = 0; i < n; i++) {
      const stages = data.stages.slice(i * STAGES_PER_RUN, (i + 1) * STAGES_PER_RUN);
      writeSync(fd, `${JSON.stringify({ ...data.runs[i], stages })}\n`);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
  return { totalMs: performance.now() - began };
}

/** Lines of a file, counted in its bytes: the file may be larger than a string can be. */
function lineCount(path: string): number {
  const bytes = readFileSync(path);
  let lines = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) lines += 1;
  return lines;
}

export interface PersistenceResult extends BenchResult {
  runtrail: { runs: number; batch: number; ms: number; runsPerSecond: number };
  runtrailLargeBatches: { runs: number; batch: number; ms: number; runsPerSecond: number };
  perRow: { runs: number; statements: number; ms: number; runsPerSecond: number };
  jsonl: { runs: number; ms: number; runsPerSecond: number };
  jsonlFsync: { runs: number; ms: number; runsPerSecond: number };
  runtrailOverPerRow: number;
  runtrailOverJsonl: number;
}

/** How fast completed runs of 10 stages are made durable, three ways. */
export async function runPersistence(options: BenchOptions): Promise<PersistenceResult> {
  const n = options.quick ? 20_000 : 100_000;
  const batch = 5_000;
  const bigBatch = options.quick ? 10_000 : 25_000;
  const perRowN = options.quick ? 300 : 2_000;
  const fsyncN = options.quick ? 300 : 2_000;
  const scratch = scratchDir("persistence");
  try {
    const generated = performance.now();
    const data = makeDataset(n);
    options.log(
      `  generated ${num(n)} runs and ${num(data.stages.length)} stages in ${ms(performance.now() - generated)}`,
    );
    check(data.stages.length === n * STAGES_PER_RUN, "every run should have 10 stages");

    const runtrailPath = join(scratch.dir, "runtrail.duckdb");
    const a = await runtrailBatches(data, n, batch, runtrailPath);
    const aRate = n / (a.totalMs / 1000);
    options.log(`  (a) runtrail batches: ${seconds(a.totalMs)}, ${num(aRate)} runs/s`);
    const aStored = await storedCounts(runtrailPath);
    check(
      aStored.runs === n && aStored.stages === n * STAGES_PER_RUN,
      `runtrail's store should hold ${n} runs and ${n * STAGES_PER_RUN} stages, it holds ${aStored.runs} and ${aStored.stages}`,
    );

    // Informative: the same path with larger batches, as when a flush interval collects more.
    const bigPath = join(scratch.dir, "runtrail-big.duckdb");
    const big = await runtrailBatches(data, n, bigBatch, bigPath);
    const bigRate = n / (big.totalMs / 1000);
    options.log(
      `  (a') runtrail, batches of ${num(bigBatch)}: ${seconds(big.totalMs)}, ${num(bigRate)} runs/s`,
    );
    const bigStored = await storedCounts(bigPath);
    check(
      bigStored.runs === n && bigStored.stages === n * STAGES_PER_RUN,
      `runtrail's store (large batches) should hold ${n} runs, it holds ${bigStored.runs}`,
    );

    const perRowPath = join(scratch.dir, "per-row.duckdb");
    const b = await perRowStatements(data, perRowN, perRowPath);
    const bRate = perRowN / (b.totalMs / 1000);
    options.log(
      `  (b) per-row statements: ${num(b.statements)} statements in ${seconds(b.totalMs)}, ${num(bRate)} runs/s`,
    );
    const bStored = await storedCounts(perRowPath);
    check(
      bStored.runs === perRowN && bStored.stages === perRowN * STAGES_PER_RUN,
      `the per-row store should hold ${perRowN} runs, it holds ${bStored.runs}`,
    );

    const jsonlPath = join(scratch.dir, "runs.jsonl");
    const c = jsonLines(data, n, jsonlPath);
    const cRate = n / (c.totalMs / 1000);
    options.log(`  (c) JSONL appendFileSync: ${seconds(c.totalMs)}, ${num(cRate)} runs/s`);
    check(lineCount(jsonlPath) === n, `the JSONL file should hold ${n} lines`);

    const fsyncPath = join(scratch.dir, "runs-fsync.jsonl");
    const d = jsonLinesFsync(data, fsyncN, fsyncPath);
    const dRate = fsyncN / (d.totalMs / 1000);
    options.log(`  (d) JSONL + fsync per run: ${seconds(d.totalMs)}, ${num(dRate)} runs/s`);
    check(lineCount(fsyncPath) === fsyncN, `the fsynced JSONL file should hold ${fsyncN} lines`);

    const overPerRow = aRate / bRate;
    const overJsonl = aRate / cRate;
    const batches = a.batchMs.length;
    return {
      name: "persistence",
      runtrail: { runs: n, batch, ms: a.totalMs, runsPerSecond: aRate },
      runtrailLargeBatches: { runs: n, batch: bigBatch, ms: big.totalMs, runsPerSecond: bigRate },
      perRow: { runs: perRowN, statements: b.statements, ms: b.totalMs, runsPerSecond: bRate },
      jsonl: { runs: n, ms: c.totalMs, runsPerSecond: cRate },
      jsonlFsync: { runs: fsyncN, ms: d.totalMs, runsPerSecond: dRate },
      runtrailOverPerRow: overPerRow,
      runtrailOverJsonl: overJsonl,
      section: {
        title: "2. Persistence: completed runs made durable",
        description:
          `The same generated runs (10 stages each, UUID run ids, 32-hex trace ids, ${PIPELINES.length} pipelines, ` +
          "~3 % failed and ~2 % degraded, token counts, stage timings) written three ways. " +
          "(a) runtrail's writer path: rows to columns on the main thread while the store thread (a worker thread, " +
          "as in the span processor) writes the batch before, one write at a time: its `BatchWriter` writes batch after batch of " +
          `${num(batch)} runs, a transaction each; the store stays open across batches that follow closely while no other ` +
          "process asks for it (up to 5 s), then is checkpointed and closed; timed to the last close. The store thread is " +
          `started ${THREAD_HEAD_START_MS} ms before the clock starts, as the writer starts it when its first run starts, a ` +
          "flush interval before its first write (loading DuckDB in it takes about 0.3 s, once per process); the " +
          "store file is new, and opening it is timed. (b) seed 000: per run an INSERT " +
          "at start, an INSERT per stage and an UPDATE at the end, each an autocommitted prepared statement " +
          "on one open connection. (c) seed 001: one JSON line per run (stages inline) with " +
          "`fs.appendFileSync`. Generating the data is not timed.",
        tables: [
          {
            rows: [
              ["Approach", "Runs", "Stage rows", "Wall time", "Runs/s", "Stage rows/s"],
              [
                `(a) runtrail store thread, ${batches} batches of ${num(batch)}`,
                num(n),
                num(n * STAGES_PER_RUN),
                seconds(a.totalMs),
                num(aRate),
                num(aRate * STAGES_PER_RUN),
              ],
              [
                `(a') informative: the same, ${big.batchMs.length} batches of ${num(bigBatch)}`,
                num(n),
                num(n * STAGES_PER_RUN),
                seconds(big.totalMs),
                num(bigRate),
                num(bigRate * STAGES_PER_RUN),
              ],
              [
                `(b) seed 000 per-row statements (${num(b.statements)} commits)`,
                num(perRowN),
                num(perRowN * STAGES_PER_RUN),
                seconds(b.totalMs),
                num(bRate),
                num(bRate * STAGES_PER_RUN),
              ],
              [
                "(c) seed 001 JSONL appendFileSync",
                num(n),
                num(n * STAGES_PER_RUN),
                seconds(c.totalMs),
                num(cRate),
                num(cRate * STAGES_PER_RUN),
              ],
              [
                "(d) informative: JSONL + fsync after every run",
                num(fsyncN),
                num(fsyncN * STAGES_PER_RUN),
                seconds(d.totalMs),
                num(dRate),
                num(dRate * STAGES_PER_RUN),
              ],
            ],
          },
          {
            rows: [
              ["Ratio", "Value"],
              ["runtrail / per-row statements", ratio(overPerRow, 1)],
              ["runtrail / JSONL appendFileSync", ratio(overJsonl, 2)],
              ["runtrail / JSONL + fsync", ratio(aRate / dRate, 1)],
              [
                `runtrail batch of ${num(batch)}: median (min–max)`,
                `${ms(median(a.batchMs))} (${ms(Math.min(...a.batchMs))}–${ms(Math.max(...a.batchMs))})`,
              ],
            ],
          },
        ],
        goals: [
          {
            name: "Completed runs (10 stages) made durable per second",
            target: `≥ ${num(RUNS_PER_SECOND_GOAL)} runs/s`,
            measured: `${num(aRate)} runs/s`,
            met: aRate >= RUNS_PER_SECOND_GOAL,
          },
          {
            name: "runtrail vs per-row statements",
            target: `≥ ${PER_ROW_RATIO_GOAL}×`,
            measured: ratio(overPerRow, 1),
            met: overPerRow >= PER_ROW_RATIO_GOAL,
          },
        ],
        notes: [
          `Checked afterwards: runtrail's stores hold exactly ${num(n)} runs and ${num(n * STAGES_PER_RUN)} stages; ` +
            `the per-row store ${num(perRowN)} runs and ${num(perRowN * STAGES_PER_RUN)} stages; the JSONL file ${num(n)} lines.`,
          `The per-row approach runs on fewer runs (${num(perRowN)}) because it is slow; its rate is per run, so the ratio compares like with like.`,
          "`appendFileSync` hands each line to the OS page cache and does not fsync: it survives a process crash, " +
            "not a power loss or kernel crash. runtrail's figure includes DuckDB's commit and the checkpoint on close. " +
            "Row (d) shows what a JSONL log costs when every run is fsynced.",
        ],
      },
    };
  } finally {
    scratch.remove();
  }
}
