/**
 * Test data for the CLI tests: runs recorded in-process through a real SDK provider and the real
 * processor, with explicit times, then read by the built `runtrail` in a child process.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { type Attributes, context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, type IdGenerator } from "@opentelemetry/sdk-trace-base";
import { afterAll } from "vitest";
import { RunTrailSpanProcessor } from "../../src/ingest/span-processor.js";
import { formatUuid } from "../../src/record/run-id.js";
import { withStore } from "../../src/store/open-store.js";
import type { Traced } from "../helpers/tracing.js";

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape codes
export const ANSI = /\u001b\[/;

/** Text as shown, without colour codes. */
export function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape codes
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

const shared: string[] = [];

afterAll(() => {
  for (const dir of shared.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A folder kept for the whole test file and removed after it, for stores made in `beforeAll`
 * (the `tempDir()` helper removes its folders after each test).
 */
export function sharedDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runtrail-cli-test-"));
  shared.push(dir);
  return dir;
}

/** A store path in a folder kept for the whole test file. */
export function sharedStore(): string {
  return join(sharedDir(), "runs.duckdb");
}

/**
 * Ids handed out in order: the trace ids given (then random ones), span ids counting up. For
 * runs whose ids share a prefix.
 */
export function fixedIds(traceIds: readonly string[]): IdGenerator {
  const queue = [...traceIds];
  let spans = 0;
  const random = (digits: number) =>
    Array.from({ length: digits }, () => Math.floor(Math.random() * 16).toString(16)).join("");
  return {
    generateTraceId: () => queue.shift() ?? random(32),
    generateSpanId: () => {
      spans += 1;
      return spans.toString(16).padStart(16, "0");
    },
  };
}

/** A real SDK provider with runtrail's processor on `db`, optionally with fixed trace ids. */
export function recorder(
  db: string,
  options: {
    traceIds?: readonly string[];
    flushIntervalMs?: number;
    rootSpansAreRuns?: boolean;
  } = {},
): Traced {
  const processor = new RunTrailSpanProcessor({
    db,
    ...(options.flushIntervalMs !== undefined ? { flushIntervalMs: options.flushIntervalMs } : {}),
    ...(options.rootSpansAreRuns !== undefined
      ? { rootSpansAreRuns: options.rootSpansAreRuns }
      : {}),
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "cli-test" }),
    spanProcessors: [processor],
    ...(options.traceIds ? { idGenerator: fixedIds(options.traceIds) } : {}),
  });
  return { processor, provider, tracer: provider.getTracer("runtrail-cli-test") };
}

/** Writes everything recorded and lets go of the store, so the CLI can open it. */
export async function finish(t: Traced): Promise<void> {
  await t.processor.forceFlush();
  await t.provider.shutdown();
}

/** A span starting at `startMs` (epoch milliseconds), under `parent` if given. */
export function span(
  t: Traced,
  name: string,
  startMs: number,
  parent?: Span,
  attributes: Attributes = {},
): Span {
  const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
  return t.tracer.startSpan(name, { startTime: startMs, attributes }, ctx);
}

