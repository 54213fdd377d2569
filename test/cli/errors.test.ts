import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { CLI, ROOT } from "../helpers/paths.js";
import { type Finished, runtrail, start } from "../helpers/processes.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import { DAY, finish, linesOf, recorder, recordRun } from "./_fixtures.js";

const COMMANDS = [
  "tail",
  "show",
  "resume",
  "stats",
  "prune",
  "export",
  "reap",
  "serve",
  "demo",
] as const;

/** A store path where there is no store. */
function nowhere(): string {
  return join(tempDir(), "absent.duckdb");
}

/** No line of a JavaScript stack trace. */
const STACK_LINE = /^\s+at /m;

describe("runtrail usage errors", () => {
  it("exits 2 with one line on an unknown command", async () => {
    const result = await runtrail(["frobnicate"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      'runtrail: unknown command "frobnicate"; run runtrail --help for the list\n',
    );
  });

  it("exits 2 with one line naming an unknown option", async () => {
    const result = await runtrail(["tail", "--bogus", "--db", nowhere()]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^runtrail: .*'--bogus'.*; see runtrail tail --help\n$/);
  });

  it("exits 2 with one line naming --since when --since is not a time", async () => {
    for (const args of [["tail"], ["stats"]]) {
      const result = await runtrail([...args, "--since", "yesterday", "--db", nowhere()]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(linesOf(result.stderr)).toEqual([
        'runtrail: --since: "yesterday" is neither a duration ago (such as 24h or 7d) nor an ISO date (such as 2026-11-01)',
      ]);
    }
  });

  it("exits 2 naming --since when export is given a bad --since on a store", async () => {
    const db = tempStore();
    const t = recorder(db);
    recordRun(t, { pipeline: "etl", start: Date.now() - 1000, ms: 10 });
    await finish(t);
    const result = await runtrail([
      "export",
      "--format",
      "csv",
      "--since",
      "yesterday",
      "--out",
      join(tempDir(), "out.csv"),
      "--db",
      db,
    ]);
    expect(result.code).toBe(2);
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^runtrail: --since: "yesterday"/);
  });

  it("exits 2 with one line on a bad --status, -n or --older-than", async () => {
    const cases: [string[], RegExp][] = [
      [["tail", "--status", "exploded"], /^runtrail: --status: "exploded" is not a status/],
      [["tail", "-n", "0"], /^runtrail: -n: "0" is not a number of runs/],
      [["prune"], /^runtrail: prune needs --older-than/],
      [
        ["prune", "--older-than", "a while"],
        /^runtrail: --older-than: "a while" is not a duration/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runtrail([...args, "--db", nowhere()]);
      expect(result.code, args.join(" ")).toBe(2);
      expect(linesOf(result.stderr), args.join(" ")).toHaveLength(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(STACK_LINE);
    }
  });

  it("exits 2 with one line on an argument a command does not take", async () => {
    // Each would do its work, or fail in another way, if the argument were let through.
    const cases = [
      ["tail", "failed"],
      ["stats", "etl"],
      ["prune", "--older-than", "1d", "failed"],
      ["export", "--format", "csv", "runs.csv"],
      ["reap", "now"],
      ["serve", "--port", "nope", "8080"],
      ["demo", "--runs", "0", "3"],
    ];
    for (const [command, ...args] of cases) {
      const result = await runtrail([command ?? "", ...args, "--db", nowhere()]);
      const given = args[args.length - 1];
      expect(result.code, command).toBe(2);
      expect(result.stdout, command).toBe("");
      expect(linesOf(result.stderr), command).toEqual([
        `runtrail: ${command} takes no arguments, but was given "${given}"; see runtrail ${command} --help`,
      ]);
    }
  });

  it("prunes nothing when given a status as an argument instead of --status", async () => {
    const db = tempStore();
    const t = recorder(db);
    const now = Date.now();
    recordRun(t, { pipeline: "etl", start: now - 3 * DAY, ms: 10 });
    recordRun(t, { pipeline: "etl", start: now - 2 * DAY, ms: 10, error: new Error("boom") });
    await finish(t);
    const result = await runtrail(["prune", "--older-than", "1d", "failed", "--db", db]);
    expect(result.code).toBe(2);
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect((await storedRuns(db)).map((r) => r.status)).toEqual(["completed", "failed"]);
  });

  it("exits 1 with one line when show finds no store", async () => {
    const db = nowhere();
    const result = await runtrail(["show", "abcd1234", "--db", db]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`runtrail: no run matches "abcd1234": there is no store at ${db}\n`);
  });

  it("exits 1 with one line when export finds no store", async () => {
    const db = nowhere();
    const result = await runtrail(["export", "--format", "csv", "--db", db]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(`runtrail: nothing to export: there is no store at ${db}\n`);
  });
});

describe.concurrent("runtrail help", () => {
  it("lists every command with --help and exits 0", async () => {
    const result = await runtrail(["--help"]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain("Usage: runtrail <command> [options]");
    const listed = linesOf(result.stdout)
      .filter((l) => /^ {2}\S/.test(l))
      .map((l) => l.trim().split(/\s+/)[0]);
    expect(listed).toEqual([...COMMANDS]);
  });

  it("prints the command list to stderr and exits 2 when given no command, a usage error", async () => {
    const result = await runtrail([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("Usage: runtrail <command> [options]");
    const help = await runtrail(["--help"]);
    expect(result.stderr).toBe(help.stdout);
  });

  it("prints the command list to stdout and exits 0 with help", async () => {
    for (const args of [["help"], ["-h"]]) {
      const result = await runtrail(args);
      expect(result.code, args[0]).toBe(0);
      expect(result.stderr, args[0]).toBe("");
      expect(result.stdout, args[0]).toContain("Usage: runtrail <command> [options]");
    }
  });

  it.each(COMMANDS)("prints the usage of %s with --help and exits 0", async (command) => {
    const result = await runtrail([command, "--help"]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(new RegExp(`^Usage: runtrail ${command}\\b`));
    expect(result.stdout).toContain("--db PATH");
    expect(result.stdout).toContain("-h, --help");
  });

  it("says in one line that an export file cannot be written, as a user's mistake", async () => {
    const db = tempStore();
    const out = join(tempDir(), "missing", "x.csv");
    const t = recorder(db);
    recordRun(t, { pipeline: "exported", start: Date.now() - 60_000, ms: 10 });
    await finish(t);
    const result = await runtrail(["export", "--format", "csv", "--out", out, "--db", db]);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^runtrail: cannot write .*x\.csv: /);
    expect(result.stderr).not.toContain("bug");
  });

  it("refuses a short prefix before looking for a store", async () => {
    const result = await runtrail(["show", "zz", "--db", nowhere()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^runtrail: "zz" is not a run id or trace id/);
  });
});

/** Runs the built `runtrail` with its standard output closed before it prints anything. */
function withOutputClosed(args: readonly string[]): Promise<Finished> {
  const started = start(process.execPath, [CLI, ...args]);
  started.child.stdout?.destroy();
  return started.exited;
}

describe("runtrail with the reader of its output gone", () => {
  it("stops quietly with exit 0 when standard output is a closed pipe", async () => {
    const db = tempStore();
    const t = recorder(db);
    const run = recordRun(t, { pipeline: "etl", start: Date.now() - 60_000, ms: 10 });
    await finish(t);
    const cases = [
      ["tail"],
      ["tail", "--json"],
      ["tail", "--follow"],
      ["tail", "--json", "--follow"],
      ["show", run.runId],
      ["stats"],
      ["export", "--format", "csv"],
    ];
    for (const args of cases) {
      const result = await withOutputClosed([...args, "--db", db]);
      const name = args.join(" ");
      expect(result.stderr, name).toBe("");
      expect(result.signal, name).toBeNull();
      expect(result.code, name).toBe(0);
    }
  });
});

/** Every command that opens the store file, each as a user might mistype its --db. */
const STORE_COMMANDS = [
  ["tail"],
  ["tail", "--json"],
  ["show", "abcd1234"],
  ["stats"],
  ["stats", "--json"],
  ["export", "--format", "csv"],
  ["export", "--format", "jsonl", "--out", "runs.jsonl"],
  ["reap"],
  ["prune", "--older-than", "1d"],
  ["resume", "abcd1234"],
];

/** Runs each command on the file, which it must refuse in one line and leave as it is. */
async function refusesFile(path: string, message: string): Promise<void> {
  const dir = join(path, "..");
  const bytes = readFileSync(path);
  const files = readdirSync(dir).sort();
  for (const args of STORE_COMMANDS) {
    const name = args.join(" ");
    const result = await runtrail([...args, "--db", path], { cwd: dir });
    expect(result.code, name).toBe(1);
    expect(result.stdout, name).toBe("");
    expect(linesOf(result.stderr), name).toEqual([message]);
    // Byte for byte, with nothing moved aside, written beside it or made in its place.
    expect(readFileSync(path).equals(bytes), name).toBe(true);
    expect(readdirSync(dir).sort(), name).toEqual(files);
  }
}

describe("runtrail given a file that is not a store", () => {
  it("refuses a text file in one line, and leaves it as it is", async () => {
    const path = join(tempDir(), "README.md");
    copyFileSync(join(ROOT, "README.md"), path);
    await refusesFile(
      path,
      `runtrail: ${path} is not a runtrail store (not a DuckDB database file)`,
    );
  });

  it("refuses an empty file", async () => {
    const path = join(tempDir(), "runs.duckdb");
    writeFileSync(path, "");
    await refusesFile(path, `runtrail: ${path} is not a runtrail store (an empty file)`);
  });

  it("refuses a DuckDB database of another program, making no store in it", async () => {
    const path = join(tempDir(), "analytics.duckdb");
    const instance = await DuckDBInstance.create(path);
    const connection = await instance.connect();
    await connection.run("CREATE TABLE events AS SELECT range AS id FROM range(10)");
    connection.closeSync();
    instance.closeSync();
    await refusesFile(
      path,
      `runtrail: ${path} is not a runtrail store (a DuckDB database without runtrail's tables)`,
    );
  });

  it("refuses a damaged store without moving it aside", async () => {
    const db = tempStore();
    const t = recorder(db);
    recordRun(t, { pipeline: "etl", start: Date.now() - 60_000, ms: 10 });
    await finish(t);
    // Overwrite a block past the header: its checksum no longer matches.
    const bytes = readFileSync(db);
    bytes.fill(0x5a, 12_288 + 64, 12_288 + 1_024);
    writeFileSync(db, bytes);
    const result = await runtrail(["tail", "--db", db]);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^runtrail: the store .* is damaged: .*; it is left as it is \(a pipeline or the server that writes to it moves it aside and starts a new store\)\n$/,
    );
    expect(readFileSync(db).equals(bytes)).toBe(true);
    expect(readdirSync(join(db, "..")).filter((f) => f.includes("corrupt"))).toEqual([]);
    // Resuming reads the run it resumes the same way: from the damaged file, which it leaves.
    const resume = await runtrail(["resume", "abcd1234", "--db", db]);
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(/^runtrail: .*damaged/);
    expect(readFileSync(db).equals(bytes)).toBe(true);
    expect(readdirSync(join(db, "..")).filter((f) => f.includes("corrupt"))).toEqual([]);
  });
});
