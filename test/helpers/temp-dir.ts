import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";

const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runtrail-test-"));
  made.push(dir);
  return dir;
}

/** A store path in a fresh folder. */
export function tempStore(): string {
  return join(tempDir(), "runs.duckdb");
}