/** Marks a span failed with the error, as instrumentation does. */
export function fail(s: Span, error: Error): void {
  s.recordException(error);
  s.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

export interface LlmCallSpec {
  input: number;
  output: number;
}

export interface StageSpec {
  name: string;
  /** Duration in milliseconds. */
  ms: number;
  /** GenAI chat calls made in the stage. */
  llm?: readonly LlmCallSpec[];
  /** The stage fails with this error. */
  error?: Error;
  /** Leave the stage open (for a running run). */
  open?: boolean;
}

export interface RunSpec {
  pipeline: string;
  /** Start, epoch milliseconds. */
  start: number;
  /** Duration in milliseconds; leave out for a run that is still running. */
  ms?: number;
  /** Stages, one after the other from 100 ms into the run. */
  stages?: readonly StageSpec[];
  /** The run span fails with this error. */
  error?: Error;
  attributes?: Attributes;
}

export interface RecordedRun {
  runId: string;
  traceId: string;
  root: Span;
  spec: RunSpec;
}

/** The run id of a run that is the root of its trace: the trace id as a UUID. */
export function runIdOfTrace(traceId: string): string {
  return formatUuid(traceId);
}

/** Records one run with its stages and GenAI chat calls, with exact times. */
export function recordRun(t: Traced, spec: RunSpec): RecordedRun {
  const root = span(t, spec.pipeline, spec.start, undefined, spec.attributes ?? {});
  let at = spec.start + 100;
  for (const stageSpec of spec.stages ?? []) {
    const stage = span(t, stageSpec.name, at, root);
    const calls = stageSpec.llm ?? [];
    calls.forEach((call, i) => {
      const start = at + 1 + i;
      span(t, "chat test-model", start, stage, {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "test-model",
        "gen_ai.usage.input_tokens": call.input,
        "gen_ai.usage.output_tokens": call.output,
      }).end(start + 1);
    });
    if (stageSpec.error) fail(stage, stageSpec.error);
    if (!stageSpec.open) stage.end(at + stageSpec.ms);
    at += stageSpec.ms;
  }
  if (spec.error) fail(root, spec.error);
  if (spec.ms !== undefined) root.end(spec.start + spec.ms);
  const traceId = root.spanContext().traceId;
  return { runId: runIdOfTrace(traceId), traceId, root, spec };
}

/** Rows of a query on an in-memory DuckDB, for reading exported files back. */
export async function duckdbRows<T>(sql: string): Promise<T[]> {
  const instance = await DuckDBInstance.create(":memory:");
  try {
    const connection = await instance.connect();
    try {
      await connection.run("SET TimeZone = 'UTC'");
      const reader = await connection.runAndReadAll(sql);
      return reader.getRowObjectsJS() as T[];
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

/** A SQL string literal. */
export function sqlText(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The pid of a process that has exited (and whose pid is not reused yet). */
export function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    child.on("error", reject);
    child.on("exit", () => {
      if (child.pid === undefined) reject(new Error("no pid"));
      else resolve(child.pid);
    });
  });
}

/** `2026-11-23 14:23:15`, as the CLI shows a time (UTC, to the second). */
export function shownTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

export function short(runId: string): string {
  return runId.slice(0, 8);
}

/** The cells of a box table's header (┃) and of its body rows (│), trimmed. */
export function parseTable(text: string): { header: string[]; rows: string[][] } {
  const lines = text.split("\n");
  const cellsOf = (line: string, bar: string) =>
    line
      .split(bar)
      .slice(1, -1)
      .map((c) => c.trim());
  const headerLine = lines.find((l) => l.startsWith("┃"));
  return {
    header: headerLine === undefined ? [] : cellsOf(headerLine, "┃"),
    rows: lines.filter((l) => l.startsWith("│")).map((l) => cellsOf(l, "│")),
  };
}

/** The non-empty lines of an output. */
export function linesOf(text: string): string[] {
  return text.split("\n").filter((l) => l.length > 0);
}

export interface InsertedRun {
  runId: string;
  pipeline: string;
  status: string;
  /** Epoch milliseconds. */
  start: number;
  finish?: number;
  ownerHost?: string;
  ownerPid?: number;
  /** Epoch milliseconds. */
  heartbeat?: number;
}

/** Writes a run row directly, for states the processor does not produce by itself. */
export async function insertRun(db: string, run: InsertedRun): Promise<void> {
  const micros = (ms: number | undefined) => (ms === undefined ? null : ms * 1000);
  await withStore(db, (session) =>
    session.run(
      `INSERT INTO runs (run_id, trace_id, pipeline, status, started_at, finished_at,
         duration_seconds, owner_host, owner_pid, last_heartbeat)
       VALUES ($1::UUID, $2, $3, $4, make_timestamptz($5::BIGINT),
         make_timestamptz($6::BIGINT), $7, $8, $9, make_timestamptz($10::BIGINT))`,
      [
        run.runId,
        run.runId.replaceAll("-", ""),
        run.pipeline,
        run.status,
        micros(run.start),
        micros(run.finish),
        run.finish === undefined ? null : (run.finish - run.start) / 1000,
        run.ownerHost ?? null,
        run.ownerPid ?? null,
        micros(run.heartbeat),
      ],
    ),
  );
}

/** Epoch milliseconds of now, to the whole second, so shown and ISO times compare exactly. */
export function wholeSecondNow(): number {
  return Math.floor(Date.now() / 1000) * 1000;
}
