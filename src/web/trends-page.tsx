import type { Hono } from "hono";
import type { Env } from "hono/types";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";

/** `GET /trends`: runs, failure rate and durations over time, per pipeline. */
export function registerTrendsPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/trends", (c) => {
    deps.readGrant(c);
    return htmlPage(
      c,
      200,
      <Layout title="Trends" section="trends">
        <h1>Trends</h1>
      </Layout>,
    );
  });
}
