/**
 * OTLP/JSON times written as JSON numbers. The mapping writes 64-bit integers as decimal
 * strings, but some senders write `"startTimeUnixNano": 1732406400123456789`, which
 * `JSON.parse` reads as the nearest double. `decodeJson` takes such a number (docs/otlp.md:
 * "64-bit integers as strings or numbers") through `BigInt(Math.trunc(value))`, so what it
 * gives is that double, cut to whole nanoseconds.
 *
 * The tolerance that leaves: between 2^60 and 2^61 ns (2006 to 2043) doubles are 256 ns apart,
 * so a time written as a number is read to within 128 ns of the exact value. The store keeps
 * microseconds (`hrTimeToMicros` floors the nanoseconds), so a number time gives the same
 * microsecond as the string, except when the exact value is within 128 ns of a whole
 * microsecond, where it may give the one before or after: within 1 µs, always.
 */

import type { HrTime } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { decodeJson, OtlpDecodeError } from "../../src/otlp/decode.js";
import type { RemoteSpan } from "../../src/otlp/remote-span.js";
import { hrTimeToMicros } from "../../src/record/span-view.js";
import { isoOfMicros } from "../../src/util/duration.js";
import {
  exitWithin,
  type Started,
  serveOnAnyPort,
  stoppedAfterEach,
} from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type HandSpan, jsonBody } from "./_bodies.js";

/** A span of {@link jsonBody}, with its times as JSON text: `"123"` for a string, `123` for a number. */
interface TimedSpan {
  span: HandSpan;
  start: string;
  end: string;
  /** The time of its `exception` event (the span must have an `error`). */
  event?: string;
}

interface JsonRequest {
  resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[];
}

/** A time as a decimal string, the way the OTLP/JSON mapping writes it. */
function str(digits: string): string {
  return JSON.stringify(digits);
}

/**
 * {@link jsonBody}'s request with the times of its spans replaced by the JSON text given:
 * `JSON.stringify` cannot write an exact 19-digit number, so the text goes in as it is.
 */
function bodyWithTimes(spans: readonly TimedSpan[]): string {
  const request = JSON.parse(jsonBody(spans.map((s) => s.span))) as JsonRequest;
  const texts: string[] = [];
  const mark = (text: string) => `@time${texts.push(text) - 1}@`;
  const written = request.resourceSpans[0]?.scopeSpans[0]?.spans ?? [];
  expect(written).toHaveLength(spans.length);
  for (const [i, timed] of spans.entries()) {
    const span = written[i] as Record<string, unknown>;
    span.startTimeUnixNano = mark(timed.start);
    span.endTimeUnixNano = mark(timed.end);
    if (timed.event !== undefined) {
      const [event] = span.events as Record<string, unknown>[];
      if (event === undefined) throw new Error("an event time for a span without an error");
      event.timeUnixNano = mark(timed.event);
    }
  }
  const body = JSON.stringify(request).replace(
    /"@time(\d+)@"/g,
    (_, i: string) => texts[Number(i)] as string,
  );
  expect(body).not.toContain("@time");
  return body;
}

const TRACE = "5b8efff798038103d269b633813fc60c";
const ROOT = "1000000000000001";

function handSpan(overrides: Partial<HandSpan> = {}): HandSpan {
  return { traceId: TRACE, spanId: ROOT, name: "nightly-etl", startMs: 0, endMs: 1, ...overrides };
}

/** The one span of a body, decoded: it must have been accepted. */
function decodedSpan(body: string): RemoteSpan {
  const decoded = decodeJson(body);
  expect(decoded.errorMessage).toBeUndefined();
  expect(decoded.rejected).toBe(0);
  expect(decoded.spans).toHaveLength(1);
  return decoded.spans[0] as RemoteSpan;
}

function nanosOf(time: HrTime): bigint {
  return BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]);
}

function hrTimeOf(nanos: bigint): [number, number] {
  return [Number(nanos / 1_000_000_000n), Number(nanos % 1_000_000_000n)];
}

/** Epoch microseconds of exact nanoseconds, floored, as the store keeps them. */
function microsOf(nanos: bigint): number {
  return Number(nanos / 1000n);
}

const TWO_60 = 2n ** 60n;
/** Half the spacing of doubles between 2^60 and 2^61: how far a number time may be off. */
const HALF_STEP = 128n;

/** Whether a time written as a number must give the microsecond of the exact value. */
function farFromMicroEdge(nanos: bigint): boolean {
  const within = nanos % 1000n;
  return within >= HALF_STEP && within < 1000n - HALF_STEP;
}

