import { existsSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { claimPathOf } from "../../src/store/server-claim.js";
import { eventually } from "../helpers/eventually.js";
import { CLI } from "../helpers/paths.js";
import { exitWithin, runtrail, type Started, start } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { jsonBody, pythonRun } from "../otlp/_bodies.js";

/** `runtrail serve` on a port the OS chooses; resolves once it listens and holds the store. */
async function serve(db: string, args: string[] = []) {
  const server = start(process.execPath, [CLI, "serve", "--db", db, "--port", "0", ...args]);
  const line = await server.line((l) => l.startsWith("{"), 60_000);
  const { url } = JSON.parse(line) as { url: string };
  return { server, url };
}

/** The server's exit after a signal: code 0, one line on stderr, its claim on the store gone. */
async function stoppedCleanly(server: Started, db: string) {
  const exit = await exitWithin(30_000, "the server to stop", server);
  expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({ code: 0, signal: null });
  expect(exit.stderr).toBe("runtrail serve: stopping\n");
  expect(existsSync(claimPathOf(db))).toBe(false);
  return exit;
}

/** Whether a new connection to the server's address is refused: it no longer listens. */
function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/** The status of `GET path`, on a connection of its own (no pooled connection to reuse). */
function statusOf(url: string, path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { agent: false }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

/** An OTLP/JSON export of one run: its root span and one stage under it. */
function oneRun(trace: string) {
  const r = pythonRun(trace);
  return { traceId: r.traceId, body: jsonBody([r.root, r.extract]) };
}

async function postTraces(url: string, body: string): Promise<number> {
  const response = await fetch(`${url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

describe("runtrail serve, stopping", () => {
  it("finishes a request that is in flight when it gets SIGTERM", async () => {
    const db = tempStore();
    const { server, url } = await serve(db, ["--json"]);
    const { traceId, body } = oneRun("a1b2c3d4000000000000000000000001");
    const bytes = Buffer.from(body);
    const half = Math.floor(bytes.length / 2);

    const req = httpRequest(`${url}/v1/traces`, {
      method: "POST",
      agent: false,
      headers: {
        "content-type": "application/json",
        "content-length": bytes.length,
        connection: "close",
      },
    });
    const answered = new Promise<{ status: number | undefined; text: string }>(
      (resolve, reject) => {
        req.on("response", (response: IncomingMessage) => {
          let text = "";
          response.setEncoding("utf8").on("data", (chunk: string) => {
            text += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode, text }));
          response.on("error", reject);
        });
        req.on("error", reject);
      },
    );
    // Failing early (the connection cut) is reported where it is awaited, below.
    answered.catch(() => undefined);
    // The headers and the first half of the body, handed to the kernel.
    await new Promise<void>((resolve, reject) =>
      req.write(bytes.subarray(0, half), (error) => (error ? reject(error) : resolve())),
    );
    // A request on a connection made after ours is answered only once the server has read
    // what was already waiting on ours: from then on, ours is a request in flight.
    expect(await statusOf(url, "/healthz")).toBe(200);

    server.child.kill("SIGTERM");
    // It stops: no new connections, while ours stays open with half a body.
    await eventually(async () => {
      expect(server.stderr()).toContain("runtrail serve: stopping\n");
      expect(await refusesConnections(url), "new connections refused").toBe(true);
    }, 10_000);
    expect(req.destroyed).toBe(false);

    req.end(bytes.subarray(half));
    const response = await answered;
    expect(response.status, response.text).toBe(200);
    expect(JSON.parse(response.text)).toEqual({});
    const exit = await exitWithin(30_000, "the server to stop", server);
    expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({
      code: 0,
      signal: null,
    });
    expect(existsSync(claimPathOf(db))).toBe(false);

    const stored = await storedRuns(db);
    expect(stored.map((r) => ({ trace_id: r.trace_id, pipeline: r.pipeline }))).toEqual([
      { trace_id: traceId, pipeline: "nightly-etl" },
    ]);
  });

  it("stops as gracefully on SIGINT", async () => {
    const db = tempStore();
    const { server, url } = await serve(db, ["--json"]);
    const { traceId, body } = oneRun("a1b2c3d4000000000000000000000002");
    expect(await postTraces(url, body)).toBe(200);

    server.child.kill("SIGINT");
    await stoppedCleanly(server, db);
    expect(await refusesConnections(url)).toBe(true);

    // Another process opens the file at once: no lock is left, and the run was written.
    const exported = await runtrail(["export", "--format", "jsonl", "--db", db]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.ms).toBeLessThan(10_000);
    const lines = exported.stdout.trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { trace_id: string }).trace_id)).toContain(traceId);

    const stored = await storedRuns(db);
    expect(stored.map((r) => r.trace_id)).toEqual([traceId]);
  });

  it("runs the demo when started with --demo, and prints the URLs to open", async () => {
    const db = tempStore();
    const server = start(process.execPath, [CLI, "serve", "--demo", "--db", db, "--port", "0"]);
    const stop = "Stop with Ctrl-C.";
    await server.line((l) => l === stop, 60_000);
    const lines = server.stdout().split("\n");
    const web = /^ {2}web: {6}(http:\/\/127\.0\.0\.1:\d+)\/$/.exec(lines[1] ?? "");
    expect(web, server.stdout()).not.toBeNull();
    const url = web?.[1] as string;
    expect(lines.slice(0, lines.indexOf(stop) + 1)).toEqual([
      `runtrail serving ${db}`,
      `  web:      ${url}/`,
      `  API:      ${url}/api/runs`,
      `  metrics:  ${url}/metrics`,
      `  OpenAPI:  ${url}/openapi.json`,
      `  OTLP:     ${url}/v1/traces (OTLP/HTTP traces, protobuf or JSON)`,
      "  tokens:   none (open)",
      "Feeding it the demo pipeline. Open:",
      `  ${url}/                      the runs in a browser`,
      `  ${url}/api/runs?status=failed     failed runs`,
      `  ${url}/api/stats             failure rate and durations`,
      "  npm run runtrail -- tail            the same, in the terminal (reads through the server)",
      stop,
    ]);

    const demoRun = await eventually(async () => {
      const response = await fetch(`${url}/api/runs?pipeline=support-digest`);
      expect(response.status).toBe(200);
      const { runs } = (await response.json()) as { runs: { run_id: string; status: string }[] };
      expect(runs.length, "demo runs").toBeGreaterThan(0);
      return runs[0];
    }, 20_000);
    expect(["running", "completed"]).toContain(demoRun?.status);

    server.child.kill("SIGTERM");
    const exit = await stoppedCleanly(server, db);
    // Every run it said it ran is in the store, finished, written in before it stopped.
    const told = exit.stdout
      .split("\n")
      .map((l) => /^ {2}demo run ([0-9a-f]+) {2}(\w+)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ run_id: m[1], status: m[2] }));
    const stored = (await storedRuns(db)).filter((r) => r.pipeline === "support-digest");
    expect(stored.length).toBeGreaterThan(0);
    for (const run of told) {
      expect(stored.find((r) => r.run_id === run.run_id)?.status, run.run_id).toBe(run.status);
    }
    expect(stored.filter((r) => r.status === "running")).toEqual([]);
  });
});
