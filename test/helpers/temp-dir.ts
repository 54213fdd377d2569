import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, onTestFinished } from "vitest";

const perFile: string[] = [];

afterAll(() => {
  for (const dir of perFile.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh folder, removed when the test that made it finishes (concurrent tests included), or
 * after the file's tests when made outside a test (in `beforeAll`).
 */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runtrail-test-"));
  if (expect.getState().currentTestName === undefined) perFile.push(dir);
  else onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store path in a fresh folder. */
export function tempStore(): string {
  return join(tempDir(), "runs.duckdb");
}
