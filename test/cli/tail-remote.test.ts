/**
 * `runtrail tail --follow` reading through a real `runtrail serve` child process instead of the
 * store file: found through the server's claim on the store, through `--url`, through
 * `RUNTRAIL_URL`; with and without tokens; stopped by Ctrl-C.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { claimPathOf } from "../../src/store/server-claim.js";
import { CLI } from "../helpers/paths.js";
import {
  exitWithin,
  type Started,
  serveOnAnyPort,
  start,
  startFixture,
  stoppedAfterEach,
} from "../helpers/processes.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import {
  fail,
  finish,
  linesOf,
  MINUTE,
  recorder,
  recordRun,
  runIdOfTrace,
  SECOND,
  short,
  span,
  wholeSecondNow,
} from "./_fixtures.js";

/** No server given by the environment the tests run in, nor a token: each test gives its own. */
const NO_REMOTE = { RUNTRAIL_URL: undefined, RUNTRAIL_TOKEN: undefined, RUNTRAIL_DB: undefined };

/** How long a follower may take to print a change: a spool ingest, a poll, a little slack. */
const PRINTED_WITHIN = 15_000;

/** Every process a test started, stopped after it whatever happened. */
const track = stoppedAfterEach();

/** `runtrail serve` on a port the OS chooses; resolves once it listens and holds the store. */
async function serve(db: string, env: NodeJS.ProcessEnv = {}) {
  const served = await serveOnAnyPort(track, db, {
    env: { ...NO_REMOTE, ...env },
    timeoutMs: 60_000,
  });
  expect(existsSync(claimPathOf(db)), "the server's claim on the store").toBe(true);
  return served;
}

/** Ctrl-C ends a follower within `ms`: exit code 0, nothing on stderr. */
async function stopsOnSigint(follower: Started, ms: number): Promise<void> {
  follower.child.kill("SIGINT");
  const exit = await exitWithin(ms, "the follower to stop on SIGINT", follower);
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(exit.stderr).toBe("");
}

/** `runtrail tail --follow` with these arguments, its output piped. */
function follow(args: readonly string[], env: NodeJS.ProcessEnv = {}): Started {
  return track(
    start(process.execPath, [CLI, "tail", "--follow", ...args], { env: { ...NO_REMOTE, ...env } }),
  );
}

/** Resolves once the follower has printed its first table (its bottom border). */
function tablePrinted(follower: Started): Promise<string> {
  return follower.line((l) => l.startsWith("└"), PRINTED_WITHIN);
}

/** The line the follower prints for a run (by the short id it starts with) in this status. */
function runLine(follower: Started, runId: string, status: string): Promise<string> {
  return follower.line((l) => l.startsWith(short(runId)) && l.includes(status), PRINTED_WITHIN);
}

/** How many lines of the follower's output are about this run. */
function linesAbout(follower: Started, runId: string): number {
  return linesOf(follower.stdout()).filter((l) => l.includes(short(runId))).length;
}

/** A store path in a fresh folder where no store is, nor any server's claim. */
function noStoreHere(): string {
  return join(tempDir(), "nothing-here.duckdb");
}

/**
 * Records, from this process, a run that is running in stage `stage`: the store is held by a
 * server, so the processor writes the rows to the spool, which the server writes in.
 */
async function startRun(db: string, pipeline: string, stage: string) {
  const t = recorder(db, { flushIntervalMs: 20 });
  const root = span(t, pipeline, Date.now());
  const open = span(t, stage, Date.now(), root);
  await t.processor.forceFlush();
  const runId = runIdOfTrace(root.spanContext().traceId);
  return {
    runId,
    /** Ends the stage and the run, failed with `error` if given, and lets go of the spool. */
    async end(error?: Error) {
      if (error) {
        fail(open, error);
        fail(root, error);
      }
      open.end();
      root.end();
      await finish(t);
    },
  };
}

