/**
 * Helpers of the pages' tests: run rows written straight into a store, pages and their files
 * asked of the app, and a browser's token cookie.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { expect } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import type { RunStatus } from "../../src/record/run-status.js";
import type { RunTrailApp } from "../../src/server/app.js";
import { withStore } from "../../src/store/open-store.js";
import { writeRows } from "../../src/store/write-rows.js";
import { TOKEN_COOKIE } from "../../src/web/page.js";
import { blankRun } from "../helpers/run-row.js";

export interface StoredRunSpec {
  pipeline: string;
  status: RunStatus;
  /** Epoch milliseconds. */
  start: number;
  /** How long a finished run took; none for a running run. */
  seconds?: number;
  tenant?: string;
  reason?: string;
  /** Epoch milliseconds of a running run's last heartbeat (a finished run's is its end). */
  heartbeat: number;
  /** The stage a running run is in. */
  stage?: string;
}

/** A run row owned on another host, so that the server leaves a running run alone. */
export function storedRun(spec: StoredRunSpec): RunRow {
  const finished = spec.status !== "running";
  const ms = (spec.seconds ?? 0) * 1000;
  return blankRun({
    run_id: randomUUID(),
    trace_id: randomBytes(16).toString("hex"),
    span_id: randomBytes(8).toString("hex"),
    pipeline: spec.pipeline,
    status: spec.status,
    tenant_id: spec.tenant ?? null,
    status_reason: spec.reason ?? null,
    started_at: spec.start * 1000,
    finished_at: finished ? (spec.start + ms) * 1000 : null,
    duration_seconds: finished ? ms / 1000 : null,
    owner_host: "elsewhere",
    owner_pid: 1,
    owner_started_at: spec.start * 1000,
    last_heartbeat: (finished ? spec.start + ms : spec.heartbeat) * 1000,
    current_stage: finished ? null : (spec.stage ?? null),
  });
}

/** Writes runs into a store by the store's own writer. */
export async function writeRuns(db: string, runs: readonly RunRow[]): Promise<void> {
  await withStore(db, (s) => writeRows(s, { runs: [], newRuns: [...runs], stages: [] }));
}

export interface Page {
  status: number;
  html: string;
  headers: Headers;
}

/** The answer to a request of the app, its body as text. */
export async function pageOf(app: RunTrailApp, path: string, init?: RequestInit): Promise<Page> {
  const response = await app.request(path, init);
  return { status: response.status, html: await response.text(), headers: response.headers };
}

/** A request with a token in the cookie the login page sets. */
export function withToken(token: string): RequestInit {
  return { headers: { cookie: `${TOKEN_COOKIE}=${token}` } };
}

/** The source of a page's script, served as JavaScript that parses. */
export async function servedScript(app: RunTrailApp, path: string): Promise<string> {
  const script = await app.request(path);
  expect(script.status, path).toBe(200);
  expect(script.headers.get("content-type"), path).toMatch(/^text\/javascript/);
  const source = await script.text();
  expect(() => new Function(source), path).not.toThrow();
  return source;
}

/** The pages' style sheet. */
export async function servedCss(app: RunTrailApp): Promise<string> {
  return (await app.request("/ui/style.css")).text();
}
