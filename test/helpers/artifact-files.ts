import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import { join, relative } from "node:path";
import { expect } from "vitest";
import type { ArtifactRow } from "../../src/record/rows.js";

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Each artifact's file in `folder` is whole: its size and SHA-256 are its row's. */
export function expectWholeFiles(folder: string, rows: readonly ArtifactRow[]): void {
  for (const row of rows) {
    const bytes = readFileSync(join(folder, row.file));
    expect([bytes.length, sha256(bytes)], row.file).toEqual([row.size, row.sha256]);
  }
}

/** The files under a folder, as paths relative to it, sorted; none for a folder not there. */
export function filesIn(folder: string): string[] {
  if (!existsSync(folder)) return [];
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((f) => f.isFile())
    .map((f) => relative(folder, join(f.parentPath, f.name)))
    .sort();
}

/** Dates the files under a folder two hours back: past the hour unused snapshots are kept. */
export function makeOld(folder: string): void {
  const earlier = new Date(Date.now() - 2 * 3_600_000);
  for (const file of filesIn(folder)) utimesSync(join(folder, file), earlier, earlier);
}
