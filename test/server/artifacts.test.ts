/**
 * The artifact endpoints over a real server: runs recorded through a real SDK provider and the
 * real processor, their artifacts written by `runPipeline` next to a temporary store, then the
 * store served on a port of 127.0.0.1 and read with `fetch` (and `node:http`, for paths that
 * `fetch` would tidy up before sending).
 */

import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPipeline } from "../../src/pipeline/run-pipeline.js";
import type { ArtifactRow } from "../../src/record/rows.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { TokenSet } from "../../src/server/tokens.js";
import { artifactFolderOf } from "../../src/store/store-files.js";
import { sha256 } from "../helpers/artifact-files.js";
import { tempDir } from "../helpers/temp-dir.js";
import { traced } from "../helpers/tracing.js";

/** A real 1x1 PNG. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);

/** A real WAV: 8 samples of 16-bit mono silence at 8 kHz. */
function wav(): Buffer {
  const samples = Buffer.alloc(16);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + samples.length, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(8000, 24);
  header.writeUInt32LE(16000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(samples.length, 40);
  return Buffer.concat([header, samples]);
}

/** 300 KB of random bytes that no signature matches: application/octet-stream. */
const BLOB = randomBytes(300 * 1024);
BLOB.fill(0, 0, 16);

const SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';
const HTML = "<!doctype html><script>alert(1)</script>";
const FIRST_INPUT = "first input: the words of the first input";
const SECOND_INPUT = "second input: the words of the second input";
const GLOBEX_TEXT = "globex-only text";
/** Text of the artifacts whose files the tests replace or delete. */
const LINKED_TEXT = "linked-run text";

let dir: string;
let db: string;
let server: RunningServer;
const logged: string[] = [];
const ids: Record<string, string> = {};

beforeAll(async () => {
  dir = tempDir();
  db = join(dir, "runs.duckdb");
  const { processor, provider, tracer } = traced({ db });
  ids.main = await runPipeline("artifacts", { tracer, store: db, tenant: "acme" }, async (run) => {
    await run.artifact("input", FIRST_INPUT, { source: "test" });
    await run.stage("transform", async (s) => {
      await s.artifact("summary", { rows: 3, ok: true });
      await s.artifact("chart", PNG);
      await s.artifact("audio", wav());
      await s.artifact("blob", BLOB);
      await s.errorArtifact(new Error("x"), { detail: 1 });
      await s.artifact("drawing", SVG, undefined, { mediaType: "image/svg+xml" });
      await s.artifact("page", HTML, undefined, { mediaType: "text/html" });
    });
    await run.artifact("input", SECOND_INPUT);
    return run.runId;
  });
  ids.empty = await runPipeline("artifacts", { tracer, store: db, tenant: "acme" }, (run) =>
    Promise.resolve(run.runId),
  );
  ids.globex = await runPipeline("artifacts", { tracer, store: db, tenant: "globex" }, (run) =>
    run.artifact("note", GLOBEX_TEXT).then(() => run.runId),
  );
  for (const name of ["gone", "linked", "linkedOut", "linkedFolder"]) {
    ids[name] = await runPipeline("artifacts", { tracer, store: db, tenant: "acme" }, (run) =>
      run.artifact("input", LINKED_TEXT).then(() => run.runId),
    );
  }
  await processor.forceFlush();
  await provider.shutdown();
  server = await startServer({
    db,
    port: 0,
    tokens: TokenSet.fromText("all-read:*:read, acme-read:acme:read, ingest-only:*:ingest"),
    log: (message) => logged.push(message),
  });
});

afterAll(async () => {
  await server?.close();
});

const auth = (token = "all-read") => ({ authorization: `Bearer ${token}` });

async function get(path: string, token?: string, method = "GET") {
  const response = await fetch(`${server.url}${path}`, { method, headers: auth(token) });
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes, text: bytes.toString() };
}

async function getJson(path: string, token?: string) {
  const { status, headers, text } = await get(path, token);
  return { status, headers, body: JSON.parse(text) as Record<string, unknown> };
}

/** A GET with the path sent exactly as given, `..` and all. */
function rawGet(path: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers: auth() }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("latin1") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

