import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { lookupRun } from "../dist/query/find-run.js";
import { listRuns } from "../dist/query/list-runs.js";
import { runStages } from "../dist/query/run-stages.js";
import { withStore } from "../dist/store/open-store.js";
import { currentOwner } from "../dist/store/process-owner.js";
import type { StoreSession } from "../dist/store/store-session.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  ms,
  num,
  type Percentiles,
  percentiles,
  scratchDir,
  seconds,
} from "./_report.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const P95_GOAL_MS = 50;
const TIMES = 200;
const WARMUP = 5;
const CLI_TIMES = 10;
const RUNNING_RUNS = 25;

const PIPELINES = Array.from({ length: 20 }, (_, i) =>
  ["ingest-orders", "enrich-customers", "nightly-summaries", "classify-tickets", "embed-documents"][
    i % 5
  ]?.concat(`-${Math.floor(i / 5) + 1}`),
);

function sqlList(values: readonly (string | undefined)[]): string {
  return `[${values.map((v) => `'${v}'`).join(", ")}]`;
}

/**
 * Runs of the last 30 days, started in order, ids random: ~4 % failed, ~2 % degraded, the
 * newest few still running (owned by this live process, so the CLI does not reap them).
 */
function buildRunsSql(n: number): string {
  const now = Date.now() * 1000;
  const span = 30 * 24 * 3600 * 1_000_000;
  const start = now - span - 600_000_000;
  const step = Math.floor(span / n);
  const owner = currentOwner();
  return `
INSERT INTO runs (run_id, trace_id, span_id, tenant_id, pipeline, service_name, status, error,
  error_type, error_message, failed_stage, input_fingerprint, code_ref, config_hash, started_at,
  finished_at, duration_seconds, rows_in, rows_out, llm_calls, tokens, input_tokens,
  output_tokens, stages_expected, stages_completed, stages_executed, stages_failed, retry_count,
  current_stage, owner_host, owner_pid, owner_started_at, last_heartbeat)
SELECT
  id,
  replace(id::VARCHAR, '-', ''),
  substr(md5(i::VARCHAR), 1, 16),
  CASE WHEN i % 4 = 0 THEN 'acme' END,
  ${sqlList(PIPELINES)}[1 + (hash(i) % ${PIPELINES.length})::INTEGER],
  'bench-service',
  status,
  CASE WHEN status IN ('failed', 'degraded') THEN 'ValueError: missing field "customer_id"' END,
  CASE WHEN status IN ('failed', 'degraded') THEN 'ValueError' END,
  CASE WHEN status IN ('failed', 'degraded') THEN 'missing field "customer_id"' END,
  CASE status WHEN 'failed' THEN 'load' WHEN 'degraded' THEN 'transform' END,
  'sha256:' || substr(md5((i * 31)::VARCHAR), 1, 16),
  'git:4f1c2a9',
  'cfg:9d2e',
  make_timestamptz(start_us),
  CASE WHEN status <> 'running' THEN make_timestamptz(start_us + dur_us) END,
  CASE WHEN status <> 'running' THEN dur_us / 1e6 END,
  rows_in,
  CASE WHEN status = 'running' THEN NULL ELSE rows_in - (hash(i + 4) % 50)::BIGINT END,
  llm,
  llm * 900,
  llm * 700,
  llm * 200,
  3,
  CASE status WHEN 'running' THEN 2 WHEN 'completed' THEN 3 ELSE 2 END,
  ['extract', 'transform', 'load'],
  CASE status WHEN 'failed' THEN ['load'] WHEN 'degraded' THEN ['transform'] ELSE [] END,
  0,
  CASE WHEN status = 'running' THEN 'load' END,
  ${ownerColumn("host", owner.host)},
  ${ownerColumn("pid", owner.pid)},
  ${ownerColumn("started", owner.startedAt)},
  CASE WHEN status = 'running' THEN make_timestamptz(${now}::BIGINT)
       ELSE make_timestamptz(start_us + dur_us) END
FROM (
  SELECT i, uuid() AS id,
    CASE WHEN i >= ${n - RUNNING_RUNS} THEN 'running'
         WHEN hash(i + 1) % 100 < 4 THEN 'failed'
         WHEN hash(i + 1) % 100 < 6 THEN 'degraded'
         ELSE 'completed' END AS status,
    (${start}::BIGINT + i * ${step}::BIGINT + (hash(i + 2) % ${step})::BIGINT) AS start_us,
    (1000000 + hash(i + 3) % 120000000)::BIGINT AS dur_us,
    (1000 + hash(i + 5) % 9000)::BIGINT AS rows_in,
    (hash(i + 6) % 20)::BIGINT AS llm
  FROM range(${n}) t(i)
)`;
}