describe("decodeJson: times written as JSON numbers", () => {
  const cases = [
    // The double is exact: a multiple of 256 ns.
    { digits: "1732406400124000000", exact: true, sameMicro: true },
    // The double is 21 ns early, in the same microsecond.
    { digits: "1732406400123456789", exact: false, sameMicro: true },
    // The double (…457024) is past the next microsecond: 1 µs late.
    { digits: "1732406400123456999", exact: false, sameMicro: false },
    // The double (…002880) is before this microsecond: 1 µs early.
    { digits: "1732406400123003000", exact: false, sameMicro: false },
  ] as const;

  for (const c of cases) {
    it(`reads ${c.digits} within 128 ns of the string, ${c.sameMicro ? "the same" : "within 1"} µs`, () => {
      const exact = BigInt(c.digits);
      // The 128 ns bound holds between 2^60 and 2^61 ns.
      expect(exact >= TWO_60 && exact < 2n * TWO_60).toBe(true);
      // An exact double is the string's value: the same microsecond, at an edge or not.
      expect(c.exact || farFromMicroEdge(exact)).toBe(c.sameMicro);
      expect(BigInt(Number(c.digits)) === exact).toBe(c.exact);
      const endDigits = (exact + 5_500_000_000n).toString();

      const asString = decodedSpan(
        bodyWithTimes([{ span: handSpan(), start: str(c.digits), end: str(endDigits) }]),
      );
      const asNumber = decodedSpan(
        bodyWithTimes([{ span: handSpan(), start: c.digits, end: endDigits }]),
      );

      // A string is exact to the nanosecond.
      expect(asString.startTime).toEqual(hrTimeOf(exact));
      expect(asString.endTime).toEqual(hrTimeOf(exact + 5_500_000_000n));
      // A number is within 128 ns (exactly equal when the double is), never in milliseconds.
      for (const [number, string] of [
        [asNumber.startTime, asString.startTime],
        [asNumber.endTime, asString.endTime],
      ] as const) {
        const off = nanosOf(number) - nanosOf(string);
        expect(off >= -HALF_STEP && off <= HALF_STEP, `off by ${off} ns`).toBe(true);
        if (c.exact) expect(number).toEqual(string);
        const micros = hrTimeToMicros(number) - hrTimeToMicros(string);
        expect(Math.abs(micros)).toBeLessThanOrEqual(1);
        if (c.sameMicro) expect(micros).toBe(0);
      }
      expect(hrTimeToMicros(asString.startTime)).toBe(microsOf(exact));
    });
  }

  it("reads an exception event's time written as a number the same way", () => {
    const span = handSpan({ error: { type: "ValueError", message: "bad row 17" } });
    const times = {
      start: "1732406400123456789",
      end: "1732406405623456789",
      event: "1732406404567890321",
    };
    const asString = decodedSpan(
      bodyWithTimes([
        { span, start: str(times.start), end: str(times.end), event: str(times.event) },
      ]),
    );
    const asNumber = decodedSpan(bodyWithTimes([{ span, ...times }]));
    const exact = BigInt(times.event);
    expect(BigInt(Number(times.event)) === exact).toBe(false);
    expect(farFromMicroEdge(exact)).toBe(true);

    expect(asString.events).toHaveLength(1);
    expect(asNumber.events).toHaveLength(1);
    const fromString = asString.events[0]?.time as HrTime;
    const fromNumber = asNumber.events[0]?.time as HrTime;
    expect(asNumber.events[0]?.name).toBe("exception");
    expect(asNumber.events[0]?.attributes).toEqual({
      "exception.type": "ValueError",
      "exception.message": "bad row 17",
    });
    expect(fromString).toEqual(hrTimeOf(exact));
    const off = nanosOf(fromNumber) - exact;
    expect(off >= -HALF_STEP && off <= HALF_STEP, `off by ${off} ns`).toBe(true);
    // Its own time, not the span's start or end that stands in for a missing one.
    expect(hrTimeToMicros(fromNumber)).toBe(microsOf(exact));
  });

  it("reads 1.5e18, an integer in exponent form, exactly", () => {
    const span = decodedSpan(bodyWithTimes([{ span: handSpan(), start: "1.5e18", end: "1.6e18" }]));
    expect(span.startTime).toEqual([1_500_000_000, 0]);
    expect(span.endTime).toEqual([1_600_000_000, 0]);
  });

  it("cuts a number that is not an integer to whole nanoseconds", () => {
    // Only below 2^53 ns (April 1970) can a double have a fraction: no real time is cut.
    const cut = decodedSpan(
      bodyWithTimes([{ span: handSpan(), start: "1732406400123.5", end: "1732406400124.9" }]),
    );
    const whole = decodedSpan(
      bodyWithTimes([{ span: handSpan(), start: str("1732406400123"), end: str("1732406400124") }]),
    );
    expect(cut.startTime).toEqual([1732, 406_400_123]);
    expect(cut.endTime).toEqual([1732, 406_400_124]);
    expect(cut.startTime).toEqual(whole.startTime);
    expect(cut.endTime).toEqual(whole.endTime);
  });

  it("rejects spans whose times are negative, past 64 bits or not numbers, and keeps the rest", () => {
    const good = "1732406400123456789";
    const end = "1732406405623456789";
    const spans: TimedSpan[] = [
      { span: handSpan({ spanId: "a000000000000001" }), start: `-${good}`, end },
      { span: handSpan({ spanId: "a000000000000002" }), start: good, end: "-1" },
      { span: handSpan({ spanId: "a000000000000003" }), start: "1e20", end: "1e20" },
      { span: handSpan({ spanId: "a000000000000004" }), start: str("abc"), end },
      { span: handSpan({ spanId: "a000000000000005" }), start: good, end },
    ];
    // One at a time, for the reason each gets.
    const reasons = spans.slice(0, 4).map((s) => {
      const decoded = decodeJson(bodyWithTimes([s]));
      expect(decoded.spans).toEqual([]);
      expect(decoded.rejected).toBe(1);
      return decoded.errorMessage;
    });
    expect(reasons).toEqual([
      expect.stringMatching(/^span 0: start_time_unix_nano /),
      expect.stringMatching(/^span 0: end_time_unix_nano /),
      "span 0: a time is past the 64-bit range of OTLP times",
      expect.stringMatching(/^span 0: start_time_unix_nano /),
    ]);
    // Together: rejected span by span (a partial success), not the whole body (a 400).
    let decoded: ReturnType<typeof decodeJson> | undefined;
    expect(() => {
      decoded = decodeJson(bodyWithTimes(spans));
    }).not.toThrow(OtlpDecodeError);
    expect(decoded?.rejected).toBe(4);
    expect(decoded?.errorMessage).toMatch(/^span 0: start_time_unix_nano .*\(and 3 more spans\)$/);
    expect(decoded?.spans.map((s) => s.spanId)).toEqual(["a000000000000005"]);
    expect(hrTimeToMicros(decoded?.spans[0]?.startTime as HrTime)).toBe(microsOf(BigInt(good)));
  });

  it("puts an exception event whose time is not a time, or past the 64-bit range, at the span's start", () => {
    const span = handSpan({ error: { type: "ValueError", message: "bad row 17" } });
    for (const event of [str("abc"), "-5", "0", "1e20", "1e300", str("18446744073709551616")]) {
      const decoded = decodedSpan(
        bodyWithTimes([{ span, start: "1732406400124000000", end: "1732406405624000000", event }]),
      );
      expect(decoded.events.map((e) => e.time)).toEqual([[1_732_406_400, 124_000_000]]);
    }
  });
});

