import { describe, expect, it } from "vitest";
import { type Trends, type TrendsOptions, trends } from "../../src/query/trends.js";
import type { RunRow } from "../../src/record/rows.js";
import type { RunTrailApp } from "../../src/server/app.js";
import type { ServedStore } from "../../src/server/served-store.js";
import { TokenSet } from "../../src/server/tokens.js";
import { formatSeconds, isoOfMicros } from "../../src/util/duration.js";
import { formatPercent } from "../../src/util/format.js";
import { chartData } from "../../src/web/trends-page.js";
import { HOUR, MINUTE, SECOND } from "../cli/_fixtures.js";
import { tempStore } from "../helpers/temp-dir.js";
import { servedPerTest } from "../server/_fixtures.js";
import {
  pageOf,
  type StoredRunSpec,
  servedCss,
  servedScript,
  storedRun,
  withToken,
  writeRuns,
} from "./_fixtures.js";

const { serve } = servedPerTest();

const EVIL = "<script>x</script>";

/** A run as it started `ago` ms before now, and its tenant. */
type Spec = Omit<StoredRunSpec, "start" | "heartbeat"> & { ago: number; tenant: string };

interface Known {
  db: string;
  runs: Record<string, RunRow>;
}

/** Runs of two pipelines and two tenants, written by the store's own writer. */
async function knownStore(): Promise<Known> {
  const db = tempStore();
  const now = Date.now();
  const specs: Record<string, Spec> = {
    ok: { pipeline: "ingest", status: "completed", ago: 2 * HOUR, seconds: 2, tenant: "acme" },
    failed: {
      pipeline: "ingest",
      status: "failed",
      ago: 2 * HOUR - MINUTE,
      seconds: 4,
      tenant: "acme",
    },
    timedOut: {
      pipeline: "ingest",
      status: "timed_out",
      ago: 30 * HOUR,
      seconds: 60,
      tenant: "acme",
    },
    yesterday: {
      pipeline: "ingest",
      status: "completed",
      ago: 50 * HOUR,
      seconds: 10,
      tenant: "acme",
    },
    stuck: { pipeline: "ingest", status: "running", ago: 3 * HOUR, tenant: "acme" },
    evil: { pipeline: EVIL, status: "completed", ago: HOUR, seconds: 1.5, tenant: "globex" },
    crashed: {
      pipeline: EVIL,
      status: "crashed",
      ago: 3 * HOUR,
      seconds: 5,
      tenant: "globex",
      reason: "no heartbeat for 2m 0s <b>",
    },
  };
  // Running runs were heard from lately, and are in stage "load".
  const runs = Object.fromEntries(
    Object.entries(specs).map(([name, { ago, ...spec }]) => [
      name,
      storedRun({ ...spec, start: now - ago, heartbeat: now - 10 * SECOND, stage: "load" }),
    ]),
  );
  await writeRuns(db, Object.values(runs));
  return { db, runs };
}

/** The JSON block the page gives its charts. */
function dataOf(html: string): ReturnType<typeof chartData> {
  const match = /<script type="application\/json" id="trends-data">([^<]*)<\/script>/.exec(html);
  expect(match, "the trends-data element").not.toBeNull();
  return JSON.parse(match?.[1] ?? "null");
}

/** The rows of a section's table of numbers, as text. */
function tableRows(section: string): string[][] {
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(section)?.[1] ?? "";
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) =>
    [...(row[1] ?? "").matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((cell) =>
      (cell[1] ?? "").replace(/<[^>]+>/g, ""),
    ),
  );
}

/** The pipelines' sections of the page, by their headings' text (still HTML-escaped). */
function sectionsOf(html: string): Map<string, string> {
  const sections = new Map<string, string>();
  for (const m of html.matchAll(/<section class="trend"[\s\S]*?<\/section>/g)) {
    const heading = /<h2 id="pipeline-\d+">([\s\S]*?)<\/h2>/.exec(m[0])?.[1] ?? "";
    sections.set(heading, m[0]);
  }
  return sections;
}

/**
 * The page and the query's answer at (nearly) the same moment: asked again if a bucket boundary
 * passed between the two, so that both have the same buckets.
 */
