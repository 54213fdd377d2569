import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeJson, decodeProtobuf } from "../dist/otlp/decode.js";
import { ExportResponse } from "../dist/otlp/otlp-schema.js";
import { withStore } from "../dist/store/open-store.js";
import { keyValues, protobufOf } from "../test/otlp/_bodies.js";
import {
  type BenchOptions,
  type BenchResult,
  bytes,
  check,
  hex,
  median,
  num,
  processTicks,
  ratio,
  rng,
  scratchDir,
} from "./_report.js";
import { type ServerProcess, startServer } from "./_server-process.js";

/** The goals: protobuf spans recorded end to end per second, and that as a share of decoding. */
const SPANS_GOAL = 50_000;
const SHARE_GOAL = 0.5;
const SPANS_PER_BODY = 512;
/** Spans of one trace: a run, 5 stages, 2 LLM calls under each. */
const STAGES = 5;
const CALLS_PER_STAGE = 2;
const SPANS_PER_TRACE = 1 + STAGES * (1 + CALLS_PER_STAGE);
/** Requests in flight at once while measuring throughput: a Collector exporter's default consumers. */
const CONCURRENCY = 10;

type Format = "protobuf" | "json";

const CONTENT_TYPE: Record<Format, string> = {
  protobuf: "application/x-protobuf",
  json: "application/json",
};

interface Bodies {
  format: Format;
  bodies: Uint8Array[];
  spans: number;
  traces: number;
}

/**
 * Export requests of `SPANS_PER_BODY` spans each, in OTLP's JSON shape (ids as hex): whole
 * traces of a run, its stages and their LLM calls, with the attributes pipelines set.
 */
function requests(count: number, seed: number): Record<string, unknown>[] {
  const random = rng(seed);
  const base = BigInt(Date.now() - 3_600_000) * 1_000_000n;
  const out: Record<string, unknown>[] = [];
  let t = 0n;
  for (let b = 0; b < count; b++) {
    const spans: Record<string, unknown>[] = [];
    while (spans.length + SPANS_PER_TRACE <= SPANS_PER_BODY) {
      const traceId = hex(random, 32);
      const root = hex(random, 16);
      const start = base + t;
      t += 5_000_000n;
      const span = (
        spanId: string,
        parent: string | undefined,
        name: string,
        from: bigint,
        ms: number,
        attributes: Record<string, string | number>,
      ) => ({
        traceId,
        spanId,
        ...(parent ? { parentSpanId: parent } : {}),
        name,
        kind: 1,
        startTimeUnixNano: String(from),
        endTimeUnixNano: String(from + BigInt(ms) * 1_000_000n),
        attributes: keyValues(attributes),
        status: { code: 0 },
      });
      spans.push(
        span(root, undefined, "nightly-etl", start, 100 * STAGES + 10, {
          "runtrail.pipeline.name": `pipeline-${Math.floor(random() * 20)}`,
          "runtrail.run.stages_expected": STAGES,
        }),
      );
      for (let s = 0; s < STAGES; s++) {
        const stageId = hex(random, 16);
        const stageStart = start + BigInt(s * 100 + 1) * 1_000_000n;
        spans.push(
          span(stageId, root, `stage-${s}`, stageStart, 99, {
            "runtrail.rows.in": 1000,
            "runtrail.rows.out": 990,
          }),
        );
        for (let c = 0; c < CALLS_PER_STAGE; c++) {
          spans.push(
            span(
              hex(random, 16),
              stageId,
              "chat gpt-4o-mini",
              stageStart + BigInt(c * 40 + 1) * 1_000_000n,
              30,
              {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 800,
                "gen_ai.usage.output_tokens": 120,
              },
            ),
          );
        }
      }
    }
    // Fill the body to its size with spans of one more, unfinished trace's stages.
    const traceId = hex(random, 32);
    const parent = hex(random, 16);
    while (spans.length < SPANS_PER_BODY) {
      spans.push({
        traceId,
        spanId: hex(random, 16),
        parentSpanId: parent,
        name: "stage-x",
        kind: 1,
        startTimeUnixNano: String(base + t),
        endTimeUnixNano: String(base + t + 1_000_000n),
        attributes: keyValues({ "runtrail.rows.out": 1 }),
        status: { code: 0 },
      });
    }
    out.push({
      resourceSpans: [
        {
          resource: {
            attributes: keyValues({ "service.name": "bench-etl", "host.name": "bench" }),
          },
          scopeSpans: [{ scope: { name: "bench" }, spans }],
        },
      ],
    });
  }
  return out;
}

