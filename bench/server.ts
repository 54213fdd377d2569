import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { Agent, type ClientRequest, request } from "node:http";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import type { RunRow, StageRow } from "../dist/record/rows.js";
import { ROW_GROUP_SIZE, withStore } from "../dist/store/open-store.js";
import { spoolRows } from "../dist/store/spool.js";
import { blankRun } from "../test/helpers/run-row.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  hex,
  ms,
  num,
  percentile,
  processTicks,
  rng,
  scratchDir,
  seconds,
} from "./_report.js";
import { type ServerProcess, startServer } from "./_server-process.js";
import { buildQueryStore } from "./queries.js";

/** The goal: list and get answer at p99 ≤ 50 ms while serving 500 requests a second. */
const P99_GOAL_MS = 50;
const GOAL_RATE = 500;
/** The fixed-rate run must achieve at least this rate for the goal to count as met. */
const MIN_ACHIEVED_RATE = 490;
const CONNECTIONS = 10;
/** Requests that warm an endpoint up, at least: one per path if it has more. */
const WARM_UP_REQUESTS = 300;
/** Run ids whose first 8 hex digits the get endpoint is asked for, in turn. */
const PREFIXES = 1000;
const METRIC_PIPELINES = 200;
const METRIC_STAGES = 10;
const METRICS_RATE = 5;
const METRICS_CONNECTIONS = 4;
/** Longest a request may take before the load generators count it as an error. */
const REQUEST_TIMEOUT_S = 20;
/** How long a paced run waits for its last answers after the last request was due. */
const DRAIN_S = 2;
/** Pause after each run, so that the next starts, or the server stops, with nothing in flight. */
const PAUSE_MS = 2000;
/** While a load runs, this many finished runs are spooled every FEED_INTERVAL_MS. */
const FEED_RUNS = 5;
const FEED_INTERVAL_MS = 250;

async function fetchText(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, text: await response.text() };
}

