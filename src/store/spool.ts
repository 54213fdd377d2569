import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { RunRow, StageRow } from "../record/rows.js";
import { spoolDirsOf } from "./store-path.js";

/**
 * The spool keeps rows the store could not take: one JSON-lines segment per failed write,
 * named so segments sort by time, and written to a temporary name then renamed, so a reader
 * only ever sees whole segments. Whoever next opens the store writes them in and deletes them.
 */

type SpoolLine = { run: RunRow } | { stage: StageRow };

export interface SpooledRows {
  runs: RunRow[];
  stages: StageRow[];
  /** The segments read, to delete once their rows are committed. */
  files: string[];
  /** Lines that could not be read, kept aside in `.bad` files. */
  badLines: number;
}

let sequence = 0;

/** Writes rows to a new segment; returns its path, or throws when no spool folder is writable. */
export async function spoolRows(
  storePath: string,
  runs: readonly RunRow[],
  stages: readonly StageRow[],
): Promise<string> {
  const lines: string[] = [];
  for (const run of runs) lines.push(JSON.stringify({ run }));
  for (const stage of stages) lines.push(JSON.stringify({ stage }));
  const body = `${lines.join("\n")}\n`;
  const name = `${Date.now().toString().padStart(15, "0")}-${hostname()}-${process.pid}-${sequence++}`;
  let lastError: unknown;
  for (const dir of spoolDirsOf(storePath)) {
    try {
      await mkdir(dir, { recursive: true });
      const temporary = join(dir, `${name}.tmp`);
      await writeFile(temporary, body);
      const final = join(dir, `${name}.jsonl`);
      await rename(temporary, final);
      return final;
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** Whether any writer left rows in the spool of a store. */
export async function hasSpooled(storePath: string): Promise<boolean> {
  for (const dir of spoolDirsOf(storePath)) {
    try {
      if ((await readdir(dir)).some((n) => n.endsWith(".jsonl"))) return true;
    } catch {
      // no such folder
    }
  }
  return false;
}

/** Reads up to `maxRows` spooled rows, oldest segments first. */
export async function readSpool(storePath: string, maxRows = 200_000): Promise<SpooledRows> {
  const result: SpooledRows = { runs: [], stages: [], files: [], badLines: 0 };
  for (const dir of spoolDirsOf(storePath)) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith(".jsonl")).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (result.runs.length + result.stages.length >= maxRows) return result;
      const file = join(dir, name);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch {
        continue; // taken by another reader in the meantime
      }
      const bad: string[] = [];
      for (const line of text.split("\n")) {
        if (line.length === 0) continue;
        const parsed = parseLine(line);
        if (parsed === undefined) bad.push(line);
        else if ("run" in parsed) result.runs.push(parsed.run);
        else result.stages.push(parsed.stage);
      }
      if (bad.length > 0) {
        result.badLines += bad.length;
        await writeFile(`${file}.bad`, `${bad.join("\n")}\n`).catch(() => undefined);
      }
      result.files.push(file);
    }
  }
  return result;
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

/** Deletes segments whose rows are committed. */
export async function removeSpooled(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((file) => unlink(file).catch(() => undefined)));
}

/** Renames segments the store refused, so they are kept but not tried again. */
export async function quarantineSpooled(files: readonly string[]): Promise<void> {
  await Promise.all(
    files.map((file) => rename(file, file.replace(/\.jsonl$/, ".rejected")).catch(() => undefined)),
  );
}