// --- through a real `runtrail serve` ------------------------------------------------------

const track = stoppedAfterEach();

/** `runtrail serve` on a port the OS chooses, once it listens. */
function serve(db: string): Promise<{ server: Started; url: string }> {
  return serveOnAnyPort(track, db);
}

async function stop(server: Started): Promise<void> {
  server.child.kill("SIGTERM");
  const finished = await exitWithin(10_000, "runtrail serve to stop", server);
  expect(finished.code, finished.stderr).toBe(0);
}

async function postJson(url: string, body: string) {
  const response = await fetch(`${url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: (await response.json()) as unknown,
  };
}

interface ApiRun {
  run_id: string;
  pipeline: string;
  status: string;
  started_at: string;
  finished_at: string | null;
  duration_seconds: number | null;
  stages: { name: string; status: string; started_at: string; duration_seconds: number | null }[];
}

describe("runtrail serve: an OTLP/JSON run whose times are numbers", () => {
  it("records the run at the times sent, to the microsecond", async () => {
    const db = tempStore();
    const { server, url } = await serve(db);
    const times = {
      runStart: 1732406400123456789n,
      runEnd: 1732406405623456789n,
      stageStart: 1732406400234567654n,
      stageEnd: 1732406404567890321n,
    };
    for (const nanos of Object.values(times)) {
      // Doubles miss each of them, but by too little to change their microsecond.
      expect(BigInt(Number(nanos)) === nanos).toBe(false);
      expect(farFromMicroEdge(nanos)).toBe(true);
    }
    const body = bodyWithTimes([
      {
        span: handSpan({ attributes: { "runtrail.pipeline.name": "nightly-etl" } }),
        start: times.runStart.toString(),
        end: times.runEnd.toString(),
      },
      {
        span: handSpan({ spanId: "2000000000000001", parentSpanId: ROOT, name: "extract" }),
        start: times.stageStart.toString(),
        end: times.stageEnd.toString(),
      },
    ]);
    expect(body).toContain(`"startTimeUnixNano":${times.runStart}`);

    const answer = await postJson(url, body);
    expect(answer).toEqual({ status: 200, contentType: "application/json", body: {} });

    const response = await fetch(`${url}/api/runs/${TRACE}`);
    expect(response.status).toBe(200);
    const run = (await response.json()) as ApiRun;
    const us = {
      runStart: microsOf(times.runStart),
      runEnd: microsOf(times.runEnd),
      stageStart: microsOf(times.stageStart),
      stageEnd: microsOf(times.stageEnd),
    };
    expect(run).toMatchObject({
      pipeline: "nightly-etl",
      status: "completed",
      // The API shows times to the millisecond, durations to the microsecond.
      started_at: "2024-11-24T00:00:00.123Z",
      finished_at: "2024-11-24T00:00:05.623Z",
    });
    expect(run.started_at).toBe(isoOfMicros(us.runStart));
    expect(run.duration_seconds).toBeCloseTo((us.runEnd - us.runStart) / 1e6, 6);
    expect(run.duration_seconds).toBeCloseTo(5.5, 6);
    expect(run.stages).toHaveLength(1);
    expect(run.stages[0]).toMatchObject({
      name: "extract",
      status: "completed",
      started_at: isoOfMicros(us.stageStart),
    });
    expect(run.stages[0]?.duration_seconds).toBeCloseTo((us.stageEnd - us.stageStart) / 1e6, 6);
    expect(run.stages[0]?.duration_seconds).toBeCloseTo(4.333323, 6);

    // The store, read once the server has let it go: the very microseconds sent.
    await stop(server);
    const [stored] = await storedRuns(db);
    expect(stored).toMatchObject({
      run_id: run.run_id,
      started_at: us.runStart,
      finished_at: us.runEnd,
    });
    const [stage] = await storedStages(db);
    expect(stage).toMatchObject({
      name: "extract",
      started_at: us.stageStart,
      finished_at: us.stageEnd,
    });
  }, 30_000);

  it("answers 200 with a partial success for spans whose times are not times", async () => {
    const db = tempStore();
    const { url } = await serve(db);
    const traces = [
      "b0000000000000000000000000000001",
      "b0000000000000000000000000000002",
      "b0000000000000000000000000000003",
      "b0000000000000000000000000000004",
    ];
    const root = (traceId: string) =>
      handSpan({ traceId, attributes: { "runtrail.pipeline.name": "nightly-etl" } });
    const end = "1732406405623456789";
    const body = bodyWithTimes([
      { span: root(traces[0] as string), start: str("abc"), end },
      { span: root(traces[1] as string), start: "-1732406400123456789", end },
      { span: root(traces[2] as string), start: "1e20", end: "1e20" },
      { span: root(traces[3] as string), start: "1732406400123456789", end },
    ]);

    const answer = await postJson(url, body);
    expect(answer).toEqual({
      status: 200,
      contentType: "application/json",
      body: {
        partialSuccess: {
          rejectedSpans: "3",
          errorMessage: expect.stringMatching(
            /^span 0: start_time_unix_nano .*\(and 2 more spans\)$/,
          ),
        },
      },
    });
    const statuses = [];
    for (const trace of traces) statuses.push((await fetch(`${url}/api/runs/${trace}`)).status);
    expect(statuses).toEqual([404, 404, 404, 200]);
    const run = (await (await fetch(`${url}/api/runs/${traces[3]}`)).json()) as ApiRun;
    expect(run).toMatchObject({ status: "completed", started_at: "2024-11-24T00:00:00.123Z" });
    expect(run.duration_seconds).toBeCloseTo(5.5, 6);
  }, 30_000);
});
