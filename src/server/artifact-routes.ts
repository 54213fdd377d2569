import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import type { ArtifactRow, RunRow } from "../record/rows.js";
import { artifactFolderOf } from "../store/store-files.js";
import { mediaEssence } from "../util/media-type.js";
import { ApiError } from "./api-error.js";
import {
  ArtifactListSchema,
  ArtifactRefParam,
  ErrorSchema,
  IdParam,
  jsonContent as json,
  RUN_LOOKUP_ERRORS,
} from "./schemas.js";

export interface ArtifactRouteDeps<E extends Env> {
  /** The run an id or prefix names, as the request's token may see it; throws an `ApiError` otherwise. */
  findOne: (c: Context<E>, id: string) => Promise<RunRow>;
  /** The DuckDB file of the served store: artifacts are in `artifacts/` next to it. */
  storePath: () => string;
}

/** The only file names runtrail writes artifacts under: `NN_<kind>.<ext>`. */
const ARTIFACT_FILE = /^[0-9]{2,}_[A-Za-z0-9_-]+\.[A-Za-z0-9]+$/;

/** A media type with parameters, nothing that could break a header. */
const MEDIA_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\r\n]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;

/** Media types a browser may run scripts in: always downloaded, never shown. */
const SCRIPTABLE = new Set(["text/html", "text/xml", "text/xsl", "application/xhtml+xml"]);

/** Every artifact response forbids scripts, plugins and loads, whatever the file holds. */
const ARTIFACT_CSP = "default-src 'none'; sandbox";

const CHUNK_BYTES = 64 * 1024;

const ERRORS = {
  ...RUN_LOOKUP_ERRORS,
  404: json(ErrorSchema, "no run matches, or no such artifact, or its file is gone"),
} as const;

/** The URL the file of a run's artifact is served at. */
export function artifactUrlOf(runId: string, seq: number): string {
  return `/api/runs/${runId}/artifacts/${seq}`;
}

/** The artifact a reference names: a sequence number, or a kind (the latest of that kind). */
function artifactOf(run: RunRow, ref: string): ArtifactRow {
  // The run row lists its artifacts by sequence number, each once.
  const artifacts = run.artifacts ?? [];
  const found = /^[0-9]+$/.test(ref)
    ? artifacts.find((a) => a.seq === Number(ref))
    : artifacts.findLast((a) => a.kind === ref);
  if (found !== undefined) return found;
  const shown = artifacts.slice(0, 10).map((a) => `${a.seq} (${a.kind})`);
  if (artifacts.length > shown.length) shown.push("...");
  const has =
    artifacts.length === 0 ? "it has none" : `it has ${artifacts.length}: ${shown.join(", ")}`;
  throw new ApiError(404, "not_found", `run ${run.run_id} has no artifact "${ref}"; ${has}`);
}

/** `inline` for what a browser shows without running scripts, `attachment` for the rest. */
function dispositionOf(mediaType: string): "inline" | "attachment" {
  const essence = mediaEssence(mediaType);
  if (SCRIPTABLE.has(essence) || essence.endsWith("+xml")) return "attachment";
  if (
    essence.startsWith("text/") ||
    essence === "application/json" ||
    /^(image|audio|video)\//.test(essence)
  ) {
    return "inline";
  }
  return "attachment";
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Opens the file of an artifact for reading. The path is made from the store's folder, the
 * run id and the file name the run row holds, never from the request; it must stay in the
 * run's artifact folder, and name a regular file (a symbolic link is refused, also one put
 * there between the check and the opening).
 */
