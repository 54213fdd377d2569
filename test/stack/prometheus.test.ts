/**
 * The stack's Prometheus, proven without Docker: the real `prometheus` (Debian package, as
 * promtool) runs the repo's config with its targets pointed at loopback, scrapes a real
 * runtrail server fed by the demo pipeline over OTLP, and answers every PromQL expression of
 * every dashboard panel.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { eventually } from "../helpers/eventually.js";
import { ROOT } from "../helpers/paths.js";
import { runtrail } from "../helpers/processes.js";
import { PROMTOOL } from "../helpers/promtool.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import { jsonBody } from "../otlp/_bodies.js";
import { dashboardExpressions, withVariables } from "./_dashboards.js";

const PROMETHEUS = "/usr/bin/prometheus";
const CONFIG = join(ROOT, "prometheus", "prometheus.yml");

function missing(): string | undefined {
  if (existsSync(PROMETHEUS) && existsSync(PROMTOOL)) return undefined;
  if (process.env.CI) throw new Error("prometheus is missing on CI: install the Debian package");
  return "prometheus is missing: install the Debian package prometheus to run this test";
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

interface ScrapeConfig {
  job_name: string;
  static_configs?: { targets: string[] }[];
}

/** The repo's config, scraping every second, its targets on loopback. */
function loopbackConfig(targets: Record<string, string>): string {
  const config = parse(readFileSync(CONFIG, "utf8")) as {
    global: Record<string, unknown>;
    scrape_configs: ScrapeConfig[];
  };
  config.global.scrape_interval = "1s";
  config.global.evaluation_interval = "1s";
  for (const job of config.scrape_configs) {
    for (const group of job.static_configs ?? []) {
      group.targets = group.targets.map((target) => {
        const replaced = targets[target];
        if (replaced === undefined) throw new Error(`no loopback target for ${target}`);
        return replaced;
      });
    }
  }
  return stringify(config);
}

async function query(base: string, path: string): Promise<{ status: string; data: unknown }> {
  const response = await fetch(`${base}${path}`);
  return (await response.json()) as { status: string; data: unknown };
}

const skip = missing();

describe.skipIf(skip !== undefined)("the stack's Prometheus", () => {
  let server: RunningServer;
  let prometheus: ChildProcess;
  let base: string;
  let log = "";

  beforeAll(async () => {
    server = await startServer({ db: tempStore(), port: 0, log: () => undefined });
    // Traffic: finished runs of the example pipeline, and one still running (its first span).
    const demo = await runtrail(["demo", "--otlp", server.url, "--runs", "10", "--pace", "0"]);
    expect(demo.code).toBe(0);
    const marker = await fetch(`${server.url}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: jsonBody([
        {
          traceId: "7a".repeat(16),
          spanId: "7b".repeat(8),
          parentSpanId: "7c".repeat(8),
          name: "runtrail.run.start",
          startMs: 0,
          endMs: 0,
          attributes: { "runtrail.kind": "run.start", "runtrail.pipeline.name": "nightly-etl" },
        },
      ]),
    });
    expect(marker.status).toBe(200);

    const dir = tempDir();
    const port = await freePort();
    const closed = await freePort();
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      loopbackConfig({
        "runtrail:4319": new URL(server.url).host,
        // No Collector runs here: its target stays down.
        "otel-collector:8889": `127.0.0.1:${closed}`,
      }),
    );
    mkdirSync(join(dir, "data"));
    base = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--enable-feature=exemplar-storage",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      log = (log + chunk).slice(-8000);
    });
    // A few scrapes, so that rates and increases have samples to work on.
    await eventually(async () => {
      const samples = await query(
        base,
        `/api/v1/query?query=${encodeURIComponent('count_over_time(up{job="runtrail"}[1m])')}`,
      );
      const result = (samples.data as { result: { value: [number, string] }[] }).result;
      expect(Number(result[0]?.value[1] ?? 0)).toBeGreaterThanOrEqual(4);
    }, 30_000);
  }, 120_000);

  afterAll(async () => {
    prometheus?.kill("SIGTERM");
    await server?.close();
  });

  it("passes promtool check config as it is in the repo", () => {
    const output = execFileSync(PROMTOOL, ["check", "config", CONFIG], { encoding: "utf8" });
    expect(output).toMatch(/SUCCESS/);
  });

  it("scrapes runtrail", async () => {
    const up = await query(base, `/api/v1/query?query=${encodeURIComponent('up{job="runtrail"}')}`);
    expect((up.data as { result: { value: [number, string] }[] }).result[0]?.value[1]).toBe("1");
  });

  it("answers every dashboard panel's expression with data", async () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(5);
    const empty: string[] = [];
    for (const { dashboard, panel, expr } of expressions) {
      const promql = withVariables(expr, { pipeline: ".*", tenant: ".*", interval: "1m" });
      const answer = await query(base, `/api/v1/query?query=${encodeURIComponent(promql)}`);
      expect(
        answer.status,
        `${dashboard} / ${panel}: ${promql}\n${JSON.stringify(answer)}\n${log}`,
      ).toBe("success");
      const result = (answer.data as { result: unknown[] }).result;
      if (result.length === 0) empty.push(`${dashboard} / ${panel}: ${promql}`);
    }
    expect(empty, "expressions without data").toEqual([]);
  });

  it("keeps the trace_id exemplars of run durations", async () => {
    const end = Date.now() / 1000;
    const answer = await query(
      base,
      `/api/v1/query_exemplars?query=runtrail_run_duration_seconds_bucket&start=${end - 600}&end=${end}`,
    );
    const series = answer.data as { exemplars: { labels: { trace_id?: string } }[] }[];
    const ids = series.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id));
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.every((id) => /^[0-9a-f]{32}$/.test(id ?? ""))).toBe(true);
  });
});