function bodiesOf(format: Format, count: number, seed: number): Bodies {
  const made = requests(count, seed);
  const encoder = new TextEncoder();
  const bodies = made.map((r) =>
    format === "protobuf" ? protobufOf(r) : encoder.encode(JSON.stringify(r)),
  );
  // Whole traces, and one unfinished trace filling the rest of the body, if any.
  const traces =
    Math.floor(SPANS_PER_BODY / SPANS_PER_TRACE) + (SPANS_PER_BODY % SPANS_PER_TRACE > 0 ? 1 : 0);
  return { format, bodies, spans: count * SPANS_PER_BODY, traces: count * traces };
}

/** Spans decoded per second, the same decoding the server does: the limit of ingesting. */
function decodeRate(set: Bodies): number {
  const decoder = new TextDecoder();
  const once = () => {
    const began = performance.now();
    let spans = 0;
    for (const body of set.bodies) {
      const decoded =
        set.format === "protobuf" ? decodeProtobuf(body) : decodeJson(decoder.decode(body));
      spans += decoded.spans.length;
    }
    check(spans === set.spans, `decoded ${spans} spans of ${set.spans}`);
    return set.spans / ((performance.now() - began) / 1000);
  };
  once();
  return median([once(), once(), once()]);
}

interface Sent {
  status: number;
  retryAfter: string | null;
  partial: boolean;
}

