import { lstat, mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import type { RunRow, StageRow } from "../record/rows.js";
import { type SpoolDir, spoolDirsOf } from "./store-path.js";

/**
 * The spool keeps rows the store could not take: one JSON-lines segment per failed write,
 * named so segments sort by time, and written to a temporary name then renamed, so a reader
 * only ever sees whole segments. Whoever next opens the store writes them in and deletes them.
 *
 * The fallback folder lives in the shared temp folder, so it is private: this user's, mode
 * 0700, checked before each use; and no file in a spool is followed through a symbolic link.
 */

type SpoolLine = { run: RunRow } | { stage: StageRow };

export interface SpooledSegment {
  file: string;
  runs: RunRow[];
  stages: StageRow[];
  /** Lines that could not be read, kept aside in a `.bad` file. */
  badLines: number;
}

let sequence = 0;

const uid = process.getuid?.();

/** Whether a path is a real folder (not a link) that only this user can enter. */
async function isPrivateDir(path: string): Promise<boolean> {
  const info = await lstat(path);
  return (
    info.isDirectory() && (uid === undefined || (info.uid === uid && (info.mode & 0o077) === 0))
  );
}

/** Creates the folder if needed; refuses a private folder that another user could reach. */
async function prepare(dir: SpoolDir): Promise<void> {
  if (!dir.private) {
    await mkdir(dir.path, { recursive: true });
    return;
  }
  const base = dirname(dir.path);
  await mkdir(base, { recursive: true, mode: 0o700 });
  if (!(await isPrivateDir(base))) throw new Error(`${base} is not a private folder of this user`);
  await mkdir(dir.path, { recursive: true, mode: 0o700 });
  if (!(await isPrivateDir(dir.path))) {
    throw new Error(`${dir.path} is not a private folder of this user`);
  }
}

/**
 * Lines in one segment at most: a segment is one string in memory when it is written and when
 * it is read, and a batch of a pipeline that outran the store for a while may hold millions of
 * rows, more than one string can (about 512 MiB) and more than a reader should take at once.
 */
export const SEGMENT_LINES = 50_000;

/**
 * Writes rows to new segments, {@link SEGMENT_LINES} lines each at most; returns their paths,
 * or throws when no spool folder is writable. Segments written before one that fails stay:
 * their rows are merged by key wherever they are written in, so writing them again is harmless.
 */
export async function spoolRows(
  storePath: string,
  runs: readonly RunRow[],
  stages: readonly StageRow[],
): Promise<string[]> {
  const lines = [
    ...runs.map((run) => ({ run }) as SpoolLine),
    ...stages.map((stage) => ({ stage }) as SpoolLine),
  ];
  const paths: string[] = [];
  for (let from = 0; from < lines.length; from += SEGMENT_LINES) {
    const segment = lines.slice(from, from + SEGMENT_LINES).map((line) => JSON.stringify(line));
    paths.push(await writeSegment(storePath, `${segment.join("\n")}\n`));
  }
  return paths;
}

/** Writes one segment, whole or not at all, in the first spool folder that takes it. */
async function writeSegment(storePath: string, body: string): Promise<string> {
  // Padded, so that the segments of one process sort in the order they were written.
  const seq = String(sequence++).padStart(10, "0");
  const name = `${Date.now().toString().padStart(15, "0")}-${hostname()}-${process.pid}-${seq}`;
  let lastError: unknown;
  for (const dir of spoolDirsOf(storePath)) {
    try {
      await prepare(dir);
      const temporary = join(dir.path, `${name}.tmp`);
      // "wx" fails on anything already at the path, a planted link included.
      await writeFile(temporary, body, { flag: "wx", mode: 0o600 });
      const final = join(dir.path, `${name}.jsonl`);
      await rename(temporary, final);
      return final;
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** The segment files of the spool folders that may be read: whole, regular, not links. */
async function segmentFiles(storePath: string): Promise<string[]> {
  const files: string[] = [];
  for (const dir of spoolDirsOf(storePath)) {
    let names: string[];
    try {
      if (dir.private && !(await isPrivateDir(dir.path))) continue;
      names = (await readdir(dir.path)).filter((n) => n.endsWith(".jsonl")).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const file = join(dir.path, name);
      try {
        const info = await lstat(file);
        if (info.isFile() && (!dir.private || uid === undefined || info.uid === uid)) {
          files.push(file);
        }
      } catch {
        // taken by another reader in the meantime
      }
    }
  }
  return files;
}

/** Whether any writer left rows in the spool of a store. */
export async function hasSpooled(storePath: string): Promise<boolean> {
  return (await segmentFiles(storePath)).length > 0;
}

/** The spooled segments, oldest first, up to about `maxRows` rows in all. */
export async function readSpool(storePath: string, maxRows = 200_000): Promise<SpooledSegment[]> {
  const segments: SpooledSegment[] = [];
  let rows = 0;
  for (const file of await segmentFiles(storePath)) {
    if (rows >= maxRows) break;
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      continue; // taken by another reader in the meantime
    }
    const segment: SpooledSegment = { file, runs: [], stages: [], badLines: 0 };
    const bad: string[] = [];
    for (const line of text.split("\n")) {
      if (line.length === 0) continue;
      const parsed = parseLine(line);
      if (parsed === undefined) bad.push(line);
      else if ("run" in parsed) segment.runs.push(parsed.run);
      else segment.stages.push(parsed.stage);
    }
    if (bad.length > 0) {
      segment.badLines = bad.length;
      await writeFile(`${file}.${Date.now()}.bad`, `${bad.join("\n")}\n`, { flag: "wx" }).catch(
        () => undefined,
      );
    }
    rows += segment.runs.length + segment.stages.length;
    segments.push(segment);
  }
  return segments;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function parseLine(line: string): SpoolLine | undefined {
  let value: Partial<{ run: Partial<RunRow>; stage: Partial<StageRow> }>;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const { run, stage } = value;
  if (
    run &&
    typeof run.run_id === "string" &&
    UUID.test(run.run_id) &&
    typeof run.pipeline === "string" &&
    typeof run.status === "string" &&
    typeof run.started_at === "number"
  ) {
    return { run: run as RunRow };
  }
  if (
    stage &&
    typeof stage.run_id === "string" &&
    UUID.test(stage.run_id) &&
    typeof stage.span_id === "string" &&
    typeof stage.name === "string" &&
    typeof stage.status === "string" &&
    typeof stage.seq === "number" &&
    typeof stage.started_at === "number"
  ) {
    return { stage: stage as StageRow };
  }
  return undefined;
}

/** Deletes a segment whose rows are committed. */
export async function removeSpooled(file: string): Promise<void> {
  await unlink(file).catch(() => undefined);
}

/** Renames a segment the store refused, so it is kept but not tried again. */
export async function quarantineSpooled(file: string): Promise<void> {
  await rename(file, file.replace(/\.jsonl$/, ".rejected")).catch(() => undefined);
}
