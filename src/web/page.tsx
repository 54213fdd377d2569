import type { Context } from "hono";
import type { Env } from "hono/types";
import type { RunRow, StageRow } from "../record/rows.js";
import type { ServedStore } from "../server/served-store.js";
import type { Grant } from "../server/tokens.js";
import { documentOf, Layout } from "./layout.js";

/** The cookie a browser keeps its token in, once given on the login page. */
export const TOKEN_COOKIE = "runtrail_token";

/** What the pages need of the server. */
export interface WebDeps<E extends Env> {
  /** The open store; throws an `ApiError` (503) while there is none. */
  store: () => ServedStore;
  /** The request's grant, with the read scope; throws an `ApiError` (403) without it. */
  readGrant: (c: Context<E>) => Grant;
  /**
   * The run an id or prefix names, for this grant, with its stages, read together; throws an
   * `ApiError` (400, 404, 409).
   */
  findWithStages: (c: Context<E>, id: string) => Promise<{ run: RunRow; stages: StageRow[] }>;
  /** Base URL of the Jaeger UI, for links to traces. */
  jaegerUrl: string | undefined;
  /** A running run older than this is stuck. */
  stuckAfterMs: number;
  /** The server wants tokens: pages need one, from the login page's cookie. */
  tokensRequired: boolean;
}

/** Paths a browser may load without a token: the login page and the static files. */
export function isPublicWebPath(path: string): boolean {
  return path === "/login" || path === "/logout" || path.startsWith("/ui/");
}

/** The statuses a page is answered with. */
export type PageStatus = 200 | 400 | 401 | 403 | 404 | 409 | 413 | 500 | 503 | 504;

/** An HTML page as the answer. */
export async function htmlPage(
  c: Context,
  status: PageStatus,
  element: Parameters<typeof documentOf>[0],
): Promise<Response> {
  setPageHeaders(c);
  return c.html(await documentOf(element), status);
}

/**
 * The headers of every page and part of a page: scripts, styles and images from this server
 * only, no framing, no sniffing.
 */
export function setPageHeaders(c: Context): void {
  c.header(
    "Content-Security-Policy",
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  );
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "same-origin");
}

/** The page of an error, for a browser: what went wrong, and a way back. */
export function errorPage(
  c: Context,
  status: Exclude<PageStatus, 200>,
  title: string,
  detail: string,
): Promise<Response> {
  return htmlPage(
    c,
    status,
    <Layout title={title} section="error">
      <h1>{title}</h1>
      <p class="notice" role="alert">
        {detail}
      </p>
      <p>
        <a href="/">Back to the runs</a>
      </p>
    </Layout>,
  );
}

/** Whether a request is for a page (as opposed to the API or a page's files): its errors are pages too. */
export function wantsHtml(c: Context): boolean {
  const path = c.req.path;
  return (
    path === "/" ||
    path === "/trends" ||
    path.startsWith("/runs/") ||
    path === "/login" ||
    path === "/logout"
  );
}

/** The token in a request's cookie, if any. */
export function cookieToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === TOKEN_COOKIE) {
      try {
        return decodeURIComponent(value.join("=")) || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
