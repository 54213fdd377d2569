/**
 * The runs page (`GET /`) over real stores: runs recorded through a real SDK provider and the
 * real processor, served in-process by the real app, read as HTML.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { TokenSet } from "../../src/server/tokens.js";
import {
  finish,
  HOUR,
  MINUTE,
  recorder,
  recordRun,
  runIdOfTrace,
  sharedStore,
} from "../cli/_fixtures.js";
import { tempStore } from "../helpers/temp-dir.js";
import { NOW, type Recorded, recordKnownRuns, servedPerTest } from "../server/_fixtures.js";
import { pageOf as page, servedCss, servedScript, withToken } from "./_fixtures.js";

const { serve } = servedPerTest();

let known: string;
let recorded: Recorded;

beforeAll(async () => {
  known = sharedStore();
  recorded = await recordKnownRuns(known);
});

const id = (name: string) => recorded.runs[name]?.runId as string;

/** The HTML of the rows of the runs table. */
function tbodyOf(html: string): string {
  const start = html.indexOf('<tbody id="runs-rows"');
  expect(start, "the page has the rows").toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf("</tbody>", start) + "</tbody>".length);
}

/** Run ids of the table's rows, in order. */
function rowIds(html: string): string[] {
  return [...tbodyOf(html).matchAll(/href="\/runs\/([0-9a-f-]{36})"/g)].map((m) => m[1] as string);
}

/** Statuses of the table's rows, in order. */
function rowStatuses(html: string): string[] {
  return [
    ...tbodyOf(html).matchAll(/<td class="status-cell"><span class="status status-([a-z_]+)">/g),
  ].map((m) => m[1] as string);
}

