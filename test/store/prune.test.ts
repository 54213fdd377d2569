import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunRow } from "../../src/record/rows.js";
import { ROW_GROUP_SIZE, withStore } from "../../src/store/open-store.js";
import { compactStore, pruneRuns } from "../../src/store/prune.js";
import {
  checkpointFolderOf,
  snapshotFileOf,
  snapshotFolderOf,
} from "../../src/store/store-files.js";
import { wordCountPipeline } from "../fixtures/sample-pipelines.js";
import { filesIn, makeOld } from "../helpers/artifact-files.js";
import { rowGroupSizes, storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import { traced } from "../helpers/tracing.js";

describe("compactStore", () => {
  it("keeps every row, in row groups of the store's size", async () => {
    const db = tempStore();
    const rows = 3 * ROW_GROUP_SIZE + 100;
    await withStore(db, async (s) => {
      await s.run(`CREATE TABLE numbers AS SELECT range AS n FROM range(${2 * rows})`);
      await s.run(`DELETE FROM numbers WHERE n >= ${rows}`);
      await compactStore(s);
    });
    await withStore(db, async (s) => {
      const sizes = await rowGroupSizes(s, "numbers");
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(rows);
      expect(Math.max(...sizes)).toBe(ROW_GROUP_SIZE);
    });
  });
});

const { pipeline: words, control } = wordCountPipeline();

describe("pruneRuns on snapshots kept as earlier versions kept them", () => {
  it("reads them, and removes those no run uses while no other store shares the folder", async () => {
    const dir = tempDir();
    const db = join(dir, "runs.duckdb");
    const t = traced({ db });
    const options = { tracer: t.tracer, store: db, codeRef: "c1" };
    control.failCount = false;
    await words.run({ doc: "old" }, options);
    control.failCount = true;
    await expect(words.run({ doc: "kept one" }, options)).rejects.toThrow("count broke");
    await t.processor.forceFlush();
    await t.provider.shutdown();
    const runs = await storedRuns(db);
    const failed = runs.find((r) => r.status === "failed") as RunRow;
    // Snapshots and checkpoints where earlier versions kept them: folders shared by the
    // stores of the folder.
    const sharedSnapshots = join(dir, "snapshots");
    const sharedCheckpoints = join(dir, "checkpoints");
    renameSync(snapshotFolderOf(db), sharedSnapshots);
    renameSync(checkpointFolderOf(db), sharedCheckpoints);
    makeOld(sharedSnapshots);
    const usedByFailed = new Set(
      [
        failed.input_snapshot,
        ...(await storedStages(db))
          .filter((s) => s.run_id === failed.run_id)
          .map((s) => s.snapshot),
      ]
        .map((ref) => (ref ? snapshotFileOf(db, ref) : undefined))
        .filter((file) => file !== undefined)
        .map((file) => relative(snapshotFolderOf(db), file)),
    );
    const before = filesIn(sharedSnapshots);
    const unused = before.filter((f) => !usedByFailed.has(f));
    expect(unused.length).toBeGreaterThan(0);
    expect(before.length).toBeGreaterThan(unused.length);
    // A file of the project's own in a folder of that name, which is not a checkpoint.
    writeFileSync(join(sharedCheckpoints, "config.json"), "{}\n");
    const checkpointsBefore = filesIn(sharedCheckpoints);

    const prune = (dryRun: boolean) =>
      withStore(db, (s) => pruneRuns(s, { before: failed.started_at, dryRun }));
    const dry = await prune(true);
    expect(dry).toEqual({ runs: 1, stages: 3, artifactFolders: 0, snapshots: unused.length });
    expect(filesIn(sharedSnapshots)).toEqual(before);
    expect(runs.map((r) => r.status).sort()).toEqual(["completed", "failed"]);
    expect(await prune(false)).toEqual(dry);
    expect(filesIn(sharedSnapshots)).toEqual(before.filter((f) => usedByFailed.has(f)));
    expect((await storedRuns(db)).map((r) => r.run_id)).toEqual([failed.run_id]);
    // The checkpoints of the pruned run's stages are of no use without their snapshots.
    const checkpointsAfter = filesIn(sharedCheckpoints);
    expect(checkpointsAfter.length).toBeGreaterThan(0);
    expect(checkpointsAfter.length).toBeLessThan(checkpointsBefore.length);
    expect(checkpointsAfter).toContain("config.json");

    // The failed run resumes from the snapshots where they were kept.
    control.failCount = false;
    const r = traced({ db });
    const output = await words.resume(failed.run_id, {
      tracer: r.tracer,
      store: db,
      codeRef: "c1",
    });
    await r.processor.forceFlush();
    await r.provider.shutdown();
    expect(output).toEqual({ words: 3 });
    const resumed = (await storedStages(db)).filter((s) => s.run_id !== failed.run_id);
    expect(resumed.map((s) => [s.name, s.status])).toEqual([
      ["fetch", "cached"],
      ["split", "cached"],
      ["count", "completed"],
    ]);

    // Once another store lives in the folder, the shared folder may hold its snapshots: pruning
    // leaves it alone, even what no run of this store uses.
    await withStore(join(dir, "other.duckdb"), (s) => s.run("SELECT 1"));
    const stray = join(sharedSnapshots, "ab", `ab${"0".repeat(62)}.json`);
    mkdirSync(dirname(stray), { recursive: true });
    writeFileSync(stray, "{}");
    makeOld(sharedSnapshots);
    const sharedNow = filesIn(sharedSnapshots);
    const everything = await withStore(db, (s) =>
      pruneRuns(s, { before: Date.now() * 1000, dryRun: false, snapshotGraceMs: 0 }),
    );
    expect(everything).toMatchObject({ runs: 2 });
    expect(filesIn(sharedSnapshots)).toEqual(sharedNow);
    expect(filesIn(snapshotFolderOf(db))).toEqual([]);
  });
});
