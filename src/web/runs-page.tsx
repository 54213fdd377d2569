import type { Hono } from "hono";
import type { Env } from "hono/types";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";

/** `GET /`: the runs. */
export function registerRunsPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/", (c) => {
    deps.readGrant(c);
    return htmlPage(
      c,
      200,
      <Layout title="Runs" section="runs">
        <h1>Runs</h1>
      </Layout>,
    );
  });
}