/** Owner columns: set on the running runs only (finished runs keep theirs, but it is not read). */
function ownerColumn(kind: "host" | "pid" | "started", value: string | number): string {
  if (kind === "host") return `CASE WHEN status = 'running' THEN '${value}' END`;
  if (kind === "pid") return `CASE WHEN status = 'running' THEN ${value} END`;
  return `CASE WHEN status = 'running' THEN make_timestamptz(${value}::BIGINT) END`;
}

/** Three stages per run, starting no earlier than their run, rows in stage start order. */
const BUILD_STAGES = `
INSERT INTO stages (run_id, span_id, parent_span_id, name, seq, attempt, status, error_type,
  error_message, started_at, finished_at, duration_seconds, rows_in, rows_out, llm_calls, tokens,
  input_tokens, output_tokens)
SELECT run_id, span_id, parent_span_id, name, seq, 1, status,
  CASE WHEN status = 'failed' THEN 'ValueError' END,
  CASE WHEN status = 'failed' THEN 'missing field "customer_id"' END,
  make_timestamptz(start_us),
  CASE WHEN status <> 'running' THEN make_timestamptz(start_us + part_us) END,
  CASE WHEN status <> 'running' THEN part_us / 1e6 END,
  rows_in, CASE WHEN status <> 'running' THEN rows_in - seq END,
  llm, llm * 900, llm * 700, llm * 200
FROM (
  SELECT r.run_id,
    substr(md5(r.span_id || s.seq::VARCHAR), 1, 16) AS span_id,
    r.span_id AS parent_span_id,
    ['extract', 'transform', 'load'][s.seq + 1] AS name,
    s.seq::INTEGER AS seq,
    CASE WHEN r.status = 'running' AND s.seq = 2 THEN 'running'
         WHEN r.status = 'failed' AND s.seq = 2 THEN 'failed'
         WHEN r.status = 'degraded' AND s.seq = 1 THEN 'failed'
         ELSE 'completed' END AS status,
    coalesce(epoch_us(r.finished_at) - epoch_us(r.started_at), 3000000) // 3 AS part_us,
    epoch_us(r.started_at) + s.seq * (coalesce(epoch_us(r.finished_at) - epoch_us(r.started_at), 3000000) // 3) AS start_us,
    coalesce(r.rows_in, 0) AS rows_in,
    CASE WHEN s.seq = 1 THEN r.llm_calls ELSE 0 END AS llm
  FROM runs r CROSS JOIN range(3) s(seq)
)
ORDER BY start_us`;

/** Creates the store at `path` with `n` runs and 3 n stages. */
export async function buildQueryStore(path: string, n: number): Promise<void> {
  await withStore(path, async (s) => {
    await s.transaction(async () => {
      await s.run(buildRunsSql(n));
      await s.run(BUILD_STAGES);
    });
  });
}

async function timed(times: number, work: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await work(i);
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const began = performance.now();
    await work(i);
    out.push(performance.now() - began);
  }
  return out;
}

function runCli(args: string[]): Promise<number> {
  const began = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 16 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (error)
          reject(new Error(`runtrail ${args.join(" ")} failed: ${error.message} ${stderr}`));
        else resolve(performance.now() - began);
      },
    );
  });
}

interface Sample {
  run_id: string;
  trace_id: string;
}

export interface QueriesResult extends BenchResult {
  runs: number;
  buildMs: number;
  fileBytes: number;
  tail: Percentiles;
  tailFailed: Percentiles;
  showByRunId: Percentiles;
  showByTraceId: Percentiles;
  cliTailP50: number;
  cliShowP50: number;
}