type Listed = ArtifactRow & { url: string };

async function listOf(name: string): Promise<Listed[]> {
  const { status, body } = await getJson(`/api/runs/${ids[name]}/artifacts`);
  expect(status).toBe(200);
  expect(body.run_id).toBe(ids[name]);
  return body.artifacts as Listed[];
}

describe("GET /api/runs/:id/artifacts", () => {
  it("lists a run's artifacts in order, with files, media types, stages and URLs", async () => {
    const list = await listOf("main");
    const id = ids.main as string;
    expect(list.map((a) => [a.seq, a.kind, a.file, a.media_type, a.stage])).toEqual([
      [1, "input", "01_input.txt", "text/plain; charset=utf-8", null],
      [2, "summary", "02_summary.json", "application/json", "transform"],
      [3, "chart", "03_chart.png", "image/png", "transform"],
      [4, "audio", "04_audio.wav", "audio/wav", "transform"],
      [5, "blob", "05_blob.bin", "application/octet-stream", "transform"],
      [6, "error", "06_error.json", "application/json", "transform"],
      [7, "drawing", "07_drawing.svg", "image/svg+xml", "transform"],
      [8, "page", "08_page.html", "text/html", "transform"],
      [9, "input", "09_input.txt", "text/plain; charset=utf-8", null],
    ]);
    expect(list.map((a) => a.url)).toEqual(list.map((a) => `/api/runs/${id}/artifacts/${a.seq}`));
    const [input, , , , blob] = list;
    expect(input).toMatchObject({
      size: Buffer.byteLength(FIRST_INPUT),
      sha256: sha256(Buffer.from(FIRST_INPUT)),
      metadata: { source: "test" },
    });
    expect(input?.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(blob).toMatchObject({ size: BLOB.length, sha256: sha256(BLOB), metadata: null });
  });

  it("lists none for a run without artifacts, and 404 for no run", async () => {
    expect(await listOf("empty")).toEqual([]);
    const none = await getJson("/api/runs/99999999/artifacts");
    expect(none).toMatchObject({ status: 404, body: { error: "not_found" } });
  });

  it("is in the OpenAPI document", async () => {
    const { body } = await getJson("/openapi.json");
    const paths = body.paths as Record<string, Record<string, { parameters?: { name: string }[] }>>;
    expect(paths["/api/runs/{id}/artifacts"]?.get).toBeDefined();
    const file = paths["/api/runs/{id}/artifacts/{ref}"]?.get;
    expect(file?.parameters?.map((p) => p.name).sort()).toEqual(["id", "ref"]);
  });
});

describe("GET /api/runs/:id/artifacts/:ref", () => {
  const file = (ref: string | number, name = "main", token?: string) =>
    get(`/api/runs/${ids[name]}/artifacts/${ref}`, token);

  it("serves 300 KB of bytes unchanged, with their length, type and SHA-256", async () => {
    const listed = (await listOf("main")).find((a) => a.kind === "blob") as Listed;
    const { status, headers, bytes } = await file(listed.seq);
    expect(status).toBe(200);
    expect(headers.get("content-type")).toBe("application/octet-stream");
    expect(headers.get("content-length")).toBe(String(BLOB.length));
    expect(bytes.equals(BLOB)).toBe(true);
    expect(sha256(bytes)).toBe(listed.sha256);
    expect(headers.get("content-disposition")).toBe('attachment; filename="05_blob.bin"');
  });

  it("serves each file with its media type, inline when a browser shows it safely", async () => {
    const expected: [number, string, string, string][] = [
      [1, "text/plain; charset=utf-8", "inline", "01_input.txt"],
      [2, "application/json", "inline", "02_summary.json"],
      [3, "image/png", "inline", "03_chart.png"],
      [4, "audio/wav", "inline", "04_audio.wav"],
      [7, "image/svg+xml", "attachment", "07_drawing.svg"],
      [8, "text/html", "attachment", "08_page.html"],
    ];
    for (const [seq, type, disposition, name] of expected) {
      const { status, headers } = await file(seq);
      expect(status, name).toBe(200);
      expect(headers.get("content-type"), name).toBe(type);
      expect(headers.get("content-disposition"), name).toBe(`${disposition}; filename="${name}"`);
      expect(headers.get("x-content-type-options"), name).toBe("nosniff");
      expect(headers.get("content-security-policy"), name).toBe("default-src 'none'; sandbox");
    }
    expect((await file(3)).bytes.equals(PNG)).toBe(true);
    expect((await file(4)).bytes.equals(wav())).toBe(true);
    expect(JSON.parse((await file(2)).text)).toEqual({ rows: 3, ok: true });
    expect((await file(7)).text).toBe(SVG);
  });

  it("serves the error artifact as JSON with type, message, stack and details", async () => {
    const { status, headers, text } = await file("error");
    expect(status).toBe(200);
    expect(headers.get("content-type")).toBe("application/json");
    const error = JSON.parse(text) as Record<string, unknown>;
    expect(error).toMatchObject({ type: "Error", message: "x", details: { detail: 1 } });
    expect(error.stack).toMatch(/^Error: x\n\s+at /);
  });

  it("serves the latest artifact of a kind", async () => {
    const latest = await file("input");
    expect(latest.status).toBe(200);
    expect(latest.text).toBe(SECOND_INPUT);
    expect(latest.headers.get("content-disposition")).toBe('inline; filename="09_input.txt"');
    expect((await file(1)).text).toBe(FIRST_INPUT);
    expect((await file("01")).text).toBe(FIRST_INPUT);
  });

  it("answers HEAD with the headers and no body", async () => {
    const head = await get(`/api/runs/${ids.main}/artifacts/5`, undefined, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(BLOB.length));
    expect(head.headers.get("content-type")).toBe("application/octet-stream");
    expect(head.bytes.length).toBe(0);
  });

  it("answers 404 for a sequence number or kind the run does not have", async () => {
    for (const ref of ["0", "10", "999999999999", "nope", "INPUT"]) {
      const { status, text } = await file(ref);
      expect(status, ref).toBe(404);
      expect(JSON.parse(text), ref).toMatchObject({ error: "not_found" });
    }
    const none = await file(1, "empty");
    expect(none.status).toBe(404);
    expect(JSON.parse(none.text).detail).toMatch(/has no artifact "1"; it has none/);
  });

  it("answers 404 with the reason once the file was deleted", async () => {
    const folder = artifactFolderOf(db, ids.gone as string);
    expect((await file(1, "gone")).text).toBe(LINKED_TEXT);
    unlinkSync(join(folder, "01_input.txt"));
    const { status, text } = await file(1, "gone");
    expect(status).toBe(404);
    const body = JSON.parse(text) as { error: string; detail: string };
    expect(body.error).toBe("not_found");
    expect(body.detail).toMatch(/the file of artifact 1 \(01_input\.txt\) is gone/);
    expect(body.detail).toMatch(/pruned or deleted/);
    // The run is still listed with it: the row stays until the run is pruned.
    expect((await listOf("gone")).map((a) => a.file)).toEqual(["01_input.txt"]);
  });

  it("refuses a symbolic link put in place of a file or of the run's folder", async () => {
    const secret = join(dir, "secret.txt");
    writeFileSync(secret, "TOP-SECRET");
    const store = readFileSync(db).subarray(0, 16).toString("latin1");
    expect(store).toContain("DUCK");

    const toStore = join(artifactFolderOf(db, ids.linked as string), "01_input.txt");
    unlinkSync(toStore);
    symlinkSync(db, toStore);
    const toSecret = join(artifactFolderOf(db, ids.linkedOut as string), "01_input.txt");
    unlinkSync(toSecret);
    symlinkSync(secret, toSecret);
    // The run's folder moved away, a link to it in its place.
    const folder = artifactFolderOf(db, ids.linkedFolder as string);
    const moved = join(dir, "moved-folder");
    renameSync(folder, moved);
    symlinkSync(moved, folder);

    for (const name of ["linked", "linkedOut", "linkedFolder"]) {
      for (const ref of ["1", "input"]) {
        const { status, bytes } = await file(ref, name);
        const text = bytes.toString("latin1");
        expect([400, 404], `${name} ${ref}`).toContain(status);
        expect(text).not.toContain("DUCK");
        expect(text).not.toContain("TOP-SECRET");
        expect(text).not.toContain(LINKED_TEXT);
        expect(JSON.parse(text)).toMatchObject({ error: "not_found" });
      }
    }
  });

  it("never serves a file a request names, however it is written", async () => {
    const id = ids.main as string;
    const leaked = (text: string) =>
      ["DUCK", "root:", FIRST_INPUT, SECOND_INPUT, "TOP-SECRET"].filter((s) => text.includes(s));
    const refs = [
      "..%2F..%2Fruns.duckdb",
      "..%2F..%2F..%2Fetc%2Fpasswd",
      "%2e%2e%2f%2e%2e%2fruns.duckdb",
      "%2e%2e",
      "..",
      "%2Fetc%2Fpasswd",
      "%2F01_input.txt",
      "01_input.txt",
      "1%00",
      "%00",
      "input%00.txt",
      "1%2F..%2F..%2F..%2Fruns.duckdb",
      "..%5C..%5Cruns.duckdb",
      "-1",
      "1.0",
      "a".repeat(65),
    ];
    const badIds = [
      "..%2F..%2Fruns.duckdb",
      "%2e%2e",
      "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "%00",
      `${id}%00`,
      "%2Fetc%2Fpasswd",
      "..",
    ];
    const paths = [
      ...refs.map((ref) => `/api/runs/${id}/artifacts/${ref}`),
      ...badIds.map((bad) => `/api/runs/${bad}/artifacts/1`),
      ...badIds.map((bad) => `/api/runs/${bad}/artifacts`),
    ];
    for (const path of paths) {
      const { status, text } = await get(path);
      expect([400, 404], path).toContain(status);
      expect(leaked(text), path).toEqual([]);
    }
    // Sent as written, without the client resolving the dot segments.
    for (const path of [
      `/api/runs/${id}/artifacts/../../runs.duckdb`,
      `/api/runs/${id}/artifacts/../../../../../../etc/passwd`,
      `/api/runs/${id}/artifacts/1/../../../runs.duckdb`,
      `/api/runs/../../runs.duckdb/artifacts/1`,
      `/api/runs/${id}/artifacts/%2e%2e/%2e%2e/runs.duckdb`,
      `/api/runs/${id}/artifacts//etc/passwd`,
    ]) {
      const { status, text } = await rawGet(path);
      expect([400, 404], path).toContain(status);
      expect(leaked(text), path).toEqual([]);
    }
    const invalid = await getJson(`/api/runs/${id}/artifacts/..%2F..%2Fruns.duckdb`);
    expect(invalid).toMatchObject({ status: 400, body: { error: "invalid_parameter" } });
    expect((invalid.body.detail as string).startsWith("ref:")).toBe(true);
  });
});

describe("tokens and tenants", () => {
  it("shows a tenant's token only its tenant's artifacts", async () => {
    const globex = ids.globex as string;
    const main = ids.main as string;
    for (const path of [`/api/runs/${globex}/artifacts`, `/api/runs/${globex}/artifacts/1`]) {
      const { status, text } = await get(path, "acme-read");
      expect(status, path).toBe(404);
      expect(text).not.toContain(GLOBEX_TEXT);
    }
    expect((await get(`/api/runs/${main}/artifacts`, "acme-read")).status).toBe(200);
    expect((await get(`/api/runs/${main}/artifacts/input`, "acme-read")).text).toBe(SECOND_INPUT);
    const all = await get(`/api/runs/${globex}/artifacts/note`, "all-read");
    expect(all).toMatchObject({ status: 200, text: GLOBEX_TEXT });
  });

  it("wants a token with the read scope", async () => {
    const path = `/api/runs/${ids.main}/artifacts/1`;
    expect((await fetch(`${server.url}${path}`)).status).toBe(401);
    expect((await get(path, "wrong")).status).toBe(401);
    expect((await get(path, "ingest-only")).status).toBe(403);
    expect((await get(`/api/runs/${ids.main}/artifacts`, "ingest-only")).status).toBe(403);
  });
});

describe("the server", () => {
  it("logged no failure", () => {
    expect(logged).toEqual([]);
  });
});