describe("runtrail tail --follow through the server that holds the store", () => {
  it("reads through it with no --url: prints each new run, then again when its status changes", async () => {
    const db = tempStore();
    const before = recorder(db);
    const earlier = recordRun(before, {
      pipeline: "nightly",
      start: wholeSecondNow() - MINUTE,
      ms: 2 * SECOND,
    });
    await finish(before);
    await serve(db);

    // The file is locked by the server: the follower can show anything only through it.
    const follower = follow(["--db", db]);
    await follower.line((l) => l.includes(short(earlier.runId)), PRINTED_WITHIN);
    await tablePrinted(follower);

    const ok = await startRun(db, "remote-ok", "load");
    const bad = await startRun(db, "remote-bad", "parse");
    try {
      const okRunning = await runLine(follower, ok.runId, "running");
      expect(okRunning).toContain("remote-ok");
      expect(okRunning).toContain("load");
      const badRunning = await runLine(follower, bad.runId, "running");
      expect(badRunning).toContain("remote-bad");
      expect(badRunning).toContain("parse");
    } finally {
      await ok.end();
      await bad.end(new Error("upstream returned 503"));
    }
    const okEnded = await runLine(follower, ok.runId, "completed");
    expect(okEnded).toContain("remote-ok");
    const badEnded = await runLine(follower, bad.runId, "failed");
    expect(badEnded).toContain("remote-bad");
    // The stage it failed in.
    expect(badEnded).toContain("parse");

    // Printed once per status: the table's run never again, each new run twice.
    await sleep(2_500);
    expect(linesAbout(follower, earlier.runId)).toBe(1);
    expect(linesAbout(follower, ok.runId)).toBe(2);
    expect(linesAbout(follower, bad.runId)).toBe(2);
    expect(follower.stderr()).toBe("");
    expect(follower.child.exitCode).toBeNull();

    await stopsOnSigint(follower, 5_000);
  });

  it("stops at once on SIGINT, exiting 0 with nothing on stderr", async () => {
    const db = tempStore();
    await serve(db);
    const follower = follow(["--db", db]);
    await tablePrinted(follower);
    // A few polls of the server, then Ctrl-C at some point between or during them.
    await sleep(2_300);
    expect(follower.child.exitCode, follower.stderr()).toBeNull();
    await stopsOnSigint(follower, 3_000);
  });

  it("exits 1 with one line naming the server when the server goes away while it follows", async () => {
    const db = tempStore();
    const { server, url } = await serve(db);
    const follower = follow(["--db", db]);
    await tablePrinted(follower);
    server.child.kill("SIGTERM");
    await exitWithin(30_000, "the server to stop", server);
    const exit = await exitWithin(10_000, "the follower to give up", follower);
    expect(exit.code).toBe(1);
    expect(exit.stderr).toBe(
      `runtrail: cannot reach the runtrail server at ${url}: ECONNREFUSED\n`,
    );
  });

  // A request to a server that does not answer would otherwise be waited for until its 30 s
  // timeout, and end the follower with exit code 1.
  it("stops at once on SIGINT while the server does not answer", async () => {
    const db = tempStore();
    const { server } = await serve(db);
    const follower = follow(["--db", db]);
    await tablePrinted(follower);
    server.child.kill("SIGSTOP");
    try {
      // Past the next poll: its request is in flight, and stays so.
      await sleep(1_500);
      await stopsOnSigint(follower, 5_000);
    } finally {
      server.child.kill("SIGCONT");
    }
  });
});

