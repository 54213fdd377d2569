import { spawn } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");

export interface ServerProcess {
  url: string;
  pid: number;
  /** SIGTERM, then waits for the process to exit; its exit code. */
  stop(): Promise<number | null>;
}

/** `runtrail serve --port 0 --json` on a store; resolves once it prints its URL. */
export function startServer(db: string): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  for (const name of ["RUNTRAIL_TOKENS", "RUNTRAIL_TOKENS_FILE", "RUNTRAIL_PORT"]) delete env[name];
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--db", db, "--port", "0", "--host", "127.0.0.1", "--json"],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
  });
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const code = await Promise.race([exited, sleep(30_000).then(() => "timeout" as const)]);
    if (code !== "timeout") return code;
    child.kill("SIGKILL");
    throw new Error(`the server (pid ${child.pid}) did not stop within 30 s of SIGTERM: ${stderr}`);
  };
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the server did not start within 120 s: ${stderr}`));
    }, 120_000);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        const info = JSON.parse(stdout.slice(0, newline)) as { url?: unknown };
        if (typeof info.url !== "string" || child.pid === undefined) throw new Error("no url");
        resolve({ url: info.url, pid: child.pid, stop });
      } catch {
        void stop();
        reject(new Error(`the server printed no JSON line with its url: ${stdout} ${stderr}`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (code ${code}) before it listened: ${stderr}`));
    });
    child.once("error", reject);
  });
}
