import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, expect } from "vitest";

const perTest: string[] = [];
const perFile: string[] = [];

function remove(dirs: string[]): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

afterEach(() => remove(perTest));
afterAll(() => remove(perFile));

/**
 * A fresh folder, removed after the test that made it, or after the file's tests when made
 * outside a test (in `beforeAll`).
 */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runtrail-test-"));
  (expect.getState().currentTestName === undefined ? perFile : perTest).push(dir);
  return dir;
}

/** A store path in a fresh folder. */
export function tempStore(): string {
  return join(tempDir(), "runs.duckdb");
}
