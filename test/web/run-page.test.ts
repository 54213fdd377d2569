/**
 * A run's page (`GET /runs/:id`) over a real store: runs recorded by `definePipeline` and
 * `runPipeline` through a real SDK provider and the real processor, with their artifacts and
 * snapshots next to the store; a failed run resumed into a run of cached stages; the store
 * served in-process by the real app and read as HTML.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { definePipeline } from "../../src/pipeline/define-pipeline.js";
import type { PipelineStage } from "../../src/pipeline/pipeline-stage.js";
import { runPipeline } from "../../src/pipeline/run-pipeline.js";
import type { RunRow } from "../../src/record/rows.js";
import { TokenSet } from "../../src/server/tokens.js";
import { finish, MINUTE, recorder, recordRun, sharedDir } from "../cli/_fixtures.js";
import { storedRuns } from "../helpers/store-rows.js";
import { NOW, type Served, servedPerTest } from "../server/_fixtures.js";
import { type Page, pageOf, servedCss, servedScript, withToken } from "./_fixtures.js";

const { serve } = servedPerTest();

/** A real 1x1 PNG. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
const INPUT_TEXT = "the input: <b>not bold</b> & more";
/** Over the 64 KiB a page shows of a file. */
const LONG_TEXT = `${"0123456789abcdef".repeat(5000)}THE-END`;
const EVIL = "<script>alert(1)</script>";

let db: string;
const runs: Record<string, RunRow> = {};

const control = { explode: true, flakyCalls: 0 };

const articles = definePipeline<{ url: string }, { done: boolean }>({
  name: "articles",
  module: import.meta.url,
  stages: [
    {
      name: "fetch",
      run: async (input: { url: string }, s: PipelineStage) => {
        s.rows({ in: 1, out: 3 });
        s.llmCall({ model: "m", inputTokens: 100, outputTokens: 20 });
        await s.artifact("input", INPUT_TEXT);
        await s.artifact("summary", { rows: 3, ok: true });
        await s.artifact("chart", PNG);
        await s.artifact("blob", Buffer.alloc(300, 7));
        await s.artifact("long", LONG_TEXT);
        return { url: input.url, rows: 3 };
      },
    },
    {
      name: "flaky",
      retries: 1,
      run: (input: { url: string; rows: number }) => {
        control.flakyCalls += 1;
        if (control.flakyCalls === 1) throw new Error("flaky hiccup");
        return input;
      },
    },
    {
      name: "explode",
      run: (input: { url: string; rows: number }) => {
        if (control.explode) throw new TypeError(`bad value ${EVIL}`);
        return { done: input.rows === 3 };
      },
    },
  ],
});

beforeAll(async () => {
  db = join(sharedDir(), "runs.duckdb");
  const t = recorder(db);
  const options = { tracer: t.tracer, store: db, codeRef: "c1", tenant: "acme" };
  await expect(articles.run({ url: "https://example.com/a" }, options)).rejects.toThrow(
    "bad value",
  );
  await t.processor.forceFlush();
  const failed = (await storedRuns(db)).find((r) => r.pipeline === "articles") as RunRow;
  control.explode = false;
  await articles.resume(failed.run_id, options);
  await expect(
    runPipeline(`evil${EVIL}`, { tracer: t.tracer, store: db, tenant: "globex" }, async (run) => {
      const gone = await run.artifact("gone", "a file deleted after the run");
      if (gone) rmSync(gone.path);
      await run.stage("only", () => {
        throw new Error(`message ${EVIL}`);
      });
    }),
  ).rejects.toThrow("message");
  recordRun(t, {
    pipeline: "live",
    start: NOW - MINUTE,
    stages: [
      { name: "first", ms: 1000 },
      { name: "second", ms: 1000, open: true },
    ],
    attributes: { "runtrail.run.stages_expected": 3 },
  });
  await finish(t);
  for (const run of await storedRuns(db)) {
    const name =
      run.pipeline === "articles"
        ? run.resumed_from === null
          ? "failed"
          : "resumed"
        : run.pipeline === "live"
          ? "running"
          : "evil";
    runs[name] = run;
  }
});