async function fetchJson<T>(url: string): Promise<T> {
  const { status, text } = await fetchText(url);
  check(status === 200, `GET ${url} should answer 200, not ${status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting, from /proc (Linux); undefined elsewhere

/** Busy clock ticks of the whole machine. */
function machineTicks(): number | undefined {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1);
    const [user, nice, system, , , irq, softirq, steal] = (cpu ?? []).map(Number);
    const total = [user, nice, system, irq, softirq, steal].reduce<number>(
      (sum, v) => sum + (v ?? 0),
      0,
    );
    return Number.isFinite(total) ? total : undefined;
  } catch {
    return undefined;
  }
}

/** Cores used on average while the load ran: by the server, by this process, by the rest. */
interface CpuUse {
  server: number | undefined;
  /** The server's CPU time during the run, in seconds. */
  serverSeconds: number | undefined;
  client: number;
  others: number | undefined;
}

async function withCpu<T>(serverPid: number, work: () => Promise<T>): Promise<[T, CpuUse]> {
  const machine0 = machineTicks();
  const server0 = processTicks(serverPid);
  const client0 = process.cpuUsage();
  const began = performance.now();
  const value = await work();
  const elapsedS = (performance.now() - began) / 1000;
  const clientUs = process.cpuUsage(client0);
  const client = (clientUs.user + clientUs.system) / 1e6 / elapsedS;
  const server1 = processTicks(serverPid);
  const machine1 = machineTicks();
  // Clock ticks are 100 per second on Linux (USER_HZ).
  const serverSeconds =
    server0 !== undefined && server1 !== undefined ? (server1 - server0) / 100 : undefined;
  const server = serverSeconds === undefined ? undefined : serverSeconds / elapsedS;
  const others =
    machine0 !== undefined && machine1 !== undefined && server !== undefined
      ? Math.max(0, (machine1 - machine0) / 100 / elapsedS - server - client)
      : undefined;
  return [value, { server, serverSeconds, client, others }];
}

// ---------------------------------------------------------------------------------------------
// Load generators

type LoadShape = "single" | "bursts" | "paced" | "pacedFresh" | "max";

const SHAPE_LABEL: Record<LoadShape, string> = {
  single: "one at a time, no-cache",
  bursts: "autocannon overallRate",
  paced: "paced (open loop)",
  pacedFresh: "paced, no-cache (informative)",
  max: "autocannon unthrottled",
};

interface Load {
  shape: LoadShape;
  /** Requests per second asked for; undefined when unthrottled. */
  target: number | undefined;
  connections: number;
  completed: number;
  /** Completed requests per second of the run. */
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** Requests of a paced run given up on, still unanswered well after the run's end. */
  unanswered: number;
  meanBytes: number;
  cpu: CpuUse;
}

interface Tally {
  latencies: number[];
  non2xx: number;
  errors: number;
  bytes: number;
}

function summarize(
  shape: LoadShape,
  target: number | undefined,
  connections: number,
  elapsedS: number,
  tally: Tally,
  cpu: CpuUse,
): Load {
  const { latencies } = tally;
  check(latencies.length > 0, `the ${shape} run completed no request`);
  return {
    shape,
    target,
    connections,
    completed: latencies.length,
    // One at a time, the rate is what a lone client gets back to back (autocannon ends a run
    // that counts requests only on its once-a-second tick).
    rate:
      shape === "single"
        ? latencies.length / (latencies.reduce((sum, l) => sum + l, 0) / 1000)
        : latencies.length / elapsedS,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
    non2xx: tally.non2xx,
    errors: tally.errors,
    unanswered: 0,
    meanBytes: tally.bytes / latencies.length,
    cpu,
  };
}

/** Paths taken in turn, shared by all connections. */
function rotation(paths: readonly string[]): () => string {
  let next = 0;
  return () => paths[next++ % paths.length] as string;
}

/**
 * autocannon against the server: unthrottled (each connection sends its next request when the
 * answer to the last one arrives), or with `overallRate`, which lets each connection send its
 * share of the second's requests back to back and then pause until the next second starts.
 * Latency is each response's time from the request's write, as autocannon reports it per
 * response (its own histogram is whole milliseconds).
 */
function cannon(
  server: ServerProcess,
  paths: readonly string[],
  run: { seconds: number; connections: number; rate?: number; amount?: number },
  headers: Record<string, string> = {},
): Promise<Load> {
  const tally: Tally = { latencies: [], non2xx: 0, errors: 0, bytes: 0 };
  const nextPath = rotation(paths);
  const [first = "/"] = paths;
  const requests: autocannon.Request[] =
    paths.length === 1
      ? [{ method: "GET", path: first }]
      : [{ method: "GET", path: first, setupRequest: (req) => ({ ...req, path: nextPath() }) }];
  return withCpu(
    server.pid,
    () =>
      new Promise<{ elapsedS: number; errors: number }>((resolve, reject) => {
        const instance = autocannon(
          {
            url: server.url,
            connections: run.connections,
            duration: run.seconds,
            ...(run.amount !== undefined ? { amount: run.amount } : {}),
            ...(run.rate !== undefined
              ? { overallRate: run.rate, ignoreCoordinatedOmission: true }
              : {}),
            timeout: REQUEST_TIMEOUT_S,
            headers,
            requests,
          },
          (error, result) => {
            if (error) reject(error);
            else resolve({ elapsedS: result.duration, errors: result.errors });
          },
        );
        instance.on(
          "response",
          (_client: unknown, status: number, responseBytes: number, latencyMs: number) => {
            tally.latencies.push(latencyMs);
            tally.bytes += responseBytes;
            if (status < 200 || status > 299) tally.non2xx += 1;
          },
        );
      }),
  ).then(([{ elapsedS, errors }, cpu]) =>
    summarize(
      run.rate !== undefined ? "bursts" : run.connections === 1 ? "single" : "max",
      run.rate,
      run.connections,
      elapsedS,
      { ...tally, errors },
      cpu,
    ),
  );
}

/**
 * An open-loop generator at a steady rate: request i is due at start + i / rate, whatever the
 * answers before it; it goes out on a free keep-alive connection (of `connections`) or waits
 * for one. Latency counts from when the request was due, so time spent waiting for a
 * connection behind slow answers is included (no coordinated omission). When the server falls
 * behind, the requests still unanswered {@link DRAIN_S} after the last one was due are given up
 * and counted as unanswered, so that an overloaded run ends in bounded time.
 */
function paced(
  server: ServerProcess,
  paths: readonly string[],
  run: { seconds: number; connections: number; rate: number },
  headers: Record<string, string> = {},
): Promise<Load> {
  const tally: Tally = { latencies: [], non2xx: 0, errors: 0, bytes: 0 };
  const nextPath = rotation(paths);
  const target = new URL(server.url);
  const agent = new Agent({ keepAlive: true, maxSockets: run.connections });
  const total = Math.round(run.rate * run.seconds);
  const intervalMs = 1000 / run.rate;
  const outstanding = new Set<ClientRequest>();
  let settled = 0;
  let allSettled: () => void = () => undefined;

  const send = (dueAt: number) => {
    let done = false;
    const settle = (count: () => void) => {
      if (done) return;
      done = true;
      outstanding.delete(req);
      count();
      settled += 1;
      if (settled === total) allSettled();
    };
    const req = request(
      { host: target.hostname, port: target.port, path: nextPath(), agent, headers },
      (res) => {
        let received = 0;
        res.on("data", (chunk: Buffer) => {
          received += chunk.length;
        });
        res.on("end", () =>
          settle(() => {
            tally.latencies.push(performance.now() - dueAt);
            tally.bytes += received;
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) tally.non2xx += 1;
          }),
        );
        res.on("error", () =>
          settle(() => {
            tally.errors += 1;
          }),
        );
      },
    );
    outstanding.add(req);
    req.setTimeout(REQUEST_TIMEOUT_S * 1000, () => req.destroy(new Error("timeout")));
    req.on("error", () =>
      settle(() => {
        tally.errors += 1;
      }),
    );
    req.end();
  };

  return withCpu(server.pid, async () => {
    const began = performance.now();
    const finished = new Promise<void>((resolve) => {
      allSettled = resolve;
    });
    let issued = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (issued < total && began + issued * intervalMs <= now) {
          send(began + issued * intervalMs);
          issued += 1;
        }
        if (issued >= total) resolve();
        else setTimeout(tick, Math.max(0, began + issued * intervalMs - performance.now()));
      };
      tick();
    });
    await Promise.race([finished, sleep(DRAIN_S * 1000)]);
    const unanswered = outstanding.size;
    for (const req of [...outstanding]) {
      outstanding.delete(req);
      req.destroy();
    }
    agent.destroy();
    return { elapsedS: (performance.now() - began) / 1000, unanswered };
  }).then(([{ elapsedS, unanswered }, cpu]) => ({
    ...summarize("paced", run.rate, run.connections, elapsedS, tally, cpu),
    unanswered,
  }));
}

// ---------------------------------------------------------------------------------------------
// Finished runs of 10 stages each, one per pipeline: the metrics store's 200, and the feed

const METRIC_STAGE_NAMES = Array.from(
  { length: METRIC_STAGES },
  (_, i) => `stage-${String(i + 1).padStart(2, "0")}`,
);
const metricPipeline = (i: number) => `metrics-pipeline-${String(i + 1).padStart(3, "0")}`;

/** One completed run in each of `pipelines` pipelines, with all its stages, ending `endUs`. */
function finishedRuns(
  endUs: number,
  random: () => number,
  pipelines: number,
): { runs: RunRow[]; stages: StageRow[] } {
  const runs: RunRow[] = [];
  const stages: StageRow[] = [];
  for (let p = 0; p < pipelines; p++) {
    const runId = randomUUID();
    const runSpan = hex(random, 16);
    const durations = METRIC_STAGE_NAMES.map(() => Math.round((0.05 + random() * 30) * 1e6));
    const runUs = durations.reduce((sum, d) => sum + d, 0);
    const startUs = endUs - runUs;
    let at = startUs;
    METRIC_STAGE_NAMES.forEach((name, seq) => {
      const us = durations[seq] as number;
      stages.push({
        run_id: runId,
        span_id: hex(random, 16),
        parent_span_id: runSpan,
        name,
        seq,
        attempt: 1,
        status: "completed",
        error_type: null,
        error_message: null,
        error_stack: null,
        started_at: at,
        finished_at: at + us,
        duration_seconds: us / 1e6,
        rows_in: 1000,
        rows_out: 1000,
        llm_calls: 1,
        tokens: 900,
        input_tokens: 700,
        output_tokens: 200,
        metadata: null,
        snapshot: null,
        cache_key: null,
        cached_from: null,
      });
      at += us;
    });
    runs.push(
      blankRun({
        run_id: runId,
        trace_id: runId.replaceAll("-", ""),
        span_id: runSpan,
        pipeline: metricPipeline(p),
        service_name: "bench-service",
        status: "completed",
        started_at: startUs,
        finished_at: endUs,
        duration_seconds: runUs / 1e6,
        rows_in: 1000,
        rows_out: 1000,
        llm_calls: METRIC_STAGES,
        tokens: 900 * METRIC_STAGES,
        input_tokens: 700 * METRIC_STAGES,
        output_tokens: 200 * METRIC_STAGES,
        stages_expected: METRIC_STAGES,
        stages_completed: METRIC_STAGES,
        stages_executed: [...METRIC_STAGE_NAMES],
        last_heartbeat: endUs,
      }),
    );
  }
  return { runs, stages };
}

/**
 * New runs while a load runs, as a busy pipeline host writes them: {@link FEED_RUNS} finished
 * runs spooled every {@link FEED_INTERVAL_MS}, which the server writes in at its next spool
 * ingest. Each of those writes drops the answers the server kept, so the loads measure answers
 * both kept and computed anew. `stop` gives the number of runs spooled.
 */
function feed(storePath: string, random: () => number): { stop: () => Promise<number> } {
  let feeding = true;
  let runs = 0;
  const loop = (async () => {
    while (feeding) {
      const rows = finishedRuns(Date.now() * 1000, random, FEED_RUNS);
      await spoolRows(storePath, rows.runs, rows.stages);
      runs += rows.runs.length;
      await sleep(FEED_INTERVAL_MS);
    }
  })();
  return {
    stop: async () => {
      feeding = false;
      await loop;
      return runs;
    },
  };
}

/** Distinct label sets of a metric's `_count` samples in a text exposition. */
function labelSets(body: string, metric: string): Set<string> {
  const sets = new Set<string>();
  const prefix = `${metric}{`;
  for (const line of body.split("\n")) {
    if (line.startsWith(prefix)) sets.add(line.slice(prefix.length, line.lastIndexOf("}")));
  }
  return sets;
}

// ---------------------------------------------------------------------------------------------
// The benchmark

interface Endpoint {
  label: string;
  paths: readonly string[];
  /** Whether the p99 goal applies. */
  goal: boolean;
  /**
   * Its answers outlive writes of other runs, so its loads are answered from memory: it is
   * also loaded paced with `Cache-Control: no-cache`, for what the store itself answers.
   */
  keptAcrossWrites?: boolean;
}

interface EndpointLoads {
  endpoint: Endpoint;
  loads: Load[];
}

export interface ServerResult extends BenchResult {
  runs: number;
  endpoints: EndpointLoads[];
  metrics: Load[];
  metricsLabelSets: number;
  metricsBodyBytes: number;
}

function sizeOnDisk(path: string): number {
  return statSync(path).size + (existsSync(`${path}.wal`) ? statSync(`${path}.wal`).size : 0);
}

const cores = (value: number | undefined) => (value === undefined ? "?" : num(value, 2));

/** Server CPU time per answered request. */
function cpuPerRequest(load: Load): string {
  const total = load.cpu.serverSeconds;
  return total === undefined ? "?" : ms((total * 1000) / load.completed, 1);
}

function loadRow(label: string, load: Load): string[] {
  return [
    label,
    SHAPE_LABEL[load.shape],
    load.target === undefined ? "—" : num(load.target),
    num(load.connections),
    num(load.rate, load.rate < 100 ? 1 : 0),
    ms(load.p50, 2),
    ms(load.p90, 2),
    ms(load.p99, 2),
    ms(load.max, 1),
    `${num(load.non2xx)} / ${num(load.errors)} / ${num(load.unanswered)}`,
    bytes(load.meanBytes),
    cores(load.cpu.server),
    cpuPerRequest(load),
    `${cores(load.cpu.client)} / ${cores(load.cpu.others)}`,
  ];
}

const LOAD_HEADER = [
  "Endpoint",
  "Load",
  "Target req/s",
  "Conns",
  "Achieved req/s",
  "p50",
  "p90",
  "p99",
  "max",
  "non-2xx / errors / unanswered",
  "Response",
  "Server CPU (cores)",
  "Server CPU per request",
  "Client / others CPU (cores)",
];

/** The HTTP server on a store of 1,000,000 runs, and /metrics with 2,000 stage label sets. */
export async function runServer(options: BenchOptions): Promise<ServerResult> {
  const n = options.quick ? 100_000 : 1_000_000;
  const runSeconds = options.quick ? 3 : 10;
  const singleRequests = options.quick ? 50 : 200;
  const metricsBackground = options.quick ? 10_000 : 100_000;
  const scratch = scratchDir("server");
  const path = join(scratch.dir, "runs.duckdb");
  const metricsPath = join(scratch.dir, "metrics.duckdb");
  const started: ServerProcess[] = [];
  const serve = async (db: string) => {
    const server = await startServer(db);
    started.push(server);
    return server;
  };
  try {
    // The store, and what the checks expect of it.
    const buildBegan = performance.now();
    await buildQueryStore(path, n);
    const buildMs = performance.now() - buildBegan;
    options.log(`  built ${num(n)} runs in ${seconds(buildMs)}, ${bytes(sizeOnDisk(path))}`);
    const sinceUs = (Date.now() - 7 * 24 * 3_600_000) * 1000;
    const facts = await withStore(path, async (s) => {
      const counts = await s.one<{ runs: number; failed: number; week: number }>(
        `SELECT count(*)::DOUBLE AS runs,
           (count(*) FILTER (WHERE status = 'failed'))::DOUBLE AS failed,
           (count(*) FILTER (WHERE started_at >= make_timestamptz($1::BIGINT)))::DOUBLE AS week
         FROM runs`,
        [sinceUs],
      );
      // Sampled runs whose first 8 hex digits name no other run.
      const sample = await s.all<{ run_id: string; matches: number }>(
        `WITH sample AS (
           SELECT run_id::VARCHAR AS run_id FROM runs
           USING SAMPLE reservoir(${PREFIXES + 100} ROWS) REPEATABLE (17)
         )
         SELECT sample.run_id, count(*)::DOUBLE AS matches
         FROM sample JOIN runs ON left(runs.run_id::VARCHAR, 8) = left(sample.run_id, 8)
         GROUP BY sample.run_id ORDER BY sample.run_id`,
      );
      const rowGroups = await s.all<{ rows: number }>(
        `SELECT sum(count)::DOUBLE AS rows FROM pragma_storage_info('runs')
         WHERE column_path = '[0]' GROUP BY row_group_id ORDER BY row_group_id`,
      );
      return { counts, sample, rowGroups };
    });
    check(facts.counts?.runs === n, `the store should hold ${n} runs`);
    const unique = facts.sample.filter((r) => r.matches === 1).slice(0, PREFIXES);
    check(unique.length === PREFIXES, `${PREFIXES} sampled runs should have unique prefixes`);
    const failedTotal = facts.counts.failed;
    const weekTotal = facts.counts.week;
    const newestRowGroup = facts.rowGroups[facts.rowGroups.length - 1]?.rows ?? 0;

    // The store's server, and a look at each answer before measuring.
    const server = await serve(path);
    options.log(`  serving ${num(n)} runs at ${server.url} (pid ${server.pid})`);
    const base = server.url;
    type Page = { runs: { run_id: string; status: string }[]; total: number };
    const list = await fetchJson<Page>(`${base}/api/runs?limit=100`);
    check(list.runs.length === 100 && list.total === n, "the list should show 100 of all runs");
    const failed = await fetchJson<Page>(`${base}/api/runs?status=failed&limit=100`);
    check(
      failed.runs.length === 100 &&
        failed.runs.every((r) => r.status === "failed") &&
        failed.total === failedTotal,
      `the failed list should show 100 failed runs of ${failedTotal}`,
    );
    for (const wanted of unique.slice(0, 20)) {
      const run = await fetchJson<{ run_id: string; stages: unknown[] }>(
        `${base}/api/runs/${wanted.run_id.slice(0, 8)}`,
      );
      check(
        run.run_id === wanted.run_id && run.stages.length === 3,
        `GET /api/runs/${wanted.run_id.slice(0, 8)} should show run ${wanted.run_id} with 3 stages`,
      );
    }
    const stats = await fetchJson<{ groups: { runs: number }[] }>(`${base}/api/stats?since=7d`);
    const statsRuns = stats.groups.reduce((sum, g) => sum + g.runs, 0);
    check(
      stats.groups.length === 20 && Math.abs(statsRuns - weekTotal) <= weekTotal * 0.005,
      `stats should group the ${weekTotal} runs of the last 7 days by 20 pipelines (got ${statsRuns} in ${stats.groups.length})`,
    );

    const endpoints: Endpoint[] = [
      { label: "GET /api/runs?limit=100", paths: ["/api/runs?limit=100"], goal: true },
      {
        label: "GET /api/runs?status=failed&limit=100",
        paths: ["/api/runs?status=failed&limit=100"],
        goal: true,
      },
      {
        label: `GET /api/runs/:prefix (${num(PREFIXES)} ids)`,
        paths: unique.map((r) => `/api/runs/${r.run_id.slice(0, 8)}`),
        goal: true,
        keptAcrossWrites: true,
      },
      { label: "GET /api/stats?since=7d", paths: ["/api/stats?since=7d"], goal: false },
    ];
    const measured: EndpointLoads[] = [];
    const feedRandom = rng(31);
    let fed = 0;
    /** A load, while new runs are fed to the server. */
    const fedLoad = async (load: () => Promise<Load>): Promise<Load> => {
      const feeding = feed(path, feedRandom);
      try {
        return await load();
      } finally {
        fed += await feeding.stop();
      }
    };
    for (const endpoint of endpoints) {
      // Warm-up: compiled code, DuckDB's caches, open connections, every path asked once.
      const warmUp = Math.max(WARM_UP_REQUESTS, endpoint.paths.length);
      await cannon(server, endpoint.paths, { seconds: 30, connections: 4, amount: warmUp });
      const loads: Load[] = [];
      const single = { seconds: 60, connections: 1, amount: singleRequests };
      loads.push(await cannon(server, endpoint.paths, single, { "cache-control": "no-cache" }));
      await sleep(PAUSE_MS);
      const rate = { seconds: runSeconds, connections: CONNECTIONS, rate: GOAL_RATE };
      loads.push(await fedLoad(() => paced(server, endpoint.paths, rate)));
      await sleep(PAUSE_MS);
      loads.push(await fedLoad(() => cannon(server, endpoint.paths, rate)));
      await sleep(PAUSE_MS);
      loads.push(
        await fedLoad(() =>
          cannon(server, endpoint.paths, { seconds: runSeconds, connections: CONNECTIONS }),
        ),
      );
      await sleep(PAUSE_MS);
      if (endpoint.keptAcrossWrites) {
        const fresh = await fedLoad(() =>
          paced(server, endpoint.paths, rate, { "cache-control": "no-cache" }),
        );
        loads.push({ ...fresh, shape: "pacedFresh" });
        await sleep(PAUSE_MS);
      }
      for (const load of loads) {
        options.log(
          `  ${endpoint.label}, ${SHAPE_LABEL[load.shape]}: ${num(load.rate)} req/s, p50 ${ms(load.p50, 2)}, p99 ${ms(load.p99, 2)}, failed ${load.non2xx + load.errors + load.unanswered}, server ${cores(load.cpu.server)} cores`,
        );
      }
      measured.push({ endpoint, loads });
    }
    // Every run fed during the loads was written in.
    const after = await fetchText(`${base}/api/runs?limit=1`, { "cache-control": "no-cache" });
    const storedAfter = (JSON.parse(after.text) as Page).total;
    check(
      storedAfter === n + fed,
      `the server should hold the ${num(n)} runs and the ${num(fed)} fed during the loads, not ${num(storedAfter)}`,
    );
    options.log(`  fed ${num(fed)} runs during the loads; all stored`);
    const exitCode = await server.stop();
    check(exitCode === 0, `the server should exit 0 on SIGTERM, not ${exitCode}`);

    // /metrics with 200 pipelines × 10 stages of label sets.
    await buildQueryStore(metricsPath, metricsBackground);
    const metricsServer = await serve(metricsPath);
    options.log(`  serving the metrics store at ${metricsServer.url}`);
    const metricsUrl = `${metricsServer.url}/metrics`;
    // The first scrape takes what the store already holds as the baseline, not counted; runs and
    // stages that reach the store after it are counted. These end now and reach the server
    // through the spool, as a pipeline's rows do while a server holds the store.
    const baseline = await fetchText(metricsUrl);
    check(baseline.status === 200, `/metrics should answer 200, not ${baseline.status}`);
    const rows = finishedRuns(Date.now() * 1000, rng(29), METRIC_PIPELINES);
    await spoolRows(metricsPath, rows.runs, rows.stages);
    let body = "";
    let stageSets = 0;
    const waitUntil = Date.now() + 30_000;
    while (Date.now() < waitUntil) {
      const answer = await fetchText(metricsUrl);
      check(answer.status === 200, `/metrics should answer 200, not ${answer.status}`);
      body = answer.text;
      stageSets = [...labelSets(body, "runtrail_stage_duration_seconds_count")].filter((s) =>
        s.includes('pipeline="metrics-pipeline-'),
      ).length;
      if (stageSets >= METRIC_PIPELINES * METRIC_STAGES) break;
      await sleep(250);
    }
    check(
      stageSets >= METRIC_PIPELINES * METRIC_STAGES,
      `/metrics should have ${METRIC_PIPELINES * METRIC_STAGES} stage label sets, not ${stageSets}`,
    );
    const runSets = labelSets(body, "runtrail_run_duration_seconds_count").size;
    const bodyBytes = Buffer.byteLength(body);
    const bodyLines = body.split("\n").length;
    const openMetrics = await fetchText(metricsUrl, {
      accept: "application/openmetrics-text; version=1.0.0",
    });
    check(openMetrics.status === 200, "/metrics should answer OpenMetrics too");
    const openMetricsBytes = Buffer.byteLength(openMetrics.text);
    options.log(
      `  /metrics: ${num(stageSets)} stage label sets, ${num(bodyLines)} lines, ${bytes(bodyBytes)}`,
    );

    const metricsPaths = ["/metrics"];
    await cannon(metricsServer, metricsPaths, { seconds: 10, connections: 1, amount: 20 });
    const metricsRate = {
      seconds: runSeconds,
      connections: METRICS_CONNECTIONS,
      rate: METRICS_RATE,
    };
    const metricsLoads: Load[] = [];
    metricsLoads.push(await paced(metricsServer, metricsPaths, metricsRate));
    await sleep(PAUSE_MS);
    metricsLoads.push(
      await cannon(metricsServer, metricsPaths, { ...metricsRate, connections: 1 }),
    );
    await sleep(PAUSE_MS);
    metricsLoads.push(
      await cannon(metricsServer, metricsPaths, {
        seconds: runSeconds,
        connections: METRICS_CONNECTIONS,
      }),
    );
    await sleep(PAUSE_MS);
    for (const load of metricsLoads) {
      options.log(
        `  /metrics, ${SHAPE_LABEL[load.shape]}: ${num(load.rate, 1)} req/s, p50 ${ms(load.p50)}, p99 ${ms(load.p99)}, server ${cores(load.cpu.server)} cores`,
      );
    }
    const metricsExit = await metricsServer.stop();
    check(metricsExit === 0, `the metrics server should exit 0 on SIGTERM, not ${metricsExit}`);

    // The report.
    const goals = measured
      .filter((m) => m.endpoint.goal)
      .map(({ endpoint, loads }) => {
        const fixed = loads.filter((l) => l.shape === "paced" || l.shape === "bursts");
        const worst = fixed.reduce((a, b) => (b.p99 > a.p99 ? b : a));
        const slowest = fixed.reduce((a, b) => (b.rate < a.rate ? b : a));
        const failures = fixed.reduce((sum, l) => sum + l.non2xx + l.errors + l.unanswered, 0);
        return {
          name: `${endpoint.label} p99 at ${GOAL_RATE} req/s`,
          target: `≤ ${P99_GOAL_MS} ms, ≥ ${MIN_ACHIEVED_RATE} req/s, no errors`,
          measured:
            fixed.map((l) => `${ms(l.p99, 1)} (${l.shape})`).join(", ") +
            ` at ≥ ${num(slowest.rate)} req/s, ${num(failures)} failed or unanswered`,
          met: worst.p99 <= P99_GOAL_MS && slowest.rate >= MIN_ACHIEVED_RATE && failures === 0,
        };
      });
    const loadRows = measured.flatMap(({ endpoint, loads }) =>
      loads.map((load) => loadRow(endpoint.label, load)),
    );
    return {
      name: "server",
      runs: n,
      endpoints: measured,
      metrics: metricsLoads,
      metricsLabelSets: stageSets,
      metricsBodyBytes: bodyBytes,
      section: {
        title: `6. The HTTP server on a store of ${num(n)} runs`,
        description:
          `\`runtrail serve --port 0\` as a child process, holding a store of ${num(n)} runs and ${num(3 * n)} ` +
          "stages (built as in section 3); the load generator runs in the benchmark's own process, " +
          "so server and client share the machine's cores as a client on the same host would. Each " +
          `endpoint is warmed up with ${num(WARM_UP_REQUESTS)} requests (the get endpoint with one for each of its ${num(PREFIXES)} paths), then asked ${num(singleRequests)} times **one at a ` +
          "time** (autocannon, 1 connection: the latency of a lone client) with `Cache-Control: " +
          "no-cache`, so that each is answered afresh from the store, as a question the server has " +
          `not kept is; then loaded three ways for ${runSeconds} s each, with a ${seconds(PAUSE_MS, 0)} pause between runs, ` +
          `**while new runs are fed**: ${FEED_RUNS} finished runs of ${METRIC_STAGES} stages spooled every ` +
          `${FEED_INTERVAL_MS} ms (${num((FEED_RUNS * 1000) / FEED_INTERVAL_MS)} runs/s), as a busy pipeline host ` +
          "writes them. The server writes the spool in every 250 ms, and each of those writes drops " +
          "the answers it kept about the store as a whole (the newest runs changed), so about four " +
          "times a second the next list or stats question is answered from the store again. An " +
          "answer about one run is dropped only by a write of that run (or of a run its prefix also " +
          "names), or after a minute: the fed runs are other runs, so under load the get endpoint " +
          "answers its 1,000 paths from memory, as it would pollers of the same runs. **Paced, " +
          "no-cache** (informative, the get endpoint only) is the paced run with `Cache-Control: " +
          "no-cache` on every request: what the store answers when nothing is kept. **Paced**: an open-loop generator " +
          `sending ${GOAL_RATE} requests a second evenly spaced over ${CONNECTIONS} keep-alive ` +
          "connections, latency counted from when each request was due, requests still unanswered " +
          `${DRAIN_S} s after the last one was due given up and counted. **autocannon overallRate**: ` +
          `autocannon 9 at ${GOAL_RATE} req/s over ${CONNECTIONS} connections; it sends each ` +
          "connection's share of a second back to back from the start of the second, then waits, so " +
          `the server sees bursts of ${CONNECTIONS} concurrent requests (and, when it cannot keep up, ` +
          "a closed loop like the unthrottled run). **autocannon unthrottled**: each connection sends " +
          "its next request as soon as the last is answered, for the most the server answers. " +
          "Latencies are per request, to a fraction of a millisecond. CPU is cores used on average " +
          "during the run: by the server process (all its threads), by the load generator, and by " +
          "everything else on the machine; server CPU per request is the server's CPU time during the " +
          "run over the requests answered.",
        tables: [
          {
            rows: [
              ["Store", "Value"],
              ["Runs / stages", `${num(n)} / ${num(3 * n)}`],
              ["Build time (SQL insert, commit, close)", seconds(buildMs)],
              [
                "Row groups of runs / rows in the newest",
                `${num(facts.rowGroups.length)} / ${num(newestRowGroup)}`,
              ],
              [
                "Failed runs / runs started in the last 7 days",
                `${num(failedTotal)} / ${num(weekTotal)}`,
              ],
              ["Runs fed during the loads (all found stored afterwards)", num(fed)],
              [
                "Get-by-prefix paths",
                `${num(PREFIXES)} sampled runs, first 8 hex digits of the run id, each naming one run`,
              ],
            ],
          },
          { rows: [LOAD_HEADER, ...loadRows] },
          {
            caption:
              `/metrics on a separate store (${num(metricsBackground)} runs of section 3's shape, plus one run of ` +
              `${METRIC_STAGES} stages in each of ${METRIC_PIPELINES} pipelines, ending just now and written ` +
              "through the spool after the server's first scrape, so the server counts them; scrapes " +
              "use the Prometheus text format):",
            rows: [
              ["/metrics", "Value"],
              ["Stage-duration label sets (runtrail_stage_duration_seconds_count)", num(stageSets)],
              ["Run-duration label sets", num(runSets)],
              ["Body, Prometheus text format", `${bytes(bodyBytes)}, ${num(bodyLines)} lines`],
              ["Body, OpenMetrics (with exemplars)", bytes(openMetricsBytes)],
            ],
          },
          {
            rows: [
              LOAD_HEADER,
              ...metricsLoads.map((load) => loadRow("GET /metrics (text format)", load)),
            ],
          },
        ],
        goals,
        notes: [
          `Checked before measuring: the list shows 100 of ${num(n)} runs, the failed list 100 failed runs ` +
            `of ${num(failedTotal)}, 20 prefixes each name their run with its 3 stages, stats count the ` +
            "runs of the last 7 days in 20 pipelines, /metrics has the label sets above; the server exits " +
            "0 on SIGTERM.",
          "A goal is met when both fixed-rate runs (paced and autocannon overallRate) achieve the rate " +
            "with no error and no non-2xx answer, and both p99s are within the target.",
          "autocannon's own coordinated-omission correction is off for its fixed-rate run (it assumes " +
            "a 1 ms interval between requests whatever the rate); the paced run measures from the " +
            "intended send time instead.",
          "Runs are appended in start order, so the newest runs are in the last row group(s) of the " +
            "table; the list's top-N scan reads little more than those (DuckDB skips older row groups " +
            "by their start-time zone maps), so its cost follows how full the newest row group is " +
            `(up to ${ROW_GROUP_SIZE.toLocaleString("en-US")} rows, runtrail's row group size).`,
        ],
      },
    };
  } finally {
    for (const server of started) await server.stop().catch(() => undefined);
    scratch.remove();
  }
}