describe("runtrail tail --follow through a server given by --url or RUNTRAIL_URL", () => {
  it("prints the runs a pipeline exports to the server over OTLP, with their final status", async () => {
    const { url } = await serve(tempStore());
    // Where the followers would read if they did not read through the server: nothing.
    const elsewhere = noStoreHere();
    const byOption = follow(["--url", url, "--db", elsewhere]);
    const byEnv = follow(["--db", elsewhere], { RUNTRAIL_URL: url });
    const asJson = follow(["--json", "--url", `${url}/`, "--db", elsewhere]);
    await tablePrinted(byOption);
    await tablePrinted(byEnv);
    // With --json, nothing is printed before a run starts or changes: give it a poll or two.
    await sleep(1_500);
    expect(asJson.stdout()).toBe("");
    expect(asJson.child.exitCode, asJson.stderr()).toBeNull();

    const pipeline = track(
      startFixture("otlp-pipeline.ts", ["--url", url, "--db", tempStore()], { env: NO_REMOTE }),
    );
    const sent = await pipeline.exited;
    expect(sent.code, sent.stderr).toBe(0);
    const ids = sent.stdout
      .split("\n")
      .filter((l) => l.startsWith("run "))
      .map((l) => l.slice(4));
    const [summaries, ingest, classify] = ids as [string, string, string];
    expect(ids).toHaveLength(3);

    for (const follower of [byOption, byEnv]) {
      expect(await runLine(follower, summaries, "degraded")).toContain("summaries");
      expect(await runLine(follower, ingest, "failed")).toContain("ingest");
      expect(await runLine(follower, classify, "completed")).toContain("classify");
    }
    const expected = { [summaries]: "degraded", [ingest]: "failed", [classify]: "completed" };
    const printed = await eventuallyJsonRows(asJson, (rows) =>
      Object.entries(expected).every(([id, status]) =>
        rows.some((r) => r.run_id === id && r.status === status),
      ),
    );
    // Each row as the API gives it, times as ISO text.
    for (const [id, status] of Object.entries(expected)) {
      const row = printed.filter((r) => r.run_id === id).at(-1);
      const answer = (await (await fetch(`${url}/api/runs/${id}`)).json()) as Record<
        string,
        unknown
      >;
      expect(row).toMatchObject({
        run_id: id,
        status,
        pipeline: answer.pipeline,
        started_at: answer.started_at,
        finished_at: answer.finished_at,
      });
      expect(row?.started_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    for (const follower of [byOption, byEnv, asJson]) {
      expect(follower.stderr()).toBe("");
      expect(follower.child.exitCode).toBeNull();
    }
    expect(existsSync(elsewhere)).toBe(false);
  });
});

/** The JSON rows a `--json` follower printed, once `done` holds for them. */
async function eventuallyJsonRows(
  follower: Started,
  done: (rows: RunRow[]) => boolean,
): Promise<Record<string, unknown>[]> {
  const rowsNow = () =>
    linesOf(follower.stdout()).map((l) => JSON.parse(l) as RunRow & Record<string, unknown>);
  const deadline = Date.now() + PRINTED_WITHIN;
  while (!done(rowsNow())) {
    if (Date.now() > deadline) {
      throw new Error(`not printed; stdout:\n${follower.stdout()}\nstderr:\n${follower.stderr()}`);
    }
    await sleep(100);
  }
  return rowsNow();
}

describe("runtrail tail --follow through a server with tokens", () => {
  const TOKENS = { RUNTRAIL_TOKENS: "reader-secret:*:read" };

  it("exits 1 with one line without a known token, and follows with RUNTRAIL_TOKEN", async () => {
    const db = tempStore();
    const { url } = await serve(db, TOKENS);

    for (const [token, detail, hint] of [
      ["wrong-secret", "the token is not known", "check RUNTRAIL_TOKEN"],
      [undefined, "send a token", "set RUNTRAIL_TOKEN"],
    ] as const) {
      const refused = follow(["--db", db], token === undefined ? {} : { RUNTRAIL_TOKEN: token });
      const exit = await exitWithin(15_000, `the follower with token ${token} to give up`, refused);
      expect(exit.code, exit.stderr).toBe(1);
      expect(exit.signal).toBeNull();
      expect(exit.stdout).toBe("");
      expect(linesOf(exit.stderr)).toHaveLength(1);
      expect(exit.stderr).toMatch(
        new RegExp(`^runtrail: the runtrail server at ${url} refused: .*\\(${hint}\\)\n$`),
      );
      expect(exit.stderr).toContain(detail);
      expect(exit.stderr).not.toContain("reader-secret");
    }

    const follower = follow(["--db", db], { RUNTRAIL_TOKEN: "reader-secret" });
    await tablePrinted(follower);
    const run = await startRun(db, "with-token", "load");
    try {
      expect(await runLine(follower, run.runId, "running")).toContain("with-token");
    } finally {
      await run.end();
    }
    expect(await runLine(follower, run.runId, "completed")).toContain("with-token");
    expect(follower.stderr()).toBe("");
  });
});