async function send(url: string, format: Format, body: Uint8Array): Promise<Sent> {
  const response = await fetch(`${url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": CONTENT_TYPE[format] },
    body,
  });
  const answer = new Uint8Array(await response.arrayBuffer());
  let partial = false;
  if (response.status === 200) {
    partial =
      format === "protobuf"
        ? ExportResponse.decode(answer).toJSON().partialSuccess !== undefined
        : "partialSuccess" in (JSON.parse(new TextDecoder().decode(answer)) as object);
  }
  return { status: response.status, retryAfter: response.headers.get("retry-after"), partial };
}

/** Rows the store holds once the server has stopped. */
async function storeCounts(
  db: string,
): Promise<{ spans: number; runs: number; completed: number }> {
  return withStore(db, async (session) => {
    const row = await session.one<{ spans: number; runs: number; completed: number }>(
      `SELECT (SELECT count(*) FROM otlp_spans)::INTEGER AS spans,
         (SELECT count(*) FROM runs)::INTEGER AS runs,
         (SELECT count(*) FROM runs WHERE status = 'completed')::INTEGER AS completed`,
    );
    return row ?? { spans: 0, runs: 0, completed: 0 };
  });
}

/**
 * CPU time per span, in seconds: the server's event loop (its main thread), the server's other
 * threads (DuckDB's work on libuv's pool, V8's garbage collection helpers), and this process,
 * which sends the bodies. Undefined where /proc cannot tell.
 */
interface CpuPerSpan {
  eventLoop: number | undefined;
  otherThreads: number | undefined;
  client: number;
}

/** Every body sent, `CONCURRENCY` at a time, each retried after a 429 as exporters do. */
async function throughput(
  server: ServerProcess,
  set: Bodies,
): Promise<{ rate: number; retries: number; cpu: CpuPerSpan }> {
  let next = 0;
  let retries = 0;
  const process0 = processTicks(server.pid);
  const main0 = processTicks(server.pid, server.pid);
  const client0 = process.cpuUsage();
  const began = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (;;) {
        const body = set.bodies[next++];
        if (body === undefined) return;
        for (;;) {
          const sent = await send(server.url, set.format, body);
          if (sent.status === 200) {
            check(!sent.partial, "a valid body was partly rejected");
            break;
          }
          check(sent.status === 429, `POST /v1/traces answered ${sent.status}`);
          retries += 1;
          await sleep(Number(sent.retryAfter ?? "1") * 100);
        }
      }
    }),
  );
  const rate = set.spans / ((performance.now() - began) / 1000);
  const client = process.cpuUsage(client0);
  const process1 = processTicks(server.pid);
  const main1 = processTicks(server.pid, server.pid);
  // Clock ticks are 100 a second (USER_HZ).
  const perSpan = (from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? undefined : (to - from) / 100 / set.spans;
  const eventLoop = perSpan(main0, main1);
  const all = perSpan(process0, process1);
  const cpu = {
    eventLoop,
    otherThreads: all === undefined || eventLoop === undefined ? undefined : all - eventLoop,
    client: (client.user + client.system) / 1e6 / set.spans,
  };
  return { rate, retries, cpu };
}

/** Resident memory of a process, from /proc, in bytes. */
function rssOf(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:"));
    return line === undefined ? undefined : Number(line.split(/\s+/)[1]) * 1024;
  } catch {
    return undefined;
  }
}

interface Overload {
  /** How long bodies were sent for, and until the last answer came. */
  seconds: number;
  answered: number;
  offered: number;
  accepted: number;
  refused: number;
  /** Requests that got no answer: the connection failed. */
  unanswered: number;
  firstFailure: string | undefined;
  acceptedSpans: number;
  maxRss: number;
  rssBefore: number;
}

/**
 * Bodies sent at a fixed rate for `seconds`, whatever the answers (an open loop: senders do not
 * slow down when the server does), without retries: bodies answered 429 or 503 are dropped.
 */
async function overload(
  server: ServerProcess,
  set: Bodies,
  requestsPerSecond: number,
  seconds: number,
): Promise<Overload> {
  const rssBefore = rssOf(server.pid) ?? 0;
  let maxRss = rssBefore;
  const sampler = setInterval(() => {
    maxRss = Math.max(maxRss, rssOf(server.pid) ?? 0);
  }, 50);
  let offered = 0;
  let accepted = 0;
  let refused = 0;
  let unanswered = 0;
  let firstFailure: string | undefined;
  const answers: Promise<void>[] = [];
  const began = performance.now();
  while (offered < set.bodies.length) {
    const due = Math.floor(((performance.now() - began) / 1000) * requestsPerSecond);
    if (due >= requestsPerSecond * seconds) break;
    while (offered < Math.min(due + 1, set.bodies.length)) {
      const body = set.bodies[offered++] as Uint8Array;
      answers.push(
        send(server.url, set.format, body).then(
          (sent) => {
            if (sent.status === 200) accepted += 1;
            else {
              check(sent.status === 429 || sent.status === 503, `overload answered ${sent.status}`);
              check(sent.retryAfter !== null, `a ${sent.status} without Retry-After`);
              refused += 1;
            }
          },
          (error: Error) => {
            // No answer at all: the connection failed (a client retries as for a 503).
            unanswered += 1;
            firstFailure ??= String((error.cause as Error | undefined)?.message ?? error.message);
          },
        ),
      );
    }
    await sleep(1);
  }
  const sending = (performance.now() - began) / 1000;
  await Promise.all(answers);
  clearInterval(sampler);
  return {
    seconds: sending,
    answered: (performance.now() - began) / 1000,
    offered,
    accepted,
    refused,
    unanswered,
    firstFailure,
    acceptedSpans: accepted * SPANS_PER_BODY,
    maxRss,
    rssBefore,
  };
}

/** Seconds as microseconds, or "?" where they were not measured. */
function micros(value: number | undefined): string {
  return value === undefined ? "?" : `${(value * 1e6).toFixed(2)} µs`;
}

/**
 * What the share goal asks of the CPU: spans at SHARE_GOAL of the decode-only rate leave this
 * machine's cores so much CPU time per span, for the server and the sender together.
 */
function budgetNote(protobuf: { decode: number; cpu: CpuPerSpan }): string {
  const cores = availableParallelism();
  const goalRate = SHARE_GOAL * protobuf.decode;
  const { eventLoop, otherThreads, client } = protobuf.cpu;
  const used =
    eventLoop === undefined || otherThreads === undefined
      ? undefined
      : eventLoop + otherThreads + client;
  return `CPU budget of the share goal (protobuf): ${ratio(SHARE_GOAL)} of decode-only is ${num(goalRate)} spans/s, which leaves the ${cores} cores of this machine ${micros(cores / goalRate)} of CPU per span for the server and the sender together; decoding alone takes ${micros(1 / protobuf.decode)} of it. This run used ${micros(used)} per span: ${micros(eventLoop)} on the server's event loop (decoding, recording, HTTP, DuckDB calls), ${micros(otherThreads)} on its other threads (DuckDB's work, garbage collection helpers) and ${micros(client)} in the sender.`;
}

/** POST /v1/traces end to end, against decoding the same bodies, and under overload. */
export async function runOtlp(options: BenchOptions): Promise<BenchResult> {
  const count = options.quick ? 40 : 400;
  const scratch = scratchDir("otlp");
  const rows: string[][] = [
    [
      "format",
      "body size",
      "decode only (spans/s)",
      "end to end (spans/s)",
      "share of decode",
      "429 retries",
      "runs stored",
      "CPU per span: server event loop / other threads / sender",
    ],
  ];
  const rates: Partial<Record<Format, { e2e: number; decode: number; cpu: CpuPerSpan }>> = {};
  try {
    for (const format of ["protobuf", "json"] as const) {
      options.log(`otlp: building ${count} ${format} bodies of ${SPANS_PER_BODY} spans`);
      const set = bodiesOf(format, count, format === "protobuf" ? 11 : 12);
      const decode = decodeRate(set);
      options.log(`otlp: ${format} decodes at ${num(decode)} spans/s; sending it to a server`);
      const db = join(scratch.dir, `${format}.duckdb`);
      const server = await startServer(db);
      let result: Awaited<ReturnType<typeof throughput>>;
      try {
        result = await throughput(server, set);
      } finally {
        check((await server.stop()) === 0, "the server did not exit cleanly");
      }
      const stored = await storeCounts(db);
      check(stored.spans === set.spans, `stored ${stored.spans} spans of ${set.spans}`);
      check(stored.runs === set.traces, `stored ${stored.runs} runs of ${set.traces}`);
      const size = set.bodies.reduce((n, b) => n + b.length, 0) / set.bodies.length;
      rows.push([
        format,
        bytes(size),
        num(decode),
        num(result.rate),
        ratio(result.rate / decode),
        num(result.retries),
        `${num(stored.runs)} (${num(stored.completed)} completed)`,
        [result.cpu.eventLoop, result.cpu.otherThreads, result.cpu.client].map(micros).join(" / "),
      ]);
      rates[format] = { e2e: result.rate, decode, cpu: result.cpu };
      options.log(`otlp: ${format} end to end ${num(result.rate)} spans/s`);
    }

    const seconds = options.quick ? 2 : 3;
    const protobuf = rates.protobuf;
    check(protobuf !== undefined, "the protobuf run gave no figures");
    const sustained = protobuf.e2e;
    const requestsPerSecond = (10 * sustained) / SPANS_PER_BODY;
    const overloadBodies = Math.ceil(requestsPerSecond * seconds);
    options.log(
      `otlp: overload, ${num(requestsPerSecond)} requests/s (10x what was sustained) for ${seconds} s`,
    );
    const set = bodiesOf("protobuf", overloadBodies, 13);
    const db = join(scratch.dir, "overload.duckdb");
    const server = await startServer(db);
    let load: Overload;
    try {
      load = await overload(server, set, requestsPerSecond, seconds);
    } finally {
      check((await server.stop()) === 0, "the server did not exit cleanly after the overload");
    }
    const stored = await storeCounts(db);
    const lost = load.acceptedSpans - stored.spans;
    const offeredRate = (load.offered * SPANS_PER_BODY) / load.seconds;
    const acceptedRate = load.acceptedSpans / load.answered;

    const e2e = protobuf.e2e;
    const share = e2e / protobuf.decode;
    return {
      name: "otlp",
      section: {
        title: "OTLP receiver: POST /v1/traces",
        description: `Bodies of ${SPANS_PER_BODY} spans (whole traces of a run, ${STAGES} stages and ${CALLS_PER_STAGE} LLM calls per stage, with the attributes pipelines set), sent over loopback to \`runtrail serve\` in its own process, ${CONCURRENCY} requests in flight; each answer comes once its spans and rows are committed to DuckDB. The limit is decoding the same bodies in this process (protobuf.js for protobuf, JSON.parse and the OTLP JSON mapping for JSON). The overload run sends bodies at ten times the rate the server sustained above, on a fixed schedule whatever the answers, without retries; afterwards the store is opened and its spans counted against the bodies answered 200.`,
        tables: [
          { caption: "Throughput", rows },
          {
            caption: "Overload (protobuf)",
            rows: [
              ["", "value"],
              ["offered", `${num(offeredRate)} spans/s (${num(load.offered)} requests)`],
              [
                "accepted",
                `${num(acceptedRate)} spans/s (${num(load.accepted)} requests, the last answered after ${load.answered.toFixed(1)} s)`,
              ],
              ["offered / accepted", ratio(offeredRate / Math.max(1, acceptedRate))],
              ["refused (429/503 with Retry-After)", num(load.refused)],
              [
                "no answer (the connection failed)",
                load.unanswered === 0
                  ? "0"
                  : `${num(load.unanswered)} (first: ${load.firstFailure ?? "unknown"})`,
              ],
              ["server RSS before / at most", `${bytes(load.rssBefore)} / ${bytes(load.maxRss)}`],
              ["accepted spans missing from the store", num(lost)],
            ],
          },
        ],
        goals: [
          {
            name: "protobuf spans recorded per second, end to end",
            target: `≥ ${num(SPANS_GOAL)}`,
            measured: num(e2e),
            met: e2e >= SPANS_GOAL,
          },
          {
            name: "end to end as a share of decode-only (protobuf)",
            target: `≥ ${ratio(SHARE_GOAL)}`,
            measured: ratio(share),
            met: share >= SHARE_GOAL,
          },
          {
            name: "overload: nothing accepted is lost",
            target: "0 spans",
            measured: num(lost),
            met: lost === 0,
          },
          {
            name: "overload: every request answered, the excess with 429/503",
            target: "0 unanswered",
            measured: num(load.unanswered),
            met: load.unanswered === 0,
          },
        ],
        notes: [
          budgetNote(protobuf),
          `The receiver holds at most 100,000 spans accepted and not yet written (then 429), 200,000 spans of recent traces kept to rebuild their runs, bodies of at most 16 MiB (32 MiB inflated), and writes at most 25,000 spans at a time. The server's RSS under overload is in the table; how it splits between V8's heap (spans, decoding garbage) and DuckDB's buffers is not measured yet.`,
        ],
      },
    };
  } finally {
    scratch.remove();
  }
}
