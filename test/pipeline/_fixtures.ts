import { execFileSync } from "node:child_process";
import { expect } from "vitest";
import type { RunTrailSpanProcessorOptions } from "../../src/ingest/span-processor.js";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type Traced, traced } from "../helpers/tracing.js";

/** A real provider and processor on a fresh store, as a pipeline sets them up. */
export interface Recording extends Traced {
  db: string;
}

export function recording(options: Omit<RunTrailSpanProcessorOptions, "db"> = {}): Recording {
  const db = tempStore();
  return { db, ...traced({ db, ...options }) };
}

/** Everything in the store once the processor has flushed. */
export async function flushed(r: Recording): Promise<{ runs: RunRow[]; stages: StageRow[] }> {
  await r.processor.forceFlush();
  return { runs: await storedRuns(r.db), stages: await storedStages(r.db) };
}

/** The one run in the store, with its stages. */
export async function onlyRun(r: Recording): Promise<{ run: RunRow; stages: StageRow[] }> {
  const { runs, stages } = await flushed(r);
  expect(runs).toHaveLength(1);
  return { run: runs[0] as RunRow, stages };
}

/** The environment without git's own variables, so a parent git process cannot redirect ours. */
function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("GIT_")) env[key] = value;
  }
  return { ...env, GIT_CONFIG_NOSYSTEM: "1" };
}

/** Runs git in `cwd` and returns its trimmed standard output. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: gitEnv(), encoding: "utf8" }).trim();
}

/** Commits a file with a throwaway identity, whatever the global git configuration says. */
export function commit(cwd: string, message: string): void {
  git(
    cwd,
    "-c",
    "user.email=a@b",
    "-c",
    "user.name=t",
    "-c",
    "commit.gpgsign=false",
    "commit",
    "-q",
    "-m",
    message,
  );
}

/** The exit status of git in `cwd`, without throwing. */
export function gitStatus(cwd: string, ...args: string[]): number {
  try {
    execFileSync("git", args, { cwd, env: gitEnv(), stdio: "ignore" });
    return 0;
  } catch (error) {
    return (error as { status?: number }).status ?? -1;
  }
}
