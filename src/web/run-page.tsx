import type { Hono } from "hono";
import type { Env } from "hono/types";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";

/** `GET /runs/:id`: one run. */
export function registerRunPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/runs/:id", async (c) => {
    const run = await deps.findOne(c, c.req.param("id"));
    return htmlPage(
      c,
      200,
      <Layout title={`Run ${run.run_id.slice(0, 8)}`} section="runs">
        <h1>{run.pipeline}</h1>
      </Layout>,
    );
  });
}
