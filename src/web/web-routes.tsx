import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Context, Hono } from "hono";
import type { Env } from "hono/types";
import { Layout } from "./layout.js";
import { htmlPage, TOKEN_COOKIE, type WebDeps } from "./page.js";
import { registerRunPage } from "./run-page.js";
import { registerRunsPage } from "./runs-page.js";
import { CHARTS_JS } from "./scripts/charts.js";
import { RUN_LIVE_JS } from "./scripts/run-live.js";
import { RUNS_LIVE_JS } from "./scripts/runs-live.js";
import { BASE_CSS } from "./styles/base.js";
import { RUN_CSS, RUNS_CSS } from "./styles/runs.js";
import { TRENDS_CSS } from "./styles/trends.js";
import { registerTrendsPage } from "./trends-page.js";

const require = createRequire(import.meta.url);

/** A file of a dependency, read once, when first asked for. */
function dependencyFile(specifier: string): () => string {
  let text: string | undefined;
  return () => {
    text ??= readFileSync(require.resolve(specifier), "utf8");
    return text;
  };
}

const UPLOT_JS = dependencyFile("uplot/dist/uPlot.iife.min.js");
const UPLOT_CSS = dependencyFile("uplot/dist/uPlot.min.css");

/** A file the pages load, kept by the browser for five minutes. */
function staticFile(c: Context, body: string, type: string): Response {
  c.header("Cache-Control", "public, max-age=300");
  return c.body(body, 200, { "Content-Type": type });
}

/** The pages' style sheet, `/ui/style.css`. */
const STYLE_CSS = [BASE_CSS, RUN_CSS, RUNS_CSS, TRENDS_CSS].join("\n");
/** The pages' scripts, served from `/ui/<name>`. */
const SCRIPTS = new Map([
  ["run-live.js", RUN_LIVE_JS],
  ["runs-live.js", RUNS_LIVE_JS],
  ["charts.js", CHARTS_JS],
]);

const CSS = "text/css; charset=utf-8";
const JS = "text/javascript; charset=utf-8";

/**
 * The pages at `/`: the runs, a run, the trends, and the login page when the server wants
 * tokens. Same tokens and tenants as the API: a browser gives its token once on the login page
 * and keeps it in a cookie (HttpOnly, SameSite=Strict) that the pages and their live updates
 * send.
 */
export function registerWebRoutes<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/ui/style.css", (c) => staticFile(c, STYLE_CSS, CSS));
  app.get("/ui/uplot.js", (c) => staticFile(c, UPLOT_JS(), JS));
  app.get("/ui/uplot.css", (c) => staticFile(c, UPLOT_CSS(), CSS));
  app.get("/ui/:script{[a-z-]+\\.js}", (c) => {
    const source = SCRIPTS.get(c.req.param("script"));
    if (source === undefined) return c.body("not found", 404);
    return staticFile(c, source, JS);
  });

  app.get("/login", (c) => {
    const next = safeNext(c.req.query("next"));
    const failed = c.req.query("failed") === "1";
    return htmlPage(
      c,
      failed ? 401 : 200,
      <Layout title="Sign in" section="login">
        <h1>Sign in</h1>
        {deps.tokensRequired ? (
          <form method="post" action="/login" class="login">
            {failed ? (
              <p class="notice" role="alert">
                That token is not known. Try again.
              </p>
            ) : null}
            <input type="hidden" name="next" value={next} />
            <label>
              Token
              <input name="token" type="password" autocomplete="current-password" required />
            </label>
            <button type="submit">Sign in</button>
          </form>
        ) : (
          <p>
            This server needs no token. <a href={next}>Go on</a>.
          </p>
        )}
      </Layout>,
    );
  });
  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const next = safeNext(typeof form.next === "string" ? form.next : undefined);
    if (token === "") return c.redirect(`/login?failed=1&next=${encodeURIComponent(next)}`, 303);
    const secure = c.req.url.startsWith("https:") ? "; Secure" : "";
    c.header(
      "Set-Cookie",
      `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure}`,
    );
    return c.redirect(next, 303);
  });
  app.get("/logout", (c) => {
    c.header("Set-Cookie", `${TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return c.redirect("/login", 303);
  });

  registerRunsPage(app, deps);
  registerRunPage(app, deps);
  registerTrendsPage(app, deps);
}

/** Where to go after signing in: a path of this server, never another site. */
function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/(?![/\\])/.test(next) ? next : "/";
}
