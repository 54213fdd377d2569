import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

/** Prometheus's promtool, from the Debian package `prometheus` (installed by .ci/run). */
export const PROMTOOL = "/usr/bin/promtool";

/**
 * Whether promtool can run here; on CI its absence is an error, elsewhere the caller skips
 * with the message given.
 */
export function promtoolMissing(): string | undefined {
  if (existsSync(PROMTOOL)) return undefined;
  if (process.env.CI)
    throw new Error(`${PROMTOOL} is missing on CI: install the Debian package prometheus`);
  return `${PROMTOOL} is missing: install the Debian package prometheus to run this check`;
}

/** `promtool check metrics` on an exposition, through its standard input. */
export function promtool(body: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}
