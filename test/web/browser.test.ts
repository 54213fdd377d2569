/**
 * The web pages in a real browser: Debian's Chromium, driven by playwright-core, against a real
 * server on a loopback port, fed the demo pipeline by a real SDK provider and processor. Each
 * page is saved as a screenshot under test-output/screenshots/ for review, and no page may log
 * an error to the console.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDemo } from "../../src/demo/demo-pipeline.js";
import { runPipeline } from "../../src/pipeline/run-pipeline.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { eventually } from "../helpers/eventually.js";
import { ROOT } from "../helpers/paths.js";
import { tempDir } from "../helpers/temp-dir.js";
import { type Traced, traced } from "../helpers/tracing.js";

const CHROMIUM = process.env.RUNTRAIL_CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "test-output", "screenshots");
const DEMO_RUNS = 12;

let server: RunningServer;
let recorder: Traced;
let browser: Browser;
let db: string;

beforeAll(async () => {
  db = join(tempDir(), "runs.duckdb");
  server = await startServer({
    db,
    port: 0,
    jaegerUrl: "http://jaeger.invalid:16686",
    log: () => undefined,
  });
  // A pipeline of this process: its processor finds the server's claim and hands rows over.
  recorder = traced({ db, flushIntervalMs: 50 });
  await runDemo({ tracer: recorder.tracer, store: db, runs: DEMO_RUNS, pace: 0 });
  await recorder.processor.forceFlush();
  await eventually(async () => {
    const page = (await (await fetch(`${server.url}/api/runs?limit=1`)).json()) as {
      total: number;
    };
    expect(page.total).toBe(DEMO_RUNS);
  }, 30_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox"],
  });
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await recorder?.provider.shutdown();
  await server?.close();
});

/** A new page that notes every console error and uncaught exception. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page: ${error.message}`));
  return { page, problems };
}

/**
 * Run in the page: the WCAG contrast ratio of the text of badges, cells, links, labels and
 * headings against the first background behind it.
 */
const CONTRAST_OF_TEXT = `(() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
  const luminance = (parts) => {
    const [r, g, b] = parts.map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const color = getComputedStyle(e).backgroundColor;
      if (color !== "rgba(0, 0, 0, 0)" && color !== "transparent") return color;
    }
    return "rgb(255, 255, 255)";
  };
  return [...document.querySelectorAll(".status, td, th, a, label, caption, h1")].map((e) => {
    const a = luminance(rgb(getComputedStyle(e).color));
    const b = luminance(rgb(background(e)));
    return { text: e.textContent.trim().slice(0, 30), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
  });
})()`;

