import { describe, expect, it } from "vitest";
import { DEFAULT_READERS } from "../../src/server/served-store.js";
import { TokenSet } from "../../src/server/tokens.js";
import { tempStore } from "../helpers/temp-dir.js";
import { servedPerTest } from "../server/_fixtures.js";
import { withToken } from "./_fixtures.js";

const { serve } = servedPerTest();

describe("the web pages' frame", () => {
  it("serves the style sheet, the charting library and pages with a restrictive policy", async () => {
    const { app } = await serve(tempStore());
    const css = await app.request("/ui/style.css");
    expect(css.headers.get("content-type")).toMatch(/^text\/css/);
    expect(await css.text()).toContain(".status-failed");
    const uplot = await app.request("/ui/uplot.js");
    expect((await uplot.text()).length).toBeGreaterThan(10_000);
    const page = await app.request("/trends");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<a href="/trends" aria-current="page">Trends</a>');
    expect((await app.request("/ui/nothing.js")).status).toBe(404);
  });

  it("answers a browser with pages for errors, and API clients with JSON as before", async () => {
    const { app } = await serve(tempStore());
    const missing = await app.request("/runs/0123456789abcdef");
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await missing.text()).toContain("no run matches &quot;0123456789abcdef&quot;");
    const bad = await app.request("/runs/zz");
    expect(bad.status).toBe(400);
    const nowhere = await app.request("/runs");
    expect(nowhere.status).toBe(404);
    const api = await app.request("/api/runs/0123456789abcdef");
    expect(api.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("answers a page that took too long with a page that says so, as the API answers 504", async () => {
    const { app, store } = await serve(tempStore(), { requestTimeoutMs: 0 });
    // Every reading connection busy, so that no answer can come before the timeout does.
    const busy = Array.from({ length: DEFAULT_READERS }, () =>
      store.read((s) => s.run("SELECT sum(range) FROM range(100000000)")),
    );
    const page = await app.request("/trends");
    expect(page.status).toBe(504);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain("the request took too long");
    const api = await app.request("/api/stats");
    expect(api.status).toBe(504);
    expect(await api.json()).toMatchObject({ error: "timeout" });
    await Promise.all(busy);
  });

  it("asks for a token on the login page and keeps it in a cookie the pages and API take", async () => {
    const tokens = TokenSet.fromText("reader-secret:*:read");
    const { app } = await serve(tempStore(), { tokens });
    const away = await app.request("/trends?x=1");
    expect(away.status).toBe(303);
    expect(away.headers.get("location")).toBe(`/login?next=${encodeURIComponent("/trends?x=1")}`);
    const login = await app.request("/login");
    expect(await login.text()).toContain('<input name="token" type="password"');
    const wrong = await app.request("/trends", withToken("nope"));
    expect(wrong.headers.get("location")).toContain("failed=1");
    const signIn = await app.request("/login", {
      method: "POST",
      body: new URLSearchParams({ token: "reader-secret", next: "/trends" }),
    });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get("location")).toBe("/trends");
    const cookie = signIn.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^runtrail_token=reader-secret; Path=\/; HttpOnly; SameSite=Strict/);
    const headers = { cookie: cookie.split(";")[0] as string };
    expect((await app.request("/trends", { headers })).status).toBe(200);
    expect((await app.request("/api/runs", { headers })).status).toBe(200);
    // Never off to another site after signing in.
    const offsite = await app.request("/login", {
      method: "POST",
      body: new URLSearchParams({ token: "reader-secret", next: "//evil.example" }),
    });
    expect(offsite.headers.get("location")).toBe("/");
    const out = await app.request("/logout");
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
  });
});
