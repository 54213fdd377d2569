import { type ChildProcess, spawn } from "node:child_process";
import { afterEach } from "vitest";
import { CLI, FIXTURES, ROOT } from "./paths.js";

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  ms: number;
}

export interface Started {
  child: ChildProcess;
  /** Standard output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves on exit. */
  exited: Promise<Finished>;
  /** Resolves when standard output has a line for which `test` holds. */
  line(test: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** Starts a process with piped output and a clean environment for runtrail. */
export function start(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number } = {},
): Started {
  const began = Date.now();
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: undefined, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  let out = "";
  let err = "";
  const waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (const waiter of [...waiters]) {
      const hit = out.split("\n").find(waiter.test);
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(hit);
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<Finished>((resolve) => {
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - began }),
    );
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    line(test, timeoutMs = 30_000) {
      const hit = out.split("\n").find(test);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no such line within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`),
            ),
          timeoutMs,
        );
        waiters.push({
          test,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`exited before such a line; stdout:\n${out}\nstderr:\n${err}`));
        });
      });
    },
  };
}

/** Runs the built `runtrail` command to completion. */
export function runtrail(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Finished> {
  return start(process.execPath, [CLI, ...args], options).exited;
}

/** Starts a TypeScript fixture from test/fixtures in its own Node.js process. */
export function startFixture(
  name: string,
  args: readonly string[] = [],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number } = {},
): Started {
  return start(process.execPath, ["--import", "tsx", `${FIXTURES}${name}`, ...args], options);
}

/** A process's exit, or a failure that shows what it printed if it takes longer than `ms`. */
export async function exitWithin(ms: number, what: string, process: Started) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `waited ${ms} ms for ${what}; stdout:\n${process.stdout()}\nstderr:\n${process.stderr()}`,
          ),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([process.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops, after each test, the children given to the function it returns: each is let go on if
 * stopped (a SIGSTOPped process takes no SIGTERM), sent SIGTERM, and killed if it has not
 * exited within 10 s. The latest started is stopped first.
 */
export function stoppedAfterEach(): <T extends Started>(started: T) => T {
  const children: Started[] = [];
  afterEach(async () => {
    for (const started of children.splice(0).reverse()) {
      const { child } = started;
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      try {
        await exitWithin(10_000, "a child to stop", started);
      } catch {
        child.kill("SIGKILL");
        await started.exited;
      }
    }
  });
  return (started) => {
    children.push(started);
    return started;
  };
}

/**
 * `runtrail serve` over `db` on a port the OS chooses, given to `track` as it starts (see
 * {@link stoppedAfterEach}); resolves with its URL once it listens.
 */
export async function serveOnAnyPort(
  track: (started: Started) => Started,
  db: string,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ server: Started; url: string }> {
  const server = track(
    start(process.execPath, [CLI, "serve", "--db", db, "--port", "0", "--json"], {
      env: options.env,
    }),
  );
  const line = await server.line((l) => l.startsWith("{"), options.timeoutMs ?? 30_000);
  return { server, url: (JSON.parse(line) as { url: string }).url };
}