describe("the runs page", () => {
  it("lists the runs newest first in a table, with their figures and links", async () => {
    const { app } = await serve(known);
    const { status, html, headers } = await page(app, "/");
    expect(status).toBe(200);
    expect(headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(html).toContain('<a href="/" aria-current="page">Runs</a>');
    expect(rowIds(html)).toEqual(
      ["running", "cancelled", "rejected", "degraded", "failed", "ok2", "ok1", "old"].map(id),
    );
    expect(rowStatuses(html)).toEqual([
      "running",
      "cancelled",
      "rejected",
      "degraded",
      "failed",
      "completed",
      "completed",
      "completed",
    ]);
    expect(html).toMatch(/<caption>Runs, newest first: <span id="runs-total">8 of 8<\/span>/);
    expect(html.match(/<th scope="col"/g)).toHaveLength(11);
    // One row: status, pipeline, short id linking to the run, start, duration, stages k/n,
    // rows, LLM calls, tokens.
    const ok1 = id("ok1");
    const started = new Date(NOW - 5 * HOUR).toISOString();
    const row = tbodyOf(html)
      .split("<tr>")
      .find((r) => r.includes(ok1)) as string;
    expect(row).toContain(`<a href="/runs/${ok1}" title="${ok1}">${ok1.slice(0, 8)}</a>`);
    expect(row).toContain(`<time datetime="${started}">${started.slice(0, 19).replace("T", " ")}`);
    expect(row).toContain('<td class="num">4.00s</td>');
    expect(row).toContain('<td class="num">3/3</td>');
    expect(row).toContain('<td class="num">3</td><td class="num">330</td>');
    // The running run's duration so far, its progress of the stages it declared.
    const running = tbodyOf(html)
      .split("<tr>")
      .find((r) => r.includes(id("running"))) as string;
    expect(running).toMatch(/<td class="num">10m \d+s…<\/td>/);
    expect(running).toContain('<td class="num">1/4</td>');
    // The error, cut short, whole in its title.
    const failed = tbodyOf(html)
      .split("<tr>")
      .find((r) => r.includes(id("failed"))) as string;
    expect(failed).toContain('<td class="error" title="Error: disk full">Error: disk full</td>');
    // Live: the first page asks for its rows again.
    expect(html).toContain('data-live="/?fragment=rows"');
    expect(html).toContain('<script src="/ui/runs-live.js" defer');
    expect(html).not.toContain("style=");
  });

  it("filters by status, pipeline, tenant and time window, in a form that keeps them", async () => {
    const { app } = await serve(known);
    const failed = await page(app, "/?status=failed");
    expect(rowIds(failed.html)).toEqual([id("failed")]);
    expect(rowStatuses(failed.html)).toEqual(["failed"]);
    expect(failed.html).toContain(
      '<input type="checkbox" name="status" value="failed" checked=""/>',
    );
    expect(failed.html).toContain('<input type="checkbox" name="status" value="running"/>');
    expect(failed.html).toContain("1 of 1</span> matching the filters");

    const several = await page(app, "/?status=failed&status=cancelled");
    expect(rowIds(several.html)).toEqual([id("cancelled"), id("failed")]);

    const summarize = await page(app, "/?pipeline=summarize&since=");
    expect(rowIds(summarize.html)).toEqual([id("running"), id("rejected"), id("degraded")]);
    expect(summarize.html).toContain('<option value="summarize" selected="">summarize</option>');
    expect(summarize.html).toContain('<option value="ingest">ingest</option>');

    const globex = await page(app, "/?tenant=globex");
    expect(rowIds(globex.html)).toEqual([id("cancelled"), id("degraded"), id("failed")]);
    expect(globex.html).toContain('<input name="tenant" type="text" value="globex"');

    const lastHour = await page(app, "/?since=1h");
    expect(rowIds(lastHour.html)).toEqual([id("running"), id("cancelled")]);
    expect(lastHour.html).toContain('<option value="1h" selected="">Last hour</option>');
    const lastMonth = await page(app, "/?since=30d&status=completed");
    expect(rowIds(lastMonth.html)).toEqual([id("ok2"), id("ok1")]);

    const none = await page(app, "/?status=timed_out");
    expect(rowIds(none.html)).toEqual([]);
    expect(none.html).toContain("No runs match these filters.");

    for (const bad of ["/?status=finished", "/?since=yesterday", "/?cursor=nope"]) {
      const answer = await page(app, bad);
      expect(answer.status, bad).toBe(400);
      expect(answer.headers.get("content-type"), bad).toMatch(/^text\/html/);
    }
  });

  it("shows a tenant's token only its tenant's runs and pipelines, with the tenant fixed", async () => {
    const tokens = TokenSet.fromText("acme-read:acme:read all-read:*:read");
    const { app } = await serve(known, { tokens });
    const as = (token: string, path: string) => page(app, path, withToken(token));

    const acme = await as("acme-read", "/");
    expect(acme.status).toBe(200);
    expect(rowIds(acme.html)).toEqual(["running", "ok2", "ok1", "old"].map(id));
    expect(acme.html).toContain('<input name="tenant" type="text" value="acme" readonly=""');
    expect(acme.html).toContain("Your token sees this tenant only.");
    expect(acme.html).toContain("4 of 4</span>.");
    // Its rows live too, and another tenant's runs are not there to ask for.
    const fragment = await as("acme-read", "/?fragment=rows&status=failed");
    expect(rowIds(fragment.html)).toEqual([]);
    expect((await as("acme-read", "/?tenant=acme")).status).toBe(200);
    expect((await as("acme-read", "/?tenant=globex")).status).toBe(403);
    // Both of acme's pipelines, none of another tenant's only.
    expect(acme.html).toContain('<option value="ingest">ingest</option>');

    const all = await as("all-read", "/");
    expect(rowIds(all.html)).toHaveLength(8);
    expect(all.html).toContain('<input name="tenant" type="text" value="" placeholder="any"/>');

    const away = await app.request("/?status=failed");
    expect(away.status).toBe(303);
    expect(away.headers.get("location")).toBe(
      `/login?next=${encodeURIComponent("/?status=failed")}`,
    );
  });

  it("lists each tenant's pipelines only", async () => {
    const db = tempStore();
    const t = recorder(db);
    recordRun(t, {
      pipeline: "acme-only",
      start: NOW - HOUR,
      ms: 1000,
      attributes: { "runtrail.tenant.id": "acme" },
    });
    recordRun(t, {
      pipeline: "globex-only",
      start: NOW - HOUR,
      ms: 1000,
      attributes: { "runtrail.tenant.id": "globex" },
    });
    await finish(t);
    const tokens = TokenSet.fromText("acme-read:acme:read");
    const { app } = await serve(db, { tokens });
    const { html } = await page(app, "/", { headers: { authorization: "Bearer acme-read" } });
    expect(html).toContain('<option value="acme-only">acme-only</option>');
    expect(html).not.toContain("globex-only");
  });

  it("pages by 50 with an opaque cursor that keeps the filters", async () => {
    const db = tempStore();
    const t = recorder(db);
    const ids: string[] = [];
    for (let i = 0; i < 57; i++) {
      const run = recordRun(t, {
        pipeline: i % 2 === 0 ? "even" : "odd",
        start: NOW - 2 * HOUR + i * MINUTE,
        ms: 1000,
        ...(i === 0 ? { error: new Error("the oldest failed") } : {}),
      });
      ids.unshift(run.runId);
    }
    await finish(t);
    const { app } = await serve(db);

    const first = await page(app, "/");
    expect(rowIds(first.html)).toEqual(ids.slice(0, 50));
    expect(first.html).toContain("50 of 57</span>");
    const older = first.html.match(/<a href="([^"]+)" rel="next">Older runs<\/a>/)?.[1];
    expect(older).toMatch(/^\/\?cursor=[A-Za-z0-9_-]+$/);
    expect(first.html).not.toContain("Newest runs");
    const second = await page(app, (older as string).replaceAll("&amp;", "&"));
    expect(rowIds(second.html)).toEqual(ids.slice(50));
    expect(second.html).toContain("7 of 57</span>");
    expect(second.html).toContain('<a href="/">Newest runs</a>');
    expect(second.html).not.toContain("Older runs");
    // No running run on a later page: nothing changes there, so it does not ask again.
    expect(second.html).toContain('<table id="runs" class="runs">');
    expect(second.html).toContain('<tbody id="runs-rows" data-live="no"');

    // The filters stay in the link to the older page.
    const even = await page(app, "/?pipeline=even&since=7d");
    expect(rowIds(even.html)).toHaveLength(29);
    const firstEven = await page(app, "/?pipeline=even&since=7d&status=completed");
    expect(firstEven.html).toContain("28 of 28</span>");
    const oddAll = await page(app, "/?pipeline=odd&status=completed&status=failed");
    expect(oddAll.html).not.toContain("Older runs");
    const link = (await page(app, "/?status=completed&status=failed&since=7d")).html.match(
      /<a href="([^"]+)" rel="next">Older runs<\/a>/,
    )?.[1];
    expect(link).toMatch(/^\/\?status=completed&amp;status=failed&amp;since=7d&amp;cursor=/);
    const rest = await page(app, (link as string).replaceAll("&amp;", "&"));
    expect(rowIds(rest.html)).toEqual(ids.slice(50));
    expect(rowStatuses(rest.html).at(-1)).toBe("failed");
    expect(rest.html).toContain(
      '<a href="/?status=completed&amp;status=failed&amp;since=7d">Newest runs</a>',
    );
  });

  it("answers the rows alone for the live script", async () => {
    const { app } = await serve(known);
    const response = await app.request("/?status=running&fragment=rows");
    expect(response.status).toBe(200);
    expect(response.headers.get("x-runtrail-fragment")).toBe("rows");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const html = await response.text();
    expect(html.startsWith('<tbody id="runs-rows" data-live="yes" data-total-text="1 of 1">')).toBe(
      true,
    );
    expect(html.endsWith("</tbody>")).toBe(true);
    expect(html).not.toContain("<html");
    expect(rowIds(html)).toEqual([id("running")]);

    const source = await servedScript(app, "/ui/runs-live.js");
    expect(source).toContain("X-Runtrail-Fragment");
    expect(source).toContain("visibilitychange");
    const css = await servedCss(app);
    expect(css).toContain("form.filters");
  });

  it("says how to record runs when there are none", async () => {
    const { app } = await serve(tempStore());
    const { status, html } = await page(app, "/");
    expect(status).toBe(200);
    expect(html).toContain("No runs recorded yet.");
    expect(html).toContain("<code>npm start</code>");
    expect(html).toContain("<code>runtrail demo</code>");
    expect(html).toContain("0 of 0</span>");
    expect(html).toContain('<option value="">All pipelines</option></select>');
  });

  it("escapes pipeline names and errors", async () => {
    const db = tempStore();
    const t = recorder(db, { traceIds: ["eeee0000000000000000000000000042"] });
    recordRun(t, {
      pipeline: "<script>alert('pipeline')</script>",
      start: NOW - MINUTE,
      ms: 1000,
      error: new Error('<img src=x onerror="alert(1)"> and <script>alert(2)</script>'),
    });
    await finish(t);
    const { app } = await serve(db);
    const { html } = await page(app, "/");
    expect(html).not.toContain("<script>alert");
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;script&gt;alert(&#39;pipeline&#39;)&lt;/script&gt;");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(rowIds(html)).toEqual([runIdOfTrace("eeee0000000000000000000000000042")]);
  });
});
