import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { basename, dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { RUN_STATUSES } from "../../src/record/run-status.js";
import { startServer } from "../../src/server/serve.js";
import { currentOwner } from "../../src/store/process-owner.js";
import { claimPathOf } from "../../src/store/server-claim.js";
import { StoreError } from "../../src/store/store-errors.js";
import { wantedFileOf } from "../../src/store/store-wanted.js";
import { eventually } from "../helpers/eventually.js";
import { CLI } from "../helpers/paths.js";
import { exitWithin, runtrail, type Started, start, startFixture } from "../helpers/processes.js";
import { promtool, promtoolMissing } from "../helpers/promtool.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { recordKnownRuns } from "./_fixtures.js";

/** The most connections the system lets a listening socket queue. */
function somaxconn(): number {
  try {
    return Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
  } catch {
    return 0;
  }
}

const FINISHED = RUN_STATUSES.filter((s) => s !== "running").join(",");

/** `runtrail serve` on a port the OS chooses; resolves once it listens and holds the store. */
async function serve(db: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const server = start(
    process.execPath,
    [CLI, "serve", "--db", db, "--port", "0", "--json", ...args],
    {
      env,
    },
  );
  const line = await server.line((l) => l.startsWith("{"), 60_000);
  const { url } = JSON.parse(line) as { url: string };
  return { server, url };
}

async function stop(server: Started) {
  server.child.kill("SIGTERM");
  return server.exited;
}

async function json(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("runtrail serve", () => {
  it("serves the store, and the CLI reads through it with the same output", async () => {
    const db = tempStore();
    const { runs } = await recordKnownRuns(db);
    const ok1 = runs.ok1?.runId as string;
    const commands = [
      ["tail", "-n", "20", "--status", FINISHED],
      ["tail", "--json", "--status", FINISHED],
      ["show", ok1],
      ["show", "--json", ok1],
      ["stats", "--since", "30d"],
      ["stats", "--json", "--since", "30d", "--by", "tenant"],
    ];
    const direct = [];
    for (const args of commands) direct.push(await runtrail([...args, "--db", db]));
    const ambiguousDirect = await runtrail(["show", "aaaa", "--db", db]);

    const { server, url } = await serve(db);
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(existsSync(claimPathOf(db))).toBe(true);
      for (const [i, args] of commands.entries()) {
        const expected = direct[i];
        // Found through the store's claim, through --url, and through RUNTRAIL_URL.
        for (const [extra, env] of [
          [["--db", db], {}],
          [["--url", url], {}],
          [[], { RUNTRAIL_URL: url }],
        ] as const) {
          const through = await runtrail([...args, ...extra], { env });
          expect(through.stderr, args.join(" ")).toBe(expected?.stderr);
          expect(through.stdout, args.join(" ")).toBe(expected?.stdout);
          expect(through.code, args.join(" ")).toBe(expected?.code);
        }
      }
      const ambiguous = await runtrail(["show", "aaaa", "--db", db]);
      expect(ambiguous.code).toBe(2);
      expect(ambiguous.stderr).toBe(ambiguousDirect.stderr);
      for (const args of [
        ["prune", "--older-than", "1d"],
        ["export", "--format", "jsonl"],
        ["reap"],
      ]) {
        const needsFile = await runtrail([...args, "--db", db]);
        expect(needsFile.code, args[0]).toBe(1);
        expect(needsFile.stderr).toMatch(
          /^runtrail: the store .* is held by the runtrail server at http:\/\/127\.0\.0\.1:\d+: .*stop the server first/,
        );
        expect(needsFile.stderr.trim().split("\n")).toHaveLength(1);
        expect(needsFile.ms).toBeLessThan(5_000);
      }
      const missing = await runtrail(["show", "9999", "--db", db]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe('runtrail: no run matches "9999"\n');
    } finally {
      const exit = await stop(server);
      expect(exit.code, exit.stderr).toBe(0);
    }
    expect(existsSync(claimPathOf(db))).toBe(false);
    const unreachable = await runtrail(["tail", "--url", "http://127.0.0.1:1"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^runtrail: cannot reach the runtrail server at/);
  });

  it("takes the runs of pipelines in other processes while it holds the store", async () => {
    const db = tempStore();
    const { server, url } = await serve(db);
    try {
      const pipeline = startFixture("pipeline.ts", ["--runs", "3", "--stages", "2", "--hang"], {
        env: { RUNTRAIL_DB: db },
      });
      const hanging = (await pipeline.line((l) => l.startsWith("hanging "))).split(" ")[1];
      // A running row within a second or so of the run's start: through the spool.
      const began = Date.now();
      const live = await eventually(async () => {
        const answer = await json(`${url}/api/runs/${hanging}/status`);
        expect(answer.status, "the running run").toBe(200);
        return answer.body;
      }, 15_000);
      expect(Date.now() - began).toBeLessThan(3000);
      expect(live).toMatchObject({ status: "running", current_stage: "stage_1" });
      pipeline.child.kill("SIGKILL");
      await pipeline.exited;
      expect(pipeline.stderr()).not.toMatch(/diag warn|diag error/);

      const finishing = startFixture("pipeline.ts", ["--runs", "3", "--stages", "2"], {
        env: { RUNTRAIL_DB: db },
      });
      const done = await finishing.exited;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stderr).not.toMatch(/diag warn|diag error/);
      const completed = await eventually(async () => {
        const answer = await json(`${url}/api/runs?status=completed`);
        expect(answer.body.total, "completed runs").toBe(3);
        return answer.body;
      }, 15_000);
      expect(
        (completed.runs as { stages_completed: number }[]).every((r) => r.stages_completed === 2),
      ).toBe(true);
      // The killed pipeline's run is marked crashed by the server itself.
      await eventually(async () => {
        const answer = await json(`${url}/api/runs/${hanging}/status`);
        expect(answer.body.status, "the killed run").toBe("crashed");
      }, 30_000);

      // Counted in /metrics, with trace ids on the duration buckets for OpenMetrics scrapers.
      const open = await fetch(`${url}/metrics`, {
        headers: { accept: "application/openmetrics-text; version=1.0.0" },
      });
      expect(open.headers.get("content-type")).toMatch(/^application\/openmetrics-text/);
      const openText = await open.text();
      expect(openText).toMatch(/^runtrail_runs_total\{[^}]*status="completed"[^}]*\} 3$/m);
      expect(openText).toMatch(/^runtrail_runs_crashed_total\{pipeline="fixture"\} 1$/m);
      expect(openText).toMatch(
        /^runtrail_run_duration_seconds_bucket\{[^}]*\} \d+ # \{trace_id="[0-9a-f]{32}"\}/m,
      );
      const plain = await fetch(`${url}/metrics`);
      expect(plain.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const plainText = await plain.text();
      // Nothing runs now: the series is 0, or absent if no scrape saw the pipeline running.
      expect(plainText).not.toMatch(/^runtrail_runs_running\{pipeline="fixture"\} [1-9]/m);
      expect(plainText).toMatch(/^runtrail_stuck_runs 0$/m);
      expect(plainText).not.toContain("trace_id");
      // Requests are counted by their route's pattern, never by the run id in their path.
      expect(plainText).toMatch(
        /^runtrail_http_requests_total\{[^}]*route="\/api\/runs\/:id\/status"[^}]*\} [1-9]\d*$/m,
      );
      expect(plainText).not.toContain(hanging);
      if (promtoolMissing() === undefined) {
        expect(await promtool(plainText)).toEqual({ code: 0, output: "" });
      }
    } finally {
      const exit = await stop(server);
      expect(exit.code, exit.stderr).toBe(0);
    }
  });

  it("streams the stage changes of a live run as server-sent events", async () => {
    const db = tempStore();
    const { server, url } = await serve(db);
    try {
      const pipeline = startFixture(
        "pipeline.ts",
        ["--runs", "1", "--stages", "4", "--stage-ms", "400", "--defined"],
        { env: { RUNTRAIL_DB: db } },
      );
      const runId = (await pipeline.line((l) => l.startsWith("started "))).split(" ")[1];
      await eventually(async () => {
        expect((await fetch(`${url}/api/runs/${runId}/status`)).status, "the run").toBe(200);
      }, 15_000);
      const response = await fetch(`${url}/api/runs/${runId}/events`);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const text = await response.text();
      const events = text
        .split("\n\n")
        .filter((block) => block.includes("event:"))
        .map((block) => {
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? "{}";
          return { event, data: JSON.parse(data) as Record<string, unknown> };
        });
      const stages = events.filter((e) => e.event === "stage").map((e) => e.data);
      const completedStages = stages.filter((s) => s.status === "completed").map((s) => s.name);
      expect(completedStages).toEqual(["stage_0", "stage_1", "stage_2", "stage_3"]);
      const statuses = events.filter((e) => e.event === "status").map((e) => e.data);
      // Seen while it ran, stage by stage, then finished.
      const running = statuses.filter((s) => s.status === "running");
      expect(running.length).toBeGreaterThanOrEqual(2);
      // Progress "k/n" of the declared stages, rising while the run goes.
      const progress = running.map((s) => s.progress as string);
      expect(progress.every((p) => /^[0-3]\/4$/.test(p))).toBe(true);
      expect(new Set(progress).size).toBeGreaterThanOrEqual(2);
      expect(statuses.at(-1)).toMatchObject({ progress: "4/4" });
      expect(statuses.at(-1)).toMatchObject({ status: "completed", finished: true });
      expect(events.at(-1)?.event).toBe("end");
      await pipeline.exited;
    } finally {
      await stop(server);
    }
  });

  it("finishes requests and writes in every spooled run when stopped with SIGTERM", async () => {
    const db = tempStore();
    const { server, url } = await serve(db);
    const answers: number[] = [];
    let load = true;
    const client = (async () => {
      while (load) {
        await Promise.all(
          ["/api/stats?since=1d", "/api/runs?limit=50", "/metrics"].map(async (path) => {
            try {
              const response = await fetch(`${url}${path}`);
              await response.text();
              answers.push(response.status);
            } catch {
              // refused once the server stopped listening
            }
          }),
        );
      }
    })();
    const pipeline = startFixture(
      "pipeline.ts",
      ["--runs", "5", "--stages", "3", "--stage-ms", "5"],
      {
        env: { RUNTRAIL_DB: db },
      },
    );
    const done = await exitWithin(30_000, "the pipeline to exit", pipeline);
    expect(done.code, done.stderr).toBe(0);
    // Stopped at once: some rows are likely still in the spool, and requests are in flight.
    server.child.kill("SIGTERM");
    const exit = await exitWithin(30_000, "the server to stop", server);
    load = false;
    await client;
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.signal).toBeNull();
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.every((s) => s === 200 || s === 503)).toBe(true);
    // Stopped means stopped: no longer listening.
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    const stored = await storedRuns(db);
    expect(stored.filter((r) => r.status === "completed")).toHaveLength(5);
  });

  // The queue the server asks for is capped by the system's.
  it.skipIf(somaxconn() < 2_000)(
    "answers every exporter of a burst that came while it could not accept them",
    async () => {
      const { server, url } = await serve(tempStore());
      const { hostname, port } = new URL(url);
      const BURST = 1_500;
      // An empty export, padded with a field OTLP readers ignore to the size of a real batch.
      const body = `{"resourceSpans":[],"pad":"${"x".repeat(100_000)}"}`;
      const request = [
        "POST /v1/traces HTTP/1.1",
        "Host: runtrail",
        "Content-Type: application/json",
        `Content-Length: ${body.length}`,
        "Connection: close",
        "",
        body,
      ].join("\r\n");
      /** The status line of the answer, or the error code of a connection that got none. */
      const exportOnce = () =>
        new Promise<string>((resolve) => {
          const socket = connect(Number(port), hostname, () => socket.write(request));
          let answer = "";
          socket.setEncoding("utf8").on("data", (chunk: string) => {
            answer += chunk;
          });
          socket.on("close", () => resolve(answer.split("\r\n")[0] ?? ""));
          socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
        });
      try {
        // Stopped, the server accepts nothing: the connections and their bodies wait in the
        // kernel. Past Node's default queue of 511 they were reset once it went on.
        server.child.kill("SIGSTOP");
        const answers = Array.from({ length: BURST }, exportOnce);
        await sleep(3_000);
        server.child.kill("SIGCONT");
        const counts: Record<string, number> = {};
        for (const line of await Promise.all(answers)) counts[line] = (counts[line] ?? 0) + 1;
        expect(counts).toEqual({ "HTTP/1.1 200 OK": BURST });
      } finally {
        server.child.kill("SIGCONT");
        await stop(server);
      }
    },
    120_000,
  );

  it("refuses at once to serve a store a live server holds, and leaves that server be", async () => {
    const db = tempStore();
    const first = await serve(db);
    try {
      const claim = readFileSync(claimPathOf(db), "utf8");
      const pid = first.server.child.pid;
      expect(JSON.parse(claim)).toMatchObject({ url: first.url, pid });
      const message = `runtrail: the store ${db} is already served by the runtrail server at ${first.url} (pid ${pid}); stop it first or serve another --db\n`;

      const second = start(process.execPath, [CLI, "serve", "--db", db, "--port", "0", "--json"]);
      const refused = await exitWithin(15_000, "the second server to refuse", second);
      expect(refused.stderr).toBe(message);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe("");
      // Far from the 30 s it would wait for the file.
      expect(refused.ms).toBeLessThan(10_000);
      expect(readFileSync(claimPathOf(db), "utf8")).toBe(claim);
      expect(existsSync(wantedFileOf(db))).toBe(false);
      expect(
        readdirSync(dirname(db)).filter((f) => f.startsWith(`${basename(db)}.server`)),
      ).toEqual([`${basename(db)}.server.json`]);

      // So does the programmatic API, in this process.
      const started = Date.now();
      await expect(startServer({ db, port: 0, log: () => undefined })).rejects.toThrow(
        new StoreError("locked", message.slice("runtrail: ".length, -1)),
      );
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(readFileSync(claimPathOf(db), "utf8")).toBe(claim);

      // The first goes on serving undisturbed.
      expect((await json(`${first.url}/healthz`)).status).toBe(200);
      expect((await json(`${first.url}/readyz`)).status).toBe(200);
      const tail = await runtrail(["tail", "--db", db]);
      expect(tail.code, tail.stderr).toBe(0);
      expect(existsSync(wantedFileOf(db))).toBe(false);
    } finally {
      const exit = await stop(first.server);
      expect(exit.code, exit.stderr).toBe(0);
    }
    expect(existsSync(claimPathOf(db))).toBe(false);
  });

  it("serves a store whose claim was left by a server that is gone", async () => {
    const db = tempStore();
    const killed = await serve(db);
    killed.server.child.kill("SIGKILL");
    await killed.server.exited;
    expect(JSON.parse(readFileSync(claimPathOf(db), "utf8"))).toMatchObject({
      pid: killed.server.child.pid,
    });
    const next = await serve(db);
    try {
      expect(JSON.parse(readFileSync(claimPathOf(db), "utf8"))).toMatchObject({
        url: next.url,
        pid: next.server.child.pid,
      });
      expect((await json(`${next.url}/readyz`)).status).toBe(200);
    } finally {
      const exit = await stop(next.server);
      expect(exit.code, exit.stderr).toBe(0);
    }

    // A claim naming this very process that it did not write was left by an earlier process
    // with the same pid (pid 1 of a container that restarted): it does not count either.
    const owner = currentOwner();
    writeFileSync(
      claimPathOf(db),
      JSON.stringify({
        url: "http://127.0.0.1:1",
        host: owner.host,
        pid: owner.pid,
        processStartedAt: owner.startedAt,
      }),
    );
    const here = await startServer({ db, port: 0, log: () => undefined });
    try {
      expect(JSON.parse(readFileSync(claimPathOf(db), "utf8"))).toMatchObject({ url: here.url });
      // While it serves, a second server in this process is refused, and its claim stays.
      await expect(startServer({ db, port: 0, log: () => undefined })).rejects.toThrow(
        `is already served by the runtrail server at ${here.url} (pid ${process.pid})`,
      );
      expect(JSON.parse(readFileSync(claimPathOf(db), "utf8"))).toMatchObject({ url: here.url });
    } finally {
      await here.close();
    }
    expect(existsSync(claimPathOf(db))).toBe(false);

    // A claim from another host, as a container recreated with the store on a volume finds
    // its predecessor's: it cannot be checked, and the store's lock decides.
    writeFileSync(
      claimPathOf(db),
      JSON.stringify({
        url: "http://10.0.0.9:4319",
        host: "old-container-7f3a",
        pid: 1,
        processStartedAt: 1,
      }),
    );
    const successor = await startServer({ db, port: 0, log: () => undefined });
    try {
      expect(JSON.parse(readFileSync(claimPathOf(db), "utf8"))).toMatchObject({
        url: successor.url,
      });
    } finally {
      await successor.close();
    }
  });

  it("refuses to serve another address without tokens, unless told it is fine", async () => {
    const refused = await runtrail([
      "serve",
      "--host",
      "0.0.0.0",
      "--port",
      "0",
      "--db",
      tempStore(),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^runtrail: refusing to serve 0\.0\.0\.0 without tokens/);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);

    const badTokens = await runtrail(["serve", "--port", "0", "--db", tempStore()], {
      env: { RUNTRAIL_TOKENS: "justatoken" },
    });
    expect(badTokens.code).toBe(2);
    expect(badTokens.stderr).toMatch(/^runtrail: RUNTRAIL_TOKENS entry 1: expected/);

    const db = tempStore();
    const { server, url } = await serve(db, ["--host", "0.0.0.0", "--insecure"]);
    expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    const exit = await stop(server);
    expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({
      code: 0,
      signal: null,
    });

    const secured = await serve(tempStore(), ["--host", "0.0.0.0"], {
      RUNTRAIL_TOKENS: "s3cret:*:read",
    });
    const port = new URL(secured.url).port;
    expect((await fetch(`http://127.0.0.1:${port}/api/runs`)).status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${port}/api/runs`, {
      headers: { authorization: "Bearer s3cret" },
    });
    expect(ok.status).toBe(200);
    await stop(secured.server);
  });
});
