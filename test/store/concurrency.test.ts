import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { eventually } from "../helpers/eventually.js";
import { type Finished, runtrail, startFixture } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir } from "../helpers/temp-dir.js";

describe("several processes on one store", () => {
  it("lands every run of two pipelines while the CLI reads, with no lock error anywhere", async () => {
    const db = join(tempDir(), "runs.duckdb");
    const env = { RUNTRAIL_DB: db };
    const args = ["--runs", "40", "--stages", "3", "--stage-ms", "15"];
    const first = startFixture("pipeline.ts", [...args, "--name", "alpha"], { env });
    const second = startFixture("pipeline.ts", [...args, "--name", "beta"], { env });
    await Promise.all([first, second].map((p) => p.line((l) => l.startsWith("started "))));
    await eventually(() => expect(existsSync(db)).toBe(true));

    const reads: Finished[] = [];
    let finished = false;
    const both = Promise.all([first.exited, second.exited]).then((results) => {
      finished = true;
      return results;
    });
    while (!finished || reads.length < 3) {
      reads.push(await runtrail(["tail", "-n", "5", "--json"], { env }));
    }
    const [alpha, beta] = await both;

    for (const pipeline of [alpha, beta]) {
      expect(pipeline?.code).toBe(0);
      expect(pipeline?.stderr).toBe("");
      const stats = JSON.parse(
        pipeline?.stdout
          .split("\n")
          .find((l) => l.startsWith("done "))
          ?.slice(5) ?? "{}",
      );
      expect(stats).toMatchObject({ failedFlushes: 0, spooledSegments: 0, droppedRuns: 0 });
    }
    for (const read of reads) {
      expect(read.code).toBe(0);
      expect(read.stderr).toBe("");
      expect(read.ms).toBeLessThan(2_000);
      expect(Array.isArray(JSON.parse(read.stdout))).toBe(true);
    }
    const runs = await storedRuns(db);
    const count = (name: string) => runs.filter((r: RunRow) => r.pipeline === name).length;
    expect([count("alpha"), count("beta")]).toEqual([40, 40]);
    expect(runs.every((r) => r.status === "completed" && r.stages_completed === 3)).toBe(true);
    expect(new Set(runs.map((r) => r.owner_pid)).size).toBe(2);
    expect(await storedStages(db)).toHaveLength(240);
  });
});