/** `tail` and `show` on a large store. */
export async function runQueries(options: BenchOptions): Promise<QueriesResult> {
  const n = options.quick ? 100_000 : 1_000_000;
  const scratch = scratchDir("queries");
  const path = join(scratch.dir, "runs.duckdb");
  try {
    const buildBegan = performance.now();
    await buildQueryStore(path, n);
    const buildMs = performance.now() - buildBegan;
    const fileBytes =
      statSync(path).size + (existsSync(`${path}.wal`) ? statSync(`${path}.wal`).size : 0);
    options.log(`  built ${num(n)} runs in ${seconds(buildMs)}, ${bytes(fileBytes)}`);

    const facts = { found: 0, ambiguous: 0, stagesOk: 0, failedTotal: 0, tailRows: 0 };
    const timings = await withStore(path, async (s: StoreSession) => {
      const counts = await s.one<{
        runs: number;
        stages: number;
        mismatched: number;
        early: number;
        running: number;
        failed: number;
      }>(`SELECT (SELECT count(*) FROM runs)::DOUBLE AS runs,
            (SELECT count(*) FROM stages)::DOUBLE AS stages,
            (SELECT count(*) FROM runs WHERE replace(run_id::VARCHAR, '-', '') <> trace_id)::DOUBLE AS mismatched,
            (SELECT count(*) FROM stages JOIN runs USING (run_id) WHERE stages.started_at < runs.started_at)::DOUBLE AS early,
            (SELECT count(*) FROM runs WHERE status = 'running')::DOUBLE AS running,
            (SELECT count(*) FROM runs WHERE status = 'failed')::DOUBLE AS failed`);
      check(
        counts?.runs === n && counts.stages === 3 * n,
        `the store should hold ${n} runs and ${3 * n} stages: ${JSON.stringify(counts)}`,
      );
      check(counts.mismatched === 0, "every trace id should be its run id without dashes");
      check(counts.early === 0, "no stage should start before its run");
      facts.failedTotal = counts.failed;

      const sample = await s.all<Sample>(
        `SELECT run_id::VARCHAR AS run_id, trace_id FROM runs
         USING SAMPLE reservoir(${2 * (TIMES + WARMUP)} ROWS) REPEATABLE (7)`,
      );
      check(sample.length === 2 * (TIMES + WARMUP), "the sample should have enough runs");
      const byRunId = sample.slice(0, TIMES + WARMUP);
      const byTraceId = sample.slice(TIMES + WARMUP);

      const tail = await timed(TIMES, async () => {
        const page = await listRuns(s, { limit: 10 });
        facts.tailRows = page.runs.length;
      });
      const tailFailed = await timed(TIMES, async () => {
        const page = await listRuns(s, { limit: 10, statuses: ["failed"] });
        check(page.total === counts.failed, "tail --status failed should count every failed run");
      });
      const show = async (wanted: Sample, prefix: string) => {
        const lookup = await lookupRun(s, prefix);
        if (lookup.found === "many") facts.ambiguous += 1;
        if (lookup.found !== "one") return;
        const stages = await runStages(s, lookup.run);
        if (lookup.run.run_id === wanted.run_id) {
          facts.found += 1;
          if (stages.length === 3) facts.stagesOk += 1;
        }
      };
      const showByRunId = await timed(TIMES, (i) => {
        const wanted = byRunId[i] as Sample;
        return show(wanted, wanted.run_id.slice(0, 8));
      });
      const showByTraceId = await timed(TIMES, (i) => {
        const wanted = byTraceId[i] as Sample;
        return show(wanted, wanted.trace_id.slice(0, 8));
      });
      return { tail, tailFailed, showByRunId, showByTraceId, byRunId };
    });
    check(facts.tailRows === 10, "tail should return 10 runs");
    const lookups = 2 * (TIMES + WARMUP);
    check(
      facts.found + facts.ambiguous === lookups,
      `every sampled prefix should find its run (found ${facts.found}, ambiguous ${facts.ambiguous} of ${lookups})`,
    );
    check(facts.stagesOk === facts.found, "every run shown should have its 3 stages");

    const tail = percentiles(timings.tail);
    const tailFailed = percentiles(timings.tailFailed);
    const showByRunId = percentiles(timings.showByRunId);
    const showByTraceId = percentiles(timings.showByTraceId);
    options.log(
      `  tail p95 ${ms(tail.p95)}, tail failed p95 ${ms(tailFailed.p95)}, show p95 ${ms(showByRunId.p95)} / ${ms(showByTraceId.p95)}`,
    );

    const cliTail: number[] = [];
    const cliShow: number[] = [];
    for (let i = 0; i < CLI_TIMES; i++) {
      cliTail.push(await runCli(["tail", "--db", path]));
      const prefix = (timings.byRunId[i] as Sample).run_id.slice(0, 8);
      cliShow.push(await runCli(["show", prefix, "--db", path]));
    }
    const cliTailP = percentiles(cliTail);
    const cliShowP = percentiles(cliShow);
    options.log(`  CLI tail p50 ${ms(cliTailP.p50)}, CLI show p50 ${ms(cliShowP.p50)}`);

    const row = (label: string, p: Percentiles) => [
      label,
      num(TIMES),
      ms(p.p50, 2),
      ms(p.p95, 2),
      ms(p.p99, 2),
      ms(p.max, 2),
    ];
    const goal = (name: string, p: Percentiles) => ({
      name: `${name} p95`,
      target: `≤ ${P95_GOAL_MS} ms`,
      measured: ms(p.p95, 2),
      met: p.p95 <= P95_GOAL_MS,
    });
    return {
      name: "queries",
      runs: n,
      buildMs,
      fileBytes,
      tail,
      tailFailed,
      showByRunId,
      showByTraceId,
      cliTailP50: cliTailP.p50,
      cliShowP50: cliShowP.p50,
      section: {
        title: `3. Queries on a store of ${num(n)} runs`,
        description:
          `A store of ${num(n)} runs (random UUIDs, trace id = run id without dashes, started over the last ` +
          `30 days in order, ${PIPELINES.length} pipelines, ~4 % failed, ~2 % degraded, the newest ${RUNNING_RUNS} running) ` +
          `and ${num(3 * n)} stages (3 per run, appended in start order), built by SQL in one session. ` +
          `Queries run in one open session, each ${WARMUP} times to warm up and then ${TIMES} times timed. ` +
          '"show" is `lookupRun` on an 8-hex-digit prefix plus `runStages`, for randomly sampled runs.',
        tables: [
          {
            rows: [
              ["Store", "Value"],
              ["Runs / stages", `${num(n)} / ${num(3 * n)}`],
              ["Build time (SQL insert, commit, close)", seconds(buildMs)],
              ["File size", bytes(fileBytes)],
            ],
          },
          {
            rows: [
              ["Query (in-process, open session)", "Times", "p50", "p95", "p99", "max"],
              row("tail: listRuns({ limit: 10 })", tail),
              row('tail --status failed: listRuns({ statuses: ["failed"] })', tailFailed),
              row("show <run id prefix>: lookupRun + runStages", showByRunId),
              row("show <trace id prefix>: lookupRun + runStages", showByTraceId),
            ],
          },
          {
            caption:
              "The real CLI as a child process (wall time including node start-up, opening the store, " +
              "spool and crash checks; informative only):",
            rows: [
              ["Command", "Times", "p50", "min", "max"],
              [
                "runtrail tail --db <store>",
                num(CLI_TIMES),
                ms(cliTailP.p50, 0),
                ms(Math.min(...cliTail), 0),
                ms(cliTailP.max, 0),
              ],
              [
                "runtrail show <8-hex prefix> --db <store>",
                num(CLI_TIMES),
                ms(cliShowP.p50, 0),
                ms(Math.min(...cliShow), 0),
                ms(cliShowP.max, 0),
              ],
            ],
          },
        ],
        goals: [
          goal("tail", tail),
          goal("tail --status failed", tailFailed),
          goal("show <run id prefix>", showByRunId),
          goal("show <trace id prefix>", showByTraceId),
        ],
        notes: [
          `Checked: ${num(facts.found)} of ${num(lookups)} sampled prefixes (warm-up included) named exactly their run and ` +
            `every one showed its 3 stages; ${num(facts.ambiguous)} prefixes matched more than one run ` +
            `(8 hex digits among ${num(n)} random ids); the failed filter counted all ${num(facts.failedTotal)} failed runs.`,
          "runtrail gives a root run the trace id as its run id, so an 8-hex-digit trace id prefix is also a " +
            "run id prefix: the two show rows run the same query on different samples.",
        ],
      },
    };
  } finally {
    scratch.remove();
  }
}
