import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { CLI } from "../helpers/paths.js";
import { start } from "../helpers/processes.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";

/**
 * Runs the built CLI with a module hook that notes every module it loads, and returns their
 * URLs with the command's exit code.
 */
async function loadedBy(args: readonly string[]): Promise<{ code: number | null; urls: string[] }> {
  const dir = tempDir();
  const log = join(dir, "loaded.txt");
  const hooks = join(dir, "hooks.mjs");
  writeFileSync(
    hooks,
    `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(log)}, url + "\\n");
  return next(url, context);
}`,
  );
  const register = join(dir, "register.mjs");
  writeFileSync(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  writeFileSync(log, "");
  const finished = await start(process.execPath, ["--import", register, CLI, ...args]).exited;
  return { code: finished.code, urls: readFileSync(log, "utf8").split("\n").filter(Boolean) };
}

describe("runtrail commands load what they use", () => {
  it("tail loads neither the server nor the tracing SDK", async () => {
    const { code, urls } = await loadedBy(["tail", "--db", tempStore(), "--json"]);
    expect(code).toBe(0);
    expect(urls.some((u) => u.includes("/dist/cli/commands/tail.js"))).toBe(true);
    for (const heavy of ["/node_modules/hono/", "/node_modules/prom-client/", "sdk-trace-base"]) {
      expect(
        urls.filter((u) => u.includes(heavy)),
        heavy,
      ).toEqual([]);
    }
    expect(urls.filter((u) => /\/dist\/cli\/commands\/(?!tail)/.test(u))).toEqual([]);
  });

  it("serve --help loads the server's command", async () => {
    const { code, urls } = await loadedBy(["serve", "--help"]);
    expect(code).toBe(0);
    expect(urls.some((u) => u.includes("/dist/cli/commands/serve.js"))).toBe(true);
  });
});
