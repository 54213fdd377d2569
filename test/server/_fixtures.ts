/**
 * A store with known runs, served in-process: runs recorded through a real SDK provider and
 * the real processor, then the store opened by a real `ServedStore` behind the real app.
 */

import { afterEach } from "vitest";
import { OtlpIngest, type OtlpIngestOptions } from "../../src/otlp/otlp-ingest.js";
import { type AppOptions, ChangeFeed, createApp, type RunTrailApp } from "../../src/server/app.js";
import { ServedStore } from "../../src/server/served-store.js";
import { TokenSet } from "../../src/server/tokens.js";
import { finish, type RecordedRun, recorder, recordRun } from "../cli/_fixtures.js";

export const NOW = Date.now();
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export interface Recorded {
  /** Runs by a name given here. */
  runs: Record<string, RecordedRun>;
}

/**
 * Eight runs: two pipelines, two tenants (and one without), every kind of ending, one still
 * running, one from 40 days ago; trace ids chosen so that some share prefixes.
 */
export async function recordKnownRuns(db: string): Promise<Recorded> {
  const t = recorder(db, {
    traceIds: [
      "aaaa0000000000000000000000000001",
      "aaaa0000000000000000000000000002",
      "bbbb0000000000000000000000000003",
      "cccc0000000000000000000000000004",
      "dddd0000000000000000000000000005",
      "eeee0000000000000000000000000006",
      "ffff0000000000000000000000000007",
      "abab0000000000000000000000000008",
    ],
  });
  const acme = { "runtrail.tenant.id": "acme" };
  const globex = { "runtrail.tenant.id": "globex" };
  const stages = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      name: `stage-${i + 1}`,
      ms: 1000,
      llm: [{ input: 100, output: 10 }],
    }));
  const runs: Record<string, RecordedRun> = {
    ok1: recordRun(t, {
      pipeline: "ingest",
      start: NOW - 5 * HOUR,
      ms: 4000,
      stages: stages(3),
      attributes: { ...acme, "runtrail.run.stages_expected": 3 },
    }),
    ok2: recordRun(t, {
      pipeline: "ingest",
      start: NOW - 4 * HOUR,
      ms: 20_000,
      stages: stages(2),
      attributes: acme,
    }),
    failed: recordRun(t, {
      pipeline: "ingest",
      start: NOW - 3 * HOUR,
      ms: 3000,
      stages: [{ name: "extract", ms: 500, error: new Error("disk full") }],
      error: new Error("disk full"),
      attributes: globex,
    }),
    degraded: recordRun(t, {
      pipeline: "summarize",
      start: NOW - 2 * HOUR,
      ms: 6000,
      stages: [
        { name: "fetch", ms: 1000 },
        { name: "llm", ms: 1000, error: new Error("rate limited") },
      ],
      attributes: globex,
    }),
    rejected: recordRun(t, {
      pipeline: "summarize",
      start: NOW - 90 * MINUTE,
      ms: 1000,
      attributes: { "runtrail.run.result": "rejected", "runtrail.run.result_reason": "empty" },
    }),
    running: recordRun(t, {
      pipeline: "summarize",
      start: NOW - 10 * MINUTE,
      stages: [
        { name: "fetch", ms: 1000 },
        { name: "llm", ms: 1000, open: true },
      ],
      attributes: { ...acme, "runtrail.run.stages_expected": 4 },
    }),
    old: recordRun(t, {
      pipeline: "ingest",
      start: NOW - 40 * DAY,
      ms: 1000,
      stages: stages(1),
      attributes: acme,
    }),
    cancelled: recordRun(t, {
      pipeline: "ingest",
      start: NOW - 30 * MINUTE,
      ms: 2000,
      attributes: { ...globex, "runtrail.run.result": "cancelled" },
    }),
  };
  await finish(t);
  return { runs };
}

export interface Served {
  app: RunTrailApp;
  store: ServedStore;
  ingest: OtlpIngest;
  changes: ChangeFeed;
  close(): Promise<void>;
}

/** The app over a store, as `runtrail serve` builds it (without listening on a port). */
export async function serveInProcess(
  db: string,
  options: Partial<AppOptions> & { ingest?: Omit<OtlpIngestOptions, "onWrite"> } = {},
): Promise<Served> {
  const { ingest: ingestOptions, ...appOptions } = options;
  const changes = new ChangeFeed();
  // Reaping only by heartbeat age far away: the fixture's running run belongs to this process.
  const store = await ServedStore.open(db, {
    staleAfterMs: 7 * 24 * 3_600_000,
    ingestIntervalMs: 100,
    onChange: () => changes.notify(),
  });
  const ingest = await OtlpIngest.open(store, {
    ...ingestOptions,
    onWrite: () => changes.notify(),
  });
  const app = createApp({
    tokens: TokenSet.none,
    changes,
    ...appOptions,
    store: () => store,
    otlp: () => ingest,
  });
  return {
    app,
    store,
    ingest,
    changes,
    async close() {
      changes.close();
      await ingest.close();
      await store.close();
    },
  };
}

/**
 * Serves stores for the tests of a file and closes each after its test, failed or not: `stop`
 * closes one sooner, to read its file or open it again.
 */
export function servedPerTest(): {
  serve(db: string, options?: Parameters<typeof serveInProcess>[1]): Promise<Served>;
  stop(served: Served): Promise<void>;
} {
  const open: Served[] = [];
  afterEach(async () => {
    for (const served of open.splice(0)) await served.close();
  });
  return {
    async serve(db, options = {}) {
      const served = await serveInProcess(db, options);
      open.push(served);
      return served;
    },
    async stop(served) {
      const index = open.indexOf(served);
      if (index >= 0) open.splice(index, 1);
      await served.close();
    },
  };
}

export async function getJson(
  app: RunTrailApp,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await app.request(path, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${path}: ${response.status} answered non-JSON: ${text.slice(0, 200)}`);
  }
  return { status: response.status, body, headers: response.headers };
}