/** The store served with these options; the page at a path, as HTML. */
async function pages(
  options: Parameters<typeof serve>[1] = {},
): Promise<{ app: Served["app"]; get(path: string, init?: RequestInit): Promise<Page> }> {
  const { app } = await serve(db, options);
  return { app, get: (path, init) => pageOf(app, path, init) };
}

/** One page of the store served without tokens. */
async function page(path: string, options: Parameters<typeof serve>[1] = {}): Promise<Page> {
  return (await pages(options)).get(path);
}

const run = (name: string) => runs[name] as RunRow;

/** The class lists of the timeline's bars, in order. */
function bars(html: string): string[] {
  return [...html.matchAll(/<rect class="stage-bar ([a-z-]+)"/g)].map((m) => m[1] as string);
}

describe("a run's page", () => {
  it("shows a failed run: header, fields, the error with its stack, and the resume command", async () => {
    const failed = run("failed");
    expect(failed.status).toBe("failed");
    const { status, html, headers } = await page(`/runs/${failed.run_id.slice(0, 8)}`);
    expect(status).toBe(200);
    expect(headers.get("content-security-policy")).toContain("style-src 'self'");
    expect(html).not.toContain("style=");
    expect(html).toContain(
      '<h1><span>articles</span> <span class="status status-failed">failed</span></h1>',
    );
    expect(html).toContain(
      `Run <code>${failed.run_id}</code> · trace <code>${failed.trace_id}</code>`,
    );
    // No Jaeger link unless the server has Jaeger's URL.
    expect(html).not.toContain("Trace in Jaeger");
    // Fields.
    expect(html).toContain("<dt>Tenant</dt><dd>acme</dd>");
    expect(html).toContain("<dt>Code ref</dt><dd><code>c1</code></dd>");
    expect(html).toContain("<dt>Stages completed</dt><dd>2/3</dd>");
    expect(html).toContain("<dt>Failed stages</dt><dd>flaky, explode</dd>");
    expect(html).toContain("<dt>Retries</dt><dd>1</dd>");
    expect(html).toContain("<dt>LLM calls</dt><dd>1</dd>");
    expect(html).toMatch(/<dt>Tokens<\/dt><dd>120 <span class="muted">\(input 100, output 20\)/);
    expect(html).toContain("<dt>Rows in / out</dt><dd>1 / 3</dd>");
    expect(html).toMatch(/<dt>Started \(UTC\)<\/dt><dd><time datetime="[^"]+Z">/);
    expect(html).toContain(`<dt>Entry point</dt><dd><code>${import.meta.url}</code></dd>`);
    // The error: type, message (escaped), stage, stack open.
    expect(html).toContain(
      '<p class="message"><strong>TypeError</strong>: bad value &lt;script&gt;alert(1)&lt;/script&gt;</p>',
    );
    expect(html).toContain("In stage <strong>explode</strong>.");
    expect(html).toMatch(
      /<details open="" id="error-stack"><summary>Stack<\/summary><pre>TypeError: bad value &lt;script&gt;[^<]*\n\s+at /,
    );
    expect(html).not.toContain(EVIL);
    // Resumable, with the command line: it has an entry point.
    expect(html).toContain(`<code class="command">runtrail resume ${failed.run_id}</code>`);
    // Not live: finished.
    expect(html).toContain('<div id="run-content" data-live="finished">');
    expect(html).not.toContain("data-events=");
  });

  it("draws the stages on a timeline with failed attempts and retries, and lists them in a table", async () => {
    const failed = run("failed");
    const { html } = await page(`/runs/${failed.run_id}`);
    expect(html).toMatch(
      /<svg class="waterfall" role="img" aria-label="Timeline of 4 stage executions over [^"]+: 2 completed, 2 failed\. The table below lists them\."/,
    );
    expect(bars(html)).toEqual([
      "stage-completed",
      "stage-failed",
      "stage-completed",
      "stage-failed",
    ]);
    // Bars are placed by attributes, in percent of the width: no style attribute.
    expect(html).toMatch(
      /<rect class="stage-bar stage-failed" x="[\d.]+%" y="\d+" width="[\d.]+%" height="14" rx="2">/,
    );
    expect(html).toContain(">flaky (try 2)</text>");
    expect(html).toContain('<span class="swatch stage-failed" aria-hidden="true"></span>failed');
    // The same stages as a table.
    expect(html).toContain(
      "<caption>Stage executions in the order they started; start is from the run&#39;s start.</caption>",
    );
    const table = html.slice(html.indexOf('<table class="stages">'));
    const rows = table.slice(0, table.indexOf("</table>")).split("<tr>").slice(2);
    expect(rows).toHaveLength(4);
    expect(rows[1]).toMatch(
      /^<td class="num">2<\/td><td>flaky<\/td><td class="num">1<\/td><td><span class="status status-failed">failed<\/span><\/td><td class="num">\+\d+ms<\/td>/,
    );
    expect(rows[1]).toContain(
      '<td class="error" title="Error: flaky hiccup">Error: flaky hiccup</td>',
    );
    expect(rows[2]).toMatch(/^<td class="num">3<\/td><td>flaky<\/td><td class="num">2<\/td>/);
    expect(rows[0]).toContain(
      '<td class="num">1</td><td class="num">3</td><td class="num">1</td><td class="num">120<span class="muted"> (100 in, 20 out)</span>',
    );
  });

  it("shows the artifacts: text and JSON inline, images, and links to the rest", async () => {
    const failed = run("failed");
    const id = failed.run_id;
    const served = await serve(db);
    const html = await (await served.app.request(`/runs/${id}`)).text();
    const section = html.slice(html.indexOf('<section aria-labelledby="h-artifacts">'));
    expect(section).toContain('<h2 id="h-artifacts">Artifacts</h2>');
    // Text, escaped, with its media type, size and stage.
    expect(section).toContain("<pre>the input: &lt;b&gt;not bold&lt;/b&gt; &amp; more</pre>");
    expect(section).toMatch(
      /text\/plain[^<]* · 33 B · stage fetch · <a href="\/api\/runs\/[^"]+\/artifacts\/1">/,
    );
    // JSON, pretty.
    expect(section).toContain("<pre>{\n  &quot;rows&quot;: 3,\n  &quot;ok&quot;: true\n}</pre>");
    // An image by its URL, with a text alternative.
    expect(section).toContain(
      `<img src="/api/runs/${id}/artifacts/3" alt="chart (03_chart.png)" loading="lazy"/>`,
    );
    // Other bytes: a download link.
    expect(section).toContain(
      `<a href="/api/runs/${id}/artifacts/4" download="04_blob.bin">Download 04_blob.bin</a>`,
    );
    // A long text: its first 64 KiB, and a link to the whole file.
    expect(section).toContain("Showing the first 65.5 kB of 80.0 kB.");
    expect(section).toContain("0123456789abcdef");
    expect(section).not.toContain("THE-END");
    // The links work, with the page's cookie or without tokens.
    const image = await served.app.request(`/api/runs/${id}/artifacts/3`);
    expect(image.headers.get("content-type")).toBe("image/png");
  });

  it("shows a resumed run's cached stages, where it was resumed from, and no resume command", async () => {
    const failed = run("failed");
    const resumed = run("resumed");
    expect(resumed.status).toBe("completed");
    const { html } = await page(`/runs/${resumed.run_id}`);
    expect(bars(html)).toEqual(["stage-cached", "stage-cached", "stage-completed"]);
    expect(html).toContain(
      '<span class="swatch stage-cached" aria-hidden="true"></span>cached (reused, not run)',
    );
    expect(html).toContain(
      `<dt>Resumed from</dt><dd><a href="/runs/${failed.run_id}" class="mono" title="${failed.run_id}">${failed.run_id.slice(0, 8)}</a></dd>`,
    );
    expect(html).toContain(
      `<span class="status status-cached">cached</span> from <a href="/runs/${failed.run_id}"`,
    );
    // One more than the run it resumes, which retried a stage once.
    expect(html).toContain("<dt>Retries</dt><dd>2</dd>");
    expect(html).not.toContain("runtrail resume");
    expect(html).not.toContain('id="h-error"');
    expect(html).not.toContain('id="h-artifacts"');
  });

  it("links the trace in Jaeger when the server knows Jaeger's URL", async () => {
    const failed = run("failed");
    const { html } = await page(`/runs/${failed.run_id}`, {
      jaegerUrl: "http://jaeger.example:16686/",
    });
    expect(html).toContain(
      `<a href="http://jaeger.example:16686/trace/${failed.trace_id}" rel="noopener noreferrer">Trace in Jaeger</a>`,
    );
  });

  it("escapes a pipeline's name and error, and says how a run without entry point resumes", async () => {
    const evil = run("evil");
    const { html } = await page(`/runs/${evil.run_id}`);
    expect(html).not.toContain("<script>alert");
    expect(html).toContain("<title>evil&lt;script&gt;alert(1)&lt;/script&gt; run");
    expect(html).toContain("<span>evil&lt;script&gt;alert(1)&lt;/script&gt;</span>");
    expect(html).toContain("message &lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).not.toContain("runtrail resume");
    expect(html).toContain(`<code>pipeline.resume(&quot;${evil.run_id}&quot;)</code>`);
    // An artifact whose file is gone says so; the page is there all the same.
    expect(html).toContain(
      '<p class="notice">the file of artifact 1 (01_gone.txt) is gone from the store&#39;s folder',
    );
  });

  it("follows a running run: live attributes, a hint to reload, and its content alone", async () => {
    const running = run("running");
    expect(running.status).toBe("running");
    const { app, get } = await pages();
    const { html } = await get(`/runs/${running.run_id}`);
    expect(html).toContain(
      `<div id="run-content" data-live="running" data-events="/api/runs/${running.run_id}/events" data-fragment="/runs/${running.run_id}?fragment=main">`,
    );
    expect(html).toContain("reload the page to see how far it got");
    expect(html).toContain('<script src="/ui/run-live.js" defer');
    expect(bars(html)).toEqual(["stage-completed", "stage-running"]);
    // The stage it is in has no row until it ends: its bar runs from the last stage's end to now.
    expect(html).toMatch(
      /<rect class="stage-bar stage-running" [^>]+><title>second: running; its start is recorded when it ends<\/title><\/rect><text class="bar-label[^"]*" [^>]+>running<\/text>/,
    );
    expect(html).toContain(
      '<td>second</td><td class="num">-</td><td><span class="status status-running">running</span>',
    );
    expect(html).toContain("<dt>Current stage</dt><dd>second</dd>");
    expect(html).toContain("<dt>Stages completed</dt><dd>1/3</dd>");

    const fragment = await app.request(`/runs/${running.run_id}?fragment=main`);
    expect(fragment.status).toBe(200);
    expect(fragment.headers.get("x-runtrail-fragment")).toBe("main");
    const text = await fragment.text();
    expect(text.startsWith('<div id="run-content" data-live="running"')).toBe(true);
    expect(text.endsWith("</div>")).toBe(true);
    expect(text).not.toContain("<html");

    const script = await servedScript(app, "/ui/run-live.js");
    expect(script).toContain("EventSource");
    const css = await servedCss(app);
    expect(css).toContain("rect.stage-failed");
    expect(css).toContain("rect.stage-cached");
  });

  it("keeps a tenant's token to its tenant's runs", async () => {
    const tokens = TokenSet.fromText("acme-read:acme:read globex-read:globex:read");
    const failed = run("failed");
    const { get } = await pages({ tokens });
    const as = (token: string, path = `/runs/${failed.run_id}`) => get(path, withToken(token));
    expect((await as("acme-read")).status).toBe(200);
    const other = await as("globex-read");
    expect(other.status).toBe(404);
    expect(other.headers.get("content-type")).toMatch(/^text\/html/);
    expect(other.html).toContain("no run matches");
    expect((await as("globex-read", `/runs/${failed.run_id}?fragment=main`)).status).toBe(404);
    // Its artifacts too: another tenant's are not found.
    expect((await as("acme-read", `/api/runs/${failed.run_id}/artifacts/3`)).status).toBe(200);
    expect((await as("globex-read", `/api/runs/${failed.run_id}/artifacts/3`)).status).toBe(404);
    // No token: off to sign in.
    const away = await get(`/runs/${failed.run_id}`);
    expect(away.status).toBe(303);
  });
});
