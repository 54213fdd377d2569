import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
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
