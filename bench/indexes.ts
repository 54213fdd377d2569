import { statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { listRuns } from "../dist/query/list-runs.js";
import type { RunRow } from "../dist/record/rows.js";
import { withStore } from "../dist/store/open-store.js";
import { BatchWriter } from "../dist/store/write-batch.js";
import { columnBatchOf } from "../dist/store/write-rows.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  median,
  ms,
  num,
  percentiles,
  scratchDir,
} from "./_report.js";
import { makeDataset } from "./persistence.js";
import { buildQueryStore } from "./queries.js";

/** Seed 000's indexes, on the columns that hold the same facts in runtrail's table. */
const SEED_000_INDEXES = [
  "CREATE INDEX idx_runs_started_at ON runs(started_at)",
  "CREATE INDEX idx_runs_stage ON runs(pipeline)",
  "CREATE INDEX idx_runs_status ON runs(status)",
  "CREATE INDEX idx_runs_fingerprint ON runs(input_fingerprint)",
  "CREATE INDEX idx_runs_tenant ON runs(tenant_id)",
];

const BATCH = 5_000;
const QUERY_TIMES = 50;

interface Layout {
  name: string;
  startMs: number[];
  endMs: number[];
  fileBytes: number;
  tailMs: number[];
  failedMs: number[];
  fingerprintMs: number[];
  tenantMs: number[];
}

async function timed(times: number, work: () => Promise<unknown>): Promise<number[]> {
  await work();
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const began = performance.now();
    await work();
    out.push(performance.now() - began);
  }
  return out;
}

/**
 * What the writer does to a store of `n` runs in one layout: batches of new runs written
 * running, then the same runs written finished (each a status change), then queries.
 */
async function measure(name: string, path: string, n: number, indexes: boolean, runs: RunRow[]) {
  await buildQueryStore(path, n);
  if (indexes)
    await withStore(path, async (s) => {
      for (const sql of SEED_000_INDEXES) await s.run(sql);
    });
  const layout: Layout = {
    name,
    startMs: [],
    endMs: [],
    fileBytes: 0,
    tailMs: [],
    failedMs: [],
    fingerprintMs: [],
    tenantMs: [],
  };
  const writer = new BatchWriter(path, { lockWaitMs: 10_000, maxHoldMs: 0 });
  const empty = { stages: [] };
  for (let offset = 0; offset < runs.length; offset += BATCH) {
    const finished = runs.slice(offset, offset + BATCH);
    const running = finished.map((r) => ({
      ...r,
      status: "running" as const,
      finished_at: null,
      duration_seconds: null,
    }));
    for (const [rows, into] of [
      [running, layout.startMs],
      [finished, layout.endMs],
    ] as const) {
      const began = performance.now();
      const outcome = await writer.write(columnBatchOf({ runs: rows, ...empty }));
      await writer.checkpointAndClose();
      check(outcome.written, `${name}: a batch was not written`);
      into.push(performance.now() - began);
    }
  }
  layout.fileBytes = statSync(path).size;
  const fingerprint = runs[0]?.input_fingerprint ?? "";
  await withStore(path, async (s) => {
    layout.tailMs = await timed(QUERY_TIMES, () => listRuns(s, { limit: 10 }));
    layout.failedMs = await timed(QUERY_TIMES, () =>
      listRuns(s, { limit: 10, statuses: ["failed"] }),
    );
    layout.fingerprintMs = await timed(QUERY_TIMES, () =>
      s.all(
        "SELECT run_id::VARCHAR AS id FROM runs WHERE input_fingerprint = $1 AND status = 'completed'",
        [fingerprint],
      ),
    );
    layout.tenantMs = await timed(QUERY_TIMES, () =>
      s.all("SELECT count(*)::DOUBLE AS n FROM runs WHERE tenant_id = 'acme'"),
    );
    const stored = await s.one<{ n: number }>("SELECT count(*)::DOUBLE AS n FROM runs");
    check(
      stored?.n === n + runs.length,
      `${name}: the store holds ${stored?.n} runs, not ${n + runs.length}`,
    );
  });
  return layout;
}

/**
 * Seed 000's ART indexes against runtrail's layout (zone maps only) on a store of a million
 * runs: what each costs the writer, the file, and the queries the indexes were for.
 */
export async function runIndexes(options: BenchOptions): Promise<BenchResult> {
  const n = options.quick ? 100_000 : 1_000_000;
  const written = options.quick ? 5_000 : 20_000;
  const scratch = scratchDir("indexes");
  try {
    const runs = makeDataset(written, 7).runs;
    options.log(`  building two stores of ${num(n)} runs ...`);
    const plain = await measure(
      "runtrail (zone maps)",
      join(scratch.dir, "plain.duckdb"),
      n,
      false,
      runs,
    );
    options.log("  runtrail layout done");
    const seed = await measure(
      "seed 000's five ART indexes",
      join(scratch.dir, "seed.duckdb"),
      n,
      true,
      runs,
    );
    options.log("  seed 000 layout done");
    const row = (l: Layout) => [
      l.name,
      ms(median(l.startMs)),
      ms(median(l.endMs)),
      bytes(l.fileBytes),
      ms(percentiles(l.tailMs).p95),
      ms(percentiles(l.failedMs).p95),
      ms(percentiles(l.fingerprintMs).p95),
      ms(percentiles(l.tenantMs).p95),
    ];
    return {
      name: "indexes",
      section: {
        title: "5. Seed 000's indexes against zone maps",
        description:
          `Two stores of ${num(n)} runs, one with seed 000's five ART indexes (started_at, stage → pipeline, ` +
          `status, fingerprint, tenant). Into each, the writer's path writes ${num(written)} new runs in batches of ` +
          `${num(BATCH)}: first running, then finished (a status change), each batch a session of its own ` +
          `(open, transaction, checkpoint, close). Then ${QUERY_TIMES} timings of each query.`,
        tables: [
          {
            rows: [
              [
                "Layout",
                "Batch written running (median)",
                "Batch written finished (median)",
                "File size",
                "tail p95",
                "tail --status failed p95",
                "fingerprint lookup p95",
                "tenant count p95",
              ],
              row(plain),
              row(seed),
            ],
          },
        ],
        goals: [],
        notes: [
          "Informative: no goal. It is why runtrail does not create seed 000's indexes (see docs/store.md).",
        ],
      },
    };
  } finally {
    scratch.remove();
  }
}