function shot(page: Page, name: string): Promise<Buffer> {
  return page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe("the web pages in Chromium", () => {
  it("lists the runs, filters to the failed ones, and opens one with its timeline, error and artifacts", async () => {
    const { page, problems } = await openPage();
    await page.goto(`${server.url}/`);
    await expect.poll(() => page.locator("#runs-rows tr").count()).toBe(DEMO_RUNS);
    await shot(page, "runs");

    await page.getByRole("checkbox", { name: "failed", exact: true }).check();
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/[?&]status=failed/);
    const statuses = await page.locator("#runs-rows .status").allTextContents();
    // Runs 5 and 10 of the demo fail in summarize.
    expect(statuses).toEqual(["failed", "failed"]);
    await shot(page, "runs-failed");

    await page.locator("#runs-rows a[href^='/runs/']").first().click();
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    await expect.poll(() => page.locator(".run-head .status").textContent()).toBe("failed");
    const timeline = page.getByRole("img", { name: /^Timeline of 3 stage executions/ });
    expect(await timeline.isVisible()).toBe(true);
    expect(await page.locator("svg.waterfall .stage-bar.stage-failed").count()).toBe(1);
    expect(await page.locator("svg.waterfall .stage-bar.stage-completed").count()).toBe(2);
    const stack = await page.locator("#error-stack pre").textContent();
    expect(stack).toContain("RateLimitError: 429 Too Many Requests");
    expect(await page.getByRole("link", { name: "Trace in Jaeger" }).getAttribute("href")).toMatch(
      /^http:\/\/jaeger\.invalid:16686\/trace\/[0-9a-f]{32}$/,
    );
    // The error artifact is shown as JSON on the page.
    expect(
      await page.locator(".artifacts li", { hasText: "error" }).locator("pre").textContent(),
    ).toContain('"type": "RateLimitError"');
    await shot(page, "run-failed");

    // The tickets artifact, opened from its link, is its JSON file.
    const opened = page.waitForResponse((r) => /\/artifacts\/1$/.test(r.url()));
    await page.locator("#artifact-1").getByRole("link", { name: "Open the file" }).click();
    const response = await opened;
    expect(response.status()).toBe(200);
    expect(response.headers()["content-type"]).toBe("application/json");
    expect(JSON.parse(await response.text())).toMatchObject({ inbox: "billing" });
    await shot(page, "artifact");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("shows a completed run's text and image artifacts", async () => {
    const { page, problems } = await openPage();
    await page.goto(`${server.url}/?status=completed`);
    await page.locator("#runs-rows a[href^='/runs/']").first().click();
    await page.waitForURL(/\/runs\//);
    const digest = page.locator(".artifacts li", { hasText: "digest" }).locator("pre");
    expect(await digest.textContent()).toMatch(/^Support digest #\d+/);
    const image = page.getByRole("img", { name: /^batches \(\d+_batches\.png\)$/ });
    await image.scrollIntoViewIfNeeded();
    await expect
      .poll(() =>
        image.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
      )
      .toBe(240);
    await shot(page, "run-completed");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("follows a running run until it completes, without a reload", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let runId = "";
    const running = runPipeline(
      "held-open",
      { tracer: recorder.tracer, store: db, stages: 2 },
      async (run) => {
        runId = run.runId;
        await run.stage("prepare", () => sleep(20));
        await run.stage("wait", () => held);
      },
    );
    await eventually(async () => {
      expect(runId).not.toBe("");
      expect((await fetch(`${server.url}/api/runs/${runId}`)).status).toBe(200);
    }, 20_000);

    const { page, problems } = await openPage();
    await page.goto(`${server.url}/runs/${runId}`);
    expect(await page.locator(".run-head .status").textContent()).toBe("running");
    // A mark that a reload would wipe.
    await page.evaluate(() => {
      (globalThis as { stillHere?: boolean }).stillHere = true;
    });
    await shot(page, "run-running");

    release();
    await running;
    await recorder.processor.forceFlush();
    await page.locator(".run-head .status", { hasText: "completed" }).waitFor({ timeout: 30_000 });
    expect(await page.evaluate(() => (globalThis as { stillHere?: boolean }).stillHere)).toBe(true);
    expect(await page.locator("svg.waterfall .stage-bar.stage-completed").count()).toBe(2);
    await shot(page, "run-followed");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("draws the trends charts of each pipeline", async () => {
    const { page, problems } = await openPage();
    await page.goto(`${server.url}/trends`);
    const charts = page.locator(".chart canvas");
    await expect.poll(() => charts.count()).toBeGreaterThanOrEqual(2);
    expect(await page.getByRole("heading", { name: "support-digest" }).isVisible()).toBe(true);
    await shot(page, "trends");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("gives status badges and text a contrast of at least 4.5:1, light and dark, and starts the tab order with the skip link", async () => {
    for (const colorScheme of ["light", "dark"] as const) {
      const context = await browser.newContext({ colorScheme });
      const page = await context.newPage();
      await page.goto(`${server.url}/`);
      const ratios = (await page.evaluate(CONTRAST_OF_TEXT)) as { text: string; ratio: number }[];
      expect(ratios.length).toBeGreaterThan(50);
      expect(ratios.filter((r) => r.ratio < 4.5)).toEqual([]);
      await page.keyboard.press("Tab");
      expect(await page.evaluate("document.activeElement?.textContent?.trim()")).toBe(
        "Skip to content",
      );
      await shot(page, `runs-${colorScheme}`);
      await context.close();
    }
  });

  it("reads without JavaScript", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${server.url}/trends`);
    expect(await page.locator("details.numbers table").first().isVisible()).toBe(true);
    await page.goto(`${server.url}/?status=failed`);
    expect(await page.locator("#runs-rows tr").count()).toBe(2);
    await shot(page, "runs-without-javascript");
    await context.close();
  });
});
