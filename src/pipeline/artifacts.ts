import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Attributes, context, diag, type Span, type Tracer, trace } from "@opentelemetry/api";
import { ARTIFACT_KIND, RunTrailAttributes as R } from "../record/attributes.js";
import type { ArtifactRow } from "../record/rows.js";
import { artifactFolderOf, writeFileAtomically } from "../store/store-files.js";
import { mediaEssence } from "../util/media-type.js";

/** What an artifact holds: text, bytes (images, audio, video, anything), or a JSON value. */
export type ArtifactContent = string | Uint8Array | object | number | boolean | null;

export interface ArtifactOptions {
  /** Media type, when the content does not tell it. */
  mediaType?: string;
  /** File extension without the dot, when the media type does not tell it. */
  extension?: string;
}

/** An artifact as written: its row, and where its file is. */
export interface Artifact extends ArtifactRow {
  path: string;
}

const EXTENSIONS: Record<string, string> = {
  "text/plain": "txt",
  "text/markdown": "md",
  "text/html": "html",
  "text/csv": "csv",
  "application/json": "json",
  "application/pdf": "pdf",
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/gif": "gif",
  "image/webp": "webp",
  "image/svg+xml": "svg",
  "audio/wav": "wav",
  "audio/mpeg": "mp3",
  "audio/ogg": "ogg",
  "video/mp4": "mp4",
  "video/webm": "webm",
  "application/octet-stream": "bin",
};

/** The media type of bytes, from their first bytes; `application/octet-stream` when unknown. */
export function sniffMediaType(bytes: Uint8Array): string {
  const at = (offset: number, ...expected: number[]) =>
    expected.every((b, i) => bytes[offset + i] === b);
  const ascii = (offset: number, text: string) =>
    at(offset, ...Array.from(text, (c) => c.charCodeAt(0)));
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png";
  if (at(0, 0xff, 0xd8, 0xff)) return "image/jpeg";
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "image/gif";
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp";
  if (ascii(0, "RIFF") && ascii(8, "WAVE")) return "audio/wav";
  if (ascii(0, "ID3") || at(0, 0xff, 0xfb) || at(0, 0xff, 0xf3)) return "audio/mpeg";
  if (ascii(0, "OggS")) return "audio/ogg";
  if (ascii(4, "ftyp")) return "video/mp4";
  if (at(0, 0x1a, 0x45, 0xdf, 0xa3)) return "video/webm";
  if (ascii(0, "%PDF-")) return "application/pdf";
  return "application/octet-stream";
}

const KIND = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** An artifact kind as it can appear in a file name: letters, digits, `_` and `-`. */
function artifactKindOf(kind: string): string {
  if (KIND.test(kind)) return kind;
  const cleaned = kind
    .replace(/[^A-Za-z0-9_-]+/g, "_")
    .replace(/^[_-]+/, "")
    .slice(0, 64);
  return cleaned.length > 0 ? cleaned : "artifact";
}

function encode(
  content: ArtifactContent,
  options: ArtifactOptions,
): { bytes: Uint8Array; mediaType: string } {
  if (content instanceof Uint8Array) {
    return { bytes: content, mediaType: options.mediaType ?? sniffMediaType(content) };
  }
  if (typeof content === "string") {
    return {
      bytes: Buffer.from(content, "utf8"),
      mediaType: options.mediaType ?? "text/plain; charset=utf-8",
    };
  }
  const text = JSON.stringify(content, null, 2);
  if (text === undefined) throw new TypeError(`a ${typeof content} cannot be an artifact`);
  return {
    bytes: Buffer.from(text, "utf8"),
    mediaType: options.mediaType ?? "application/json",
  };
}

/**
 * Writes the artifacts of one run, numbered in order of creation, into
 * `<store dir>/artifacts/<run_id>/NN_<kind>.<ext>`. Each file is written whole before it is
 * recorded: a span of kind `artifact` (which gives the run row its artifact) and an event on
 * the span it was made under.
 */
export class RunArtifacts {
  private next = 1;

  constructor(
    private readonly storePath: string,
    private readonly runId: string,
    private readonly tracer: Tracer,
  ) {}

  /**
   * Writes an artifact made under `span` (the run's or a stage's). Tracking never breaks the
   * pipeline: a file that cannot be written is reported through the OpenTelemetry diagnostic
   * logger and gives `undefined`.
   */
  async write(
    span: Span,
    stage: string | null,
    kind: string,
    content: ArtifactContent,
    metadata: Record<string, unknown> | undefined,
    options: ArtifactOptions = {},
  ): Promise<Artifact | undefined> {
    const seq = this.next++;
    const safeKind = artifactKindOf(kind);
    try {
      const { bytes, mediaType } = encode(content, options);
      const essence = mediaEssence(mediaType);
      const extension =
        options.extension?.replace(/[^A-Za-z0-9]/g, "") ||
        (Object.hasOwn(EXTENSIONS, essence) ? EXTENSIONS[essence] : undefined) ||
        "bin";
      const file = `${String(seq).padStart(2, "0")}_${safeKind}.${extension}`;
      const folder = artifactFolderOf(this.storePath, this.runId);
      const path = join(folder, file);
      const createdAt = new Date();
      await writeFileAtomically(path, bytes);
      const row: ArtifactRow = {
        seq,
        kind: safeKind,
        file,
        media_type: mediaType,
        size: bytes.byteLength,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        metadata: metadata ?? null,
        stage,
        created_at: createdAt.toISOString(),
      };
      this.record(span, row, createdAt);
      return { ...row, path };
    } catch (error) {
      diag.error(
        `runtrail: artifact ${seq} (${safeKind}) of run ${this.runId} was not written: ${(error as Error).message}`,
      );
      return undefined;
    }
  }

  private record(parent: Span, row: ArtifactRow, at: Date): void {
    const attributes: Attributes = {
      [R.kind]: ARTIFACT_KIND,
      [R.artifactSeq]: row.seq,
      [R.artifactKind]: row.kind,
      [R.artifactFile]: row.file,
      [R.artifactMediaType]: row.media_type,
      [R.artifactSize]: row.size,
      [R.artifactSha256]: row.sha256,
      ...(row.stage === null ? {} : { [R.artifactStage]: row.stage }),
      ...(row.metadata === null ? {} : { [R.artifactMetadata]: safeJson(row.metadata) }),
    };
    parent.addEvent("runtrail.artifact", attributes, at);
    this.tracer
      .startSpan(
        `artifact ${row.file}`,
        { startTime: at, attributes },
        trace.setSpan(context.active(), parent),
      )
      .end(at);
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch (error) {
    return JSON.stringify({ unserialisable: (error as Error).message });
  }
}

/** The type of an error as runtrail records it: its name, else the name of its class. */
export function errorTypeOf(error: Error): string {
  // `class QuotaError extends Error {}` keeps the name "Error": its class names it better.
  return error.name === "Error" ? error.constructor.name : error.name;
}

/** The content of an `error` artifact: the error's type, message and stack, and details. */
export function errorArtifactContent(error: unknown, details?: Record<string, unknown>): object {
  if (error instanceof Error) {
    const type = errorTypeOf(error);
    return { type, message: error.message, stack: error.stack ?? null, details: details ?? null };
  }
  return { type: null, message: String(error), stack: null, details: details ?? null };
}
