import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runtrail } from "../helpers/processes.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import { finish, linesOf, recorder, recordRun } from "./_fixtures.js";

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

  it("prints the command list and exits 2 when given no command", async () => {
    const result = await runtrail([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain("Usage: runtrail <command> [options]");
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