async function pageAndTrends(
  app: RunTrailApp,
  store: ServedStore,
  path: string,
  options: Omit<TrendsOptions, "stuckAfterMs">,
  init: RequestInit = {},
): Promise<{ html: string; expected: Trends }> {
  for (let attempt = 0; ; attempt++) {
    const { status, html } = await pageOf(app, path, init);
    expect(status).toBe(200);
    const expected = await store.read((s) => trends(s, { ...options, stuckAfterMs: HOUR }));
    if (dataOf(html).since === isoOfMicros(expected.since) || attempt === 2) {
      return { html, expected };
    }
  }
}

describe("the trends page", () => {
  it("shows each pipeline with the query's numbers, in tables and for the charts", async () => {
    const { db, runs } = await knownStore();
    const { app, store } = await serve(db);
    const { html, expected } = await pageAndTrends(app, store, "/trends", { window: "7d" });

    const sections = sectionsOf(html);
    expect([...sections.keys()]).toEqual(["&lt;script&gt;x&lt;/script&gt;", "ingest"]);
    for (const trend of expected.pipelines) {
      const heading = trend.pipeline === EVIL ? "&lt;script&gt;x&lt;/script&gt;" : trend.pipeline;
      const section = sections.get(heading);
      expect(section, trend.pipeline).toBeDefined();
      expect(section).toContain("<figcaption>Runs and failure rate</figcaption>");
      expect(section).toContain("<figcaption>Duration p50 / p95</figcaption>");
      expect(section).toMatch(
        /<div class="chart" data-chart="runs" data-index="\d" role="img" aria-label="Bar chart of runs per 6 hours/,
      );
      expect(section).toMatch(
        /data-chart="duration" data-index="\d" role="img" aria-label="Line chart of the p50 and p95/,
      );
      const rows = tableRows(section ?? "");
      expect(rows).toEqual(
        trend.buckets.map((b) => [
          `${isoOfMicros(b.start).slice(0, 10)} ${isoOfMicros(b.start).slice(11, 16)}`,
          String(b.runs),
          String(b.failed),
          b.failureRate === null ? "–" : formatPercent(b.failureRate),
          b.p50Seconds === null ? "–" : formatSeconds(b.p50Seconds),
          b.p95Seconds === null ? "–" : formatSeconds(b.p95Seconds),
        ]),
      );
      expect(section).toContain(`datetime="${isoOfMicros(trend.buckets[0]?.start ?? 0)}"`);
    }
    const ingest = expected.pipelines.find((p) => p.pipeline === "ingest");
    expect(ingest?.totals).toMatchObject({ runs: 5, finished: 4, failed: 2, failureRate: 0.5 });
    expect(sections.get("ingest")).toContain("5 runs, 2 failed (50.0% of 4 finished)");
    expect(html).toContain("Failed, crashed and timed-out runs count as failures");

    // The charts' numbers are the query's, bucket by bucket.
    const data = dataOf(html);
    const { until: _until, ...rest } = chartData(expected);
    expect(data).toMatchObject(rest);
    expect(data.pipelines.map((p) => p.name)).toEqual([EVIL, "ingest"]);
    const ingestData = data.pipelines.find((p) => p.name === "ingest");
    expect(ingestData?.runs.reduce((a, b) => a + b, 0)).toBe(5);
    expect(ingestData?.x[1]).toBe((ingestData?.x[0] ?? 0) + 6 * 3600);

    // Stuck and crashed runs, linked to their pages.
    const stuck = /<h2 id="stuck-runs">[\s\S]*?<\/section>/.exec(html)?.[0] ?? "";
    expect(stuck).toContain("<caption>");
    expect(stuck).toContain(`<a class="mono" href="/runs/${runs.stuck?.run_id}">`);
    expect(stuck).toContain("load");
    const crashed = /<h2 id="crashed-runs">[\s\S]*?<\/section>/.exec(html)?.[0] ?? "";
    expect(crashed).toContain(`href="/runs/${runs.crashed?.run_id}"`);
    expect(crashed).toContain("no heartbeat for 2m 0s &lt;b&gt;");
    expect(crashed).not.toContain(runs.stuck?.run_id);
  });

  it("loads uPlot and the charts' script from the server, and works without them", async () => {
    const { db } = await knownStore();
    const { app } = await serve(db);
    const { html } = await pageOf(app, "/trends");
    expect(html).toContain('<link rel="stylesheet" href="/ui/uplot.css"/>');
    expect(html).toContain('<script src="/ui/uplot.js" defer=""></script>');
    expect(html).toContain('<script src="/ui/charts.js" defer=""></script>');
    expect(html.indexOf("/ui/uplot.js")).toBeLessThan(html.indexOf("/ui/charts.js"));
    // Nothing inline but the data block, which is not run; no style attributes.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toEqual([
      '<script type="application/json" id="trends-data">',
    ]);
    expect(html).not.toMatch(/\sstyle=/);
    // The numbers are open until the script draws the charts.
    expect(html).toContain('<details class="numbers" open="">');

    const source = await servedScript(app, "/ui/charts.js");
    expect(source).toContain("new uPlot(");
    expect(source).toContain('getElementById("trends-data")');
    const css = await servedCss(app);
    expect(css).toContain("--chart-runs");
    expect(css).toContain(".charts-on .trend-charts");
  });

  it("escapes a pipeline's name in the text, the options and the data block", async () => {
    const { db } = await knownStore();
    const { app } = await serve(db);
    const { html } = await pageOf(app, "/trends");
    expect(html).not.toContain(EVIL);
    expect(html).toContain('<h2 id="pipeline-0">&lt;script&gt;x&lt;/script&gt;</h2>');
    expect(html).toContain('<option value="&lt;script&gt;x&lt;/script&gt;">');
    expect(html).toContain("\\u003cscript\\u003ex\\u003c/script\\u003e");
    expect(dataOf(html).pipelines[0]?.name).toBe(EVIL);
    // Asked for by name, it is the only section, and the select keeps it.
    const { html: one } = await pageOf(app, `/trends?pipeline=${encodeURIComponent(EVIL)}`);
    expect([...sectionsOf(one).keys()]).toEqual(["&lt;script&gt;x&lt;/script&gt;"]);
    expect(one).toContain('<option value="&lt;script&gt;x&lt;/script&gt;" selected="">');
    expect(one).toContain("None: no run has been running");
  });

  it("takes a window, says when there is nothing, and refuses an unknown one", async () => {
    const { db } = await knownStore();
    const { app, store } = await serve(db);
    const { html, expected } = await pageAndTrends(app, store, "/trends?window=24h", {
      window: "24h",
    });
    expect(html).toContain('<option value="24h" selected="">');
    expect(expected.pipelines.find((p) => p.pipeline === "ingest")?.totals.runs).toBe(3);
    expect(sectionsOf(html).get("ingest")).toContain("3 runs, 1 failed");
    expect(tableRows(sectionsOf(html).get("ingest") ?? "")).toHaveLength(25);
    expect(html).toContain("Hour from (UTC)");
    const { html: month } = await pageOf(app, "/trends?window=30d");
    expect(month).toContain("Day (UTC)");
    expect(tableRows(sectionsOf(month).get("ingest") ?? "")).toHaveLength(31);

    const { html: nothing } = await pageOf(app, "/trends?pipeline=nowhere");
    expect(nothing).toContain("No runs of nowhere started in the last 7 days.");
    expect(nothing).toContain("None: no run that started in the last 7 days crashed.");
    expect(nothing).toContain('<option value="nowhere" selected="">');

    const bad = await pageOf(app, "/trends?window=1y");
    expect(bad.status).toBe(400);
    expect(bad.html).toContain("window: &quot;1y&quot; is not one of 24h, 7d, 30d");
  });

  it("shows a tenant's token its tenant's runs only", async () => {
    const { db, runs } = await knownStore();
    const tokens = TokenSet.fromText("acme-reader:acme:read all-reader:*:read");
    const { app, store } = await serve(db, { tokens });
    const { html, expected } = await pageAndTrends(
      app,
      store,
      "/trends",
      { window: "7d", tenant: "acme" },
      withToken("acme-reader"),
    );
    expect([...sectionsOf(html).keys()]).toEqual(["ingest"]);
    expect(html).not.toContain("&lt;script&gt;");
    expect(html).not.toContain(runs.crashed?.run_id);
    expect(html).toContain(runs.stuck?.run_id);
    expect(html).toContain("None: no run that started in the last 7 days crashed.");
    const { until: _until, ...rest } = chartData(expected);
    expect(dataOf(html)).toMatchObject(rest);

    const everyone = await pageOf(app, "/trends", withToken("all-reader"));
    expect([...sectionsOf(everyone.html).keys()]).toEqual([
      "&lt;script&gt;x&lt;/script&gt;",
      "ingest",
    ]);
  });
});