async function openArtifact(
  storePath: string,
  runId: string,
  artifact: ArtifactRow,
): Promise<{ handle: FileHandle; size: number }> {
  const named = `artifact ${artifact.seq} (${artifact.file})`;
  const refuse = (why: string): never => {
    throw new ApiError(404, "not_found", `${named} cannot be served: ${why}`);
  };
  const gone = (): never => {
    throw new ApiError(
      404,
      "not_found",
      `the file of ${named} is gone from the store's folder: pruned or deleted, or the run was recorded on another machine`,
    );
  };
  if (!ARTIFACT_FILE.test(artifact.file)) {
    refuse(`its recorded file name ${JSON.stringify(artifact.file)} is not NN_<kind>.<ext>`);
  }
  let folder: string;
  try {
    folder = resolve(artifactFolderOf(storePath, runId));
  } catch {
    return refuse("the run id has no artifact folder");
  }
  // The name has no separator and does not start with a dot: it stays in the folder.
  const path = join(folder, artifact.file);

  let folderStats: Stats;
  let stats: Stats;
  try {
    folderStats = await lstat(folder);
    stats = await lstat(path);
  } catch (error) {
    if (isMissing(error)) return gone();
    throw error;
  }
  if (!folderStats.isDirectory()) refuse("the run's artifact folder is not a folder");
  if (!stats.isFile()) refuse("it is not a regular file");

  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    if (isMissing(error)) return gone();
    if ((error as NodeJS.ErrnoException).code === "ELOOP")
      return refuse("it is not a regular file");
    throw error;
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile() || opened.ino !== stats.ino || opened.dev !== stats.dev) {
      refuse("it was replaced while being opened");
    }
    return { handle, size: opened.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * The first bytes of an artifact's file (at most `maxBytes`) and its whole size, read with the
 * checks of the file endpoint: the file the run row names, in the run's folder, a regular file.
 * Throws an `ApiError` (404) when the file is gone or cannot be served.
 */
export async function readArtifactStart(
  storePath: string,
  runId: string,
  artifact: ArtifactRow,
  maxBytes: number,
): Promise<{ bytes: Buffer; size: number }> {
  const { handle, size } = await openArtifact(storePath, runId, artifact);
  try {
    const bytes = Buffer.alloc(Math.min(size, maxBytes));
    let read = 0;
    while (read < bytes.length) {
      const { bytesRead } = await handle.read(bytes, read, bytes.length - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return { bytes: bytes.subarray(0, read), size };
  } finally {
    await handle.close();
  }
}

/** The file as a stream of chunks, read as the client takes them; the file closes at the end. */
function streamOf(handle: FileHandle, size: number): ReadableStream<Uint8Array> {
  let position = 0;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - position));
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) throw new Error(`the file ended at ${position} of ${size} bytes`);
        position += bytesRead;
        controller.enqueue(chunk.subarray(0, bytesRead));
        if (position >= size) {
          await close();
          controller.close();
        }
      } catch (error) {
        await close().catch(() => undefined);
        controller.error(error);
      }
    },
    cancel: close,
  });
}

/**
 * The artifact endpoints: a run's artifacts (`GET /api/runs/{id}/artifacts`) and the file of
 * one of them (`GET /api/runs/{id}/artifacts/{ref}`), with the read scope and tenant rules of
 * the other run endpoints.
 */
export function registerArtifactRoutes<E extends Env>(
  app: OpenAPIHono<E>,
  deps: ArtifactRouteDeps<E>,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/runs/{id}/artifacts",
      summary: "The artifacts of a run, in order of creation, each with the URL of its file",
      request: { params: IdParam },
      responses: { 200: json(ArtifactListSchema, "the run's artifacts"), ...ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const run = await deps.findOne(c, id);
      const artifacts = (run.artifacts ?? []).map((a) => ({
        ...a,
        url: artifactUrlOf(run.run_id, a.seq),
      }));
      return c.json({ run_id: run.run_id, artifacts }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/runs/{id}/artifacts/{ref}",
      summary:
        "The file of an artifact, by sequence number, or by kind for the latest of that kind; with its media type",
      request: { params: ArtifactRefParam },
      responses: {
        200: {
          description:
            "the file's bytes; shown inline if a browser can show it without running scripts, else downloaded",
          content: { "application/octet-stream": { schema: {} } },
        },
        ...ERRORS,
      },
    }),
    async (c) => {
      const { id, ref } = c.req.valid("param");
      const run = await deps.findOne(c, id);
      const artifact = artifactOf(run, ref);
      const { handle, size } = await openArtifact(deps.storePath(), run.run_id, artifact);
      const mediaType = MEDIA_TYPE.test(artifact.media_type)
        ? artifact.media_type
        : "application/octet-stream";
      const headers = {
        "Content-Type": mediaType,
        "Content-Length": String(size),
        "Content-Disposition": `${dispositionOf(mediaType)}; filename="${artifact.file}"`,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": ARTIFACT_CSP,
      };
      // Hono answers HEAD with the GET handler's response, less its body: no file to read.
      if (c.req.method === "HEAD" || size === 0) {
        await handle.close();
        return c.body(null, 200, headers);
      }
      return c.body(streamOf(handle, size), 200, headers);
    },
  );
}
