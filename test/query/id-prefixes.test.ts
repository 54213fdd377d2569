import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { beforeAll, describe, expect, it } from "vitest";
import { RunTrailSpanProcessor } from "../../src/ingest/span-processor.js";
import { lookupRun } from "../../src/query/find-run.js";
import { distinctIdPrefixes, lookalikeRuns } from "../../src/query/id-prefixes.js";
import { listRuns } from "../../src/query/list-runs.js";
import type { RunRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import { tempStore } from "../helpers/temp-dir.js";

/** A trace whose root is a request, not a run, with three runs whose span ids differ last. */
const COUNTED = "c0c0c0c0c0c0c0c01111111111111111";
/** A trace whose root is a run, with a run nested in it. */
const HOSTED = "4a4a4a4a4a4a4a4a2222222222222222";
/** A trace whose root is a request, with two runs; one's span id begins as the trace id goes on. */
const ECHOED = "5eed5eed5eed5eed0123456789abcdef";
/** Two root runs whose ids share their first 8 digits, and a run alone. */
const TWIN_A = "deadbeef00000000000000000000aaaa";
const TWIN_B = "deadbeef11111111111111111111bbbb";
const ALONE = "0123abcd99999999999999999999cccc";

let db: string;
let runs: RunRow[];

beforeAll(async () => {
  db = tempStore();
  const traces = [COUNTED, HOSTED, ECHOED, TWIN_A, TWIN_B, ALONE];
  /** The span ids of the next runs started within a trace; others count up from e001. */
  let spanIds: string[] = [];
  let other = 0;
  const processor = new RunTrailSpanProcessor({ db });
  const provider = new BasicTracerProvider({
    spanProcessors: [processor],
    idGenerator: {
      generateTraceId: () => traces.shift() ?? "",
      generateSpanId: () => spanIds.shift() ?? (0xe000 + ++other).toString(16).padStart(16, "0"),
    },
  });
  const tracer = provider.getTracer("ids");
  const within = (parent: ReturnType<typeof tracer.startSpan>, name: string, spanId: string) => {
    spanIds = [spanId];
    tracer
      .startSpan(
        name,
        { attributes: { "runtrail.kind": "run" } },
        trace.setSpan(context.active(), parent),
      )
      .end();
  };
  // Root spans of COUNTED and ECHOED are requests: marked as neither run nor stage.
  const counted = tracer.startSpan("POST /jobs", { attributes: { "runtrail.kind": "request" } });
  for (const i of [1, 2, 3]) within(counted, `counted-${i}`, `000000000000000${i}`);
  counted.end();
  const hosted = tracer.startSpan("GET /ingest");
  within(hosted, "hosted", "9876543210fedcba");
  hosted.end();
  const echoed = tracer.startSpan("POST /echo", { attributes: { "runtrail.kind": "request" } });
  within(echoed, "echoed", "0123999900000000");
  within(echoed, "sibling", "aaaa000000000000");
  echoed.end();
  for (const name of ["twin-a", "twin-b", "alone"]) tracer.startSpan(name).end();
  await provider.shutdown();
  runs = await withStore(db, async (s) => (await listRuns(s, { limit: 100 })).runs);
});

/** The id shown of each run, by pipeline, with every run of their traces known. */
async function shownIds(listed: RunRow[]): Promise<Record<string, string>> {
  const relatives = await withStore(db, (s) =>
    lookalikeRuns(
      s,
      listed.map((r) => r.run_id),
    ),
  );
  const ids = distinctIdPrefixes(listed, [...listed, ...relatives]);
  return Object.fromEntries(listed.map((r) => [r.pipeline, ids.get(r.run_id) ?? ""]));
}

const runOf = (pipeline: string) => runs.find((r) => r.pipeline === pipeline) as RunRow;

describe("the ids shown of runs", () => {
  it("finds the runs of the traces of the runs given, and only those", async () => {
    const found = await withStore(db, (s) =>
      lookalikeRuns(s, [runOf("counted-2").run_id, runOf("GET /ingest").run_id]),
    );
    expect(found.map((r) => r.run_id).sort()).toEqual(
      ["counted-1", "counted-2", "counted-3", "GET /ingest", "hosted"]
        .map((p) => runOf(p).run_id)
        .sort(),
    );
    expect(await withStore(db, (s) => lookalikeRuns(s, []))).toEqual([]);
    // And the runs whose ids begin with the same 8 digits, of another trace.
    const twins = await withStore(db, (s) => lookalikeRuns(s, [runOf("twin-a").run_id]));
    expect(twins.map((r) => r.run_id).sort()).toEqual(
      [runOf("twin-a").run_id, runOf("twin-b").run_id].sort(),
    );
  });

  it("tells a listed run from an unlisted one whose id begins the same", async () => {
    const known = await withStore(db, (s) => lookalikeRuns(s, [runOf("twin-a").run_id]));
    const ids = distinctIdPrefixes([runOf("twin-a")], known);
    expect(ids.get(runOf("twin-a").run_id)).toBe("deadbeef-0");
  });

  it("shows each run by an id that runtrail show resolves to that run alone", async () => {
    const ids = await shownIds(runs);
    expect(Object.keys(ids)).toHaveLength(10);
    for (const run of runs) {
      const id = ids[run.pipeline] ?? "";
      expect(run.run_id.startsWith(id), run.pipeline).toBe(true);
      const found = await withStore(db, (s) => lookupRun(s, id));
      expect(found, `${run.pipeline} as ${id}`).toMatchObject({
        found: "one",
        run: { run_id: run.run_id },
      });
    }
  });

  it("shows 8 digits where they are enough, and more only where they are not", async () => {
    const ids = await shownIds(runs);
    expect(ids.alone).toBe("0123abcd");
    // Twins: the ninth digit tells them apart.
    expect(ids["twin-a"]).toBe("deadbeef-0");
    expect(ids["twin-b"]).toBe("deadbeef-1");
    // A nested run: the trace's 16 digits, then the next group of the UUID, which tells it
    // from the others of its trace.
    expect(ids.hosted).toBe("4a4a4a4a-4a4a-4a4a-9876");
    // Its span id begins as the trace id goes on (0123...): 20 digits are a prefix of the
    // trace id, which names every run of the trace; one digit more is not.
    expect(ids.echoed).toBe("5eed5eed-5eed-5eed-0123-9");
    expect(ids.sibling).toBe("5eed5eed-5eed-5eed-aaaa");
    // Span ids that differ in their last digit only.
    expect(ids["counted-1"]).toBe(runOf("counted-1").run_id);
    // A run that is the root of a trace with a run nested in it: every prefix of its id is a
    // prefix of its trace id, which names both; only its whole id names it alone.
    expect(ids["GET /ingest"]).toBe(runOf("GET /ingest").run_id);
  });

  it("tells a run from the other runs of its trace even when they are not listed", async () => {
    const ids = await shownIds([runOf("GET /ingest"), runOf("counted-2")]);
    expect(ids["GET /ingest"]).toBe(runOf("GET /ingest").run_id);
    expect(ids["counted-2"]).toBe(runOf("counted-2").run_id);
  });

  it("is 8 digits for a run of its own, with nothing else known", () => {
    const run = { run_id: "0123abcd-9999-9999-9999-99999999cccc", trace_id: ALONE };
    expect(distinctIdPrefixes([run], [])).toEqual(new Map([[run.run_id, "0123abcd"]]));
  });

  it("keeps what it knows of a run's trace when another copy of the run does not say", () => {
    // Through the server, the candidates of an ambiguous lookup may come without trace ids.
    const root = runOf("GET /ingest");
    const nested = runOf("hosted");
    const listed = [{ run_id: root.run_id, trace_id: root.trace_id }];
    const known = [
      { run_id: nested.run_id, trace_id: nested.trace_id },
      { run_id: nested.run_id, trace_id: null },
    ];
    expect(distinctIdPrefixes(listed, known).get(root.run_id)).toBe(root.run_id);
  });
});
