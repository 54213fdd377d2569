import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { definePipeline } from "../../src/pipeline/define-pipeline.js";
import { withStore } from "../../src/store/open-store.js";
import { checkpointFolderOf, snapshotFolderOf } from "../../src/store/store-files.js";
import { wordCountPipeline } from "../fixtures/sample-pipelines.js";
import { filesIn, makeOld } from "../helpers/artifact-files.js";
import { runtrail } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempDir, tempStore } from "../helpers/temp-dir.js";
import {
  DAY,
  finish,
  HOUR,
  parseTable,
  type RecordedRun,
  recorder,
  recordRun,
  SECOND,
  type StageSpec,
  sharedStore,
  wholeSecondNow,
} from "./_fixtures.js";

interface PruneData {
  /** Finished runs from 40 days ago: completed, completed with 300 stages, failed. */
  oldCompleted: RecordedRun[];
  oldFailed: RecordedRun;
  /** Still running, started 40 days ago: never pruned. */
  oldRunning: RecordedRun;
  /** From the last hours: completed and failed. */
  recent: RecordedRun[];
}

const twoStages: StageSpec[] = [
  { name: "extract", ms: 1000 },
  { name: "load", ms: 1000 },
];

/** Stages of every old finished run: 2 + 300 + 2. */
const OLD_STAGES = 304;

async function makeStore(db: string): Promise<PruneData> {
  const now = wholeSecondNow();
  const t = recorder(db);
  const error = new Error("disk full");
  const many: StageSpec[] = Array.from({ length: 300 }, (_, i) => ({
    name: `chunk_${i % 10}`,
    ms: 10,
    llm: [{ input: 10, output: 5 }],
  }));
  const data: PruneData = {
    oldCompleted: [
      recordRun(t, { pipeline: "etl", start: now - 41 * DAY, ms: 5 * SECOND, stages: twoStages }),
      recordRun(t, { pipeline: "embed", start: now - 40 * DAY, ms: 10 * SECOND, stages: many }),
    ],
    oldFailed: recordRun(t, {
      pipeline: "etl",
      start: now - 40 * DAY + HOUR,
      ms: 5 * SECOND,
      stages: [twoStages[0] as StageSpec, { name: "load", ms: 1000, error }],
      error,
    }),
    oldRunning: recordRun(t, {
      pipeline: "backfill",
      start: now - 40 * DAY + 2 * HOUR,
      stages: [twoStages[0] as StageSpec, { name: "load", ms: 1000, open: true }],
    }),
    recent: [
      recordRun(t, { pipeline: "etl", start: now - 2 * HOUR, ms: 5 * SECOND, stages: twoStages }),
      recordRun(t, {
        pipeline: "etl",
        start: now - HOUR,
        ms: 5 * SECOND,
        stages: [twoStages[0] as StageSpec, { name: "load", ms: 1000, error }],
        error,
      }),
    ],
  };
  await finish(t);
  return data;
}

const ids = (runs: readonly RecordedRun[]) => runs.map((r) => r.runId).sort();

async function storedIds(db: string): Promise<string[]> {
  return (await storedRuns(db)).map((r) => r.run_id).sort();
}

describe("runtrail prune --dry-run", () => {
  it("reports what would be pruned and changes nothing", async () => {
    const db = tempStore();
    const data = await makeStore(db);
    const runsBefore = await storedIds(db);
    const stagesBefore = (await storedStages(db)).length;

    const result = await runtrail(["prune", "--older-than", "30d", "--dry-run", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`Would prune 3 runs and ${OLD_STAGES} stages older than 30d\n`);

    const json = await runtrail([
      "prune",
      "--older-than",
      "30d",
      "--dry-run",
      "--json",
      "--db",
      db,
    ]);
    expect(JSON.parse(json.stdout)).toEqual({
      runs: 3,
      stages: OLD_STAGES,
      artifact_folders: 0,
      snapshots: 0,
      dry_run: true,
      space: null,
    });

    expect(await storedIds(db)).toEqual(runsBefore);
    expect(runsBefore).toHaveLength(6);
    expect(runsBefore).toEqual(expect.arrayContaining(ids([...data.oldCompleted, data.oldFailed])));
    expect((await storedStages(db)).length).toBe(stagesBefore);
  });
});

describe("runtrail prune --older-than 30d", () => {
  let db: string;
  let data: PruneData;
  let bytesBefore: number;
  let result: Awaited<ReturnType<typeof runtrail>>;

  beforeAll(async () => {
    db = sharedStore();
    data = await makeStore(db);
    bytesBefore = statSync(db).size;
    result = await runtrail(["prune", "--older-than", "30d", "--db", db]);
  });

  it("reports how many runs and stages it removed and the store's size", () => {
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const [counts, sizes] = result.stdout.split("\n");
    expect(counts).toBe(`Pruned 3 runs and ${OLD_STAGES} stages older than 30d`);
    expect(sizes).toMatch(new RegExp(`^Store ${db}: \\d+\\.\\d MB → \\d+\\.\\d MB$`));
  });

  it("removes the old finished runs and their stages", async () => {
    const gone = new Set(ids([...data.oldCompleted, data.oldFailed]));
    const runs = await storedIds(db);
    expect(runs.filter((id) => gone.has(id))).toEqual([]);
    const stages = await storedStages(db);
    expect(stages.filter((s) => gone.has(s.run_id))).toEqual([]);
    const orphans = await withStore(db, (session) =>
      session.one<{ n: number }>(
        "SELECT count(*)::DOUBLE AS n FROM stages WHERE run_id NOT IN (SELECT run_id FROM runs)",
      ),
    );
    expect(orphans?.n).toBe(0);
  });

  it("keeps the recent runs and the old run that is still running, with their stages", async () => {
    expect(await storedIds(db)).toEqual(ids([...data.recent, data.oldRunning]));
    const stages = await storedStages(db);
    // Two stages of each recent run, and the running run's ended first stage.
    expect(stages).toHaveLength(5);
    const running = (await storedRuns(db)).find((r) => r.run_id === data.oldRunning.runId);
    expect(running?.status).toBe("running");
  });

  it("leaves a file no larger than before", () => {
    expect(statSync(db).size).toBeLessThanOrEqual(bytesBefore);
    expect(existsSync(`${db}.compact-${process.pid}`)).toBe(false);
  });

  it("leaves a store that opens, reads and takes new runs afterwards", async () => {
    const tail = await runtrail(["tail", "--db", db]);
    expect(tail.code).toBe(0);
    expect(tail.stderr).toBe("");
    expect(parseTable(tail.stdout).rows.map((r) => r[0])).toEqual(
      [data.recent[1], data.recent[0], data.oldRunning].map((r) => r?.runId.slice(0, 8)),
    );
    const show = await runtrail(["show", data.recent[0]?.runId ?? "", "--db", db]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("extract");

    const t = recorder(db);
    const added = recordRun(t, { pipeline: "after-prune", start: Date.now(), ms: 10 });
    await finish(t);
    expect(await storedIds(db)).toContain(added.runId);
  });
});

describe("runtrail prune --status failed", () => {
  it("prunes only the old failed runs", async () => {
    const db = tempStore();
    const data = await makeStore(db);
    const result = await runtrail([
      "prune",
      "--older-than",
      "30d",
      "--status",
      "failed",
      "--json",
      "--db",
      db,
    ]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      runs: 1,
      stages: 2,
      artifact_folders: 0,
      snapshots: 0,
      dry_run: false,
      space: { bytes_before: expect.any(Number), bytes_after: expect.any(Number) },
    });
    expect(await storedIds(db)).toEqual(
      ids([...data.oldCompleted, data.oldRunning, ...data.recent]),
    );
    const stages = await storedStages(db);
    expect(stages.filter((s) => s.run_id === data.oldFailed.runId)).toEqual([]);
    expect(stages.filter((s) => s.run_id === data.recent[1]?.runId)).toHaveLength(2);
  });
});

describe("runtrail prune of runs with files", () => {
  it("removes the runs' artifact folders and the snapshots no run uses any more", async () => {
    const db = tempStore();
    const t = recorder(db);
    const pipeline = definePipeline<{ n: number }, { n: number }>({
      name: "with-files",
      stages: [
        {
          name: "draw",
          run: async (input, stage) => {
            await stage.artifact("image", "not really an image");
            return { n: (input as { n: number }).n + 1 };
          },
        },
        { name: "count", run: (input) => ({ n: (input as { n: number }).n + 1 }) },
      ],
    });
    await pipeline.run({ n: 1 }, { tracer: t.tracer, store: db, codeRef: "c1" });
    const kept = recordRun(t, { pipeline: "still-running", start: Date.now() });
    await finish(t);
    const runId = (await storedRuns(db)).find((r) => r.pipeline === "with-files")?.run_id ?? "";
    const folder = join(dirname(db), "artifacts", runId);
    expect(readdirSync(folder)).toEqual(["01_image.txt"]);
    // Snapshots are kept an hour after the last run that used them goes: make them older.
    const snapshots = snapshotFolderOf(db);
    expect(filesIn(snapshots)).toHaveLength(3);
    makeOld(snapshots);

    const dry = await runtrail(["prune", "--older-than", "0s", "--dry-run", "--db", db]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(
      "Would prune 1 runs and 2 stages older than 0s\nWould remove 1 artifact folder and 3 unused snapshot files\n",
    );
    expect(existsSync(folder)).toBe(true);
    expect(filesIn(snapshots)).toHaveLength(3);

    const result = await runtrail(["prune", "--older-than", "0s", "--db", db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const [counts, removed, sizes] = result.stdout.split("\n");
    expect(counts).toBe("Pruned 1 runs and 2 stages older than 0s");
    expect(removed).toBe("Removed 1 artifact folder and 3 unused snapshot files");
    expect(sizes).toMatch(/^Store .*: \d+\.\d MB → \d+\.\d MB$/);
    expect(existsSync(folder)).toBe(false);
    expect(filesIn(snapshots)).toEqual([]);
    expect(await storedIds(db)).toEqual([kept.runId]);
  });
});

describe("runtrail prune of one of two stores in one folder", () => {
  it("removes only that store's unused snapshots, as many as its dry run counts", async () => {
    const dir = tempDir();
    const a = join(dir, "a.duckdb");
    const b = join(dir, "b.duckdb");
    const { pipeline, control } = wordCountPipeline();
    /** A completed run on `doc`, one on a document both stores see, and a failed one. */
    const record = async (db: string, doc: string) => {
      const t = recorder(db);
      const options = { tracer: t.tracer, store: db, codeRef: "c1" };
      control.failCount = false;
      await pipeline.run({ doc }, options);
      await pipeline.run({ doc: "same in both stores" }, options);
      control.failCount = true;
      await expect(pipeline.run({ doc: `${doc} again` }, options)).rejects.toThrow("count broke");
      await finish(t);
      const runs = await storedRuns(db);
      expect(runs.map((r) => r.status).sort()).toEqual(["completed", "completed", "failed"]);
      return runs.find((r) => r.status === "failed")?.run_id as string;
    };
    await record(a, "first");
    const bFailed = await record(b, "second");

    const [aSnapshots, bSnapshots] = [snapshotFolderOf(a), snapshotFolderOf(b)];
    const bCheckpoints = checkpointFolderOf(b);
    expect(filesIn(aSnapshots).length).toBeGreaterThan(0);
    expect(filesIn(bCheckpoints).length).toBeGreaterThan(0);
    // A snapshot in the folder shared by the stores of a folder before each had its own: no
    // run of either store names it, and it may be either's.
    const shared = join(dir, "snapshots", "ab", `ab${"0".repeat(62)}.json`);
    mkdirSync(dirname(shared), { recursive: true });
    writeFileSync(shared, "{}");
    for (const folder of [aSnapshots, bSnapshots, dirname(shared)]) makeOld(folder);
    const aFiles = filesIn(aSnapshots);
    const bFiles = filesIn(bSnapshots);
    const bCheckpointFiles = filesIn(bCheckpoints);

    const dryJson = await runtrail([
      "prune",
      "--older-than",
      "0s",
      "--dry-run",
      "--json",
      "--db",
      a,
    ]);
    expect(dryJson.code, dryJson.stderr).toBe(0);
    const dry = JSON.parse(dryJson.stdout);
    expect(dry).toMatchObject({ runs: 3, artifact_folders: 0, dry_run: true, space: null });
    // Every snapshot of a goes with its runs; none of b's, nor the shared one.
    expect(dry.snapshots).toBe(aFiles.length);
    const dryText = await runtrail(["prune", "--older-than", "0s", "--dry-run", "--db", a]);
    expect(dryText.stdout).toBe(
      `Would prune 3 runs and ${dry.stages} stages older than 0s\nWould remove 0 artifact folders and ${aFiles.length} unused snapshot files\n`,
    );
    expect(filesIn(aSnapshots)).toEqual(aFiles);

    const pruned = await runtrail(["prune", "--older-than", "0s", "--json", "--db", a]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(JSON.parse(pruned.stdout)).toEqual({
      ...dry,
      dry_run: false,
      space: { bytes_before: expect.any(Number), bytes_after: expect.any(Number) },
    });
    expect(await storedRuns(a)).toEqual([]);
    expect(filesIn(aSnapshots)).toEqual([]);
    expect(filesIn(bSnapshots)).toEqual(bFiles);
    expect(filesIn(bCheckpoints)).toEqual(bCheckpointFiles);
    expect(existsSync(shared)).toBe(true);

    // b's runs read as before, and its failed run resumes from its snapshots.
    expect(await storedRuns(b)).toHaveLength(3);
    const shown = await runtrail(["show", bFailed, "--db", b]);
    expect(shown.code, shown.stderr).toBe(0);
    control.failCount = false;
    const t = recorder(b);
    const output = await pipeline.resume(bFailed, { tracer: t.tracer, store: b, codeRef: "c1" });
    await finish(t);
    expect(output).toEqual({ words: 3 }); // "second again text"
    const resumed = (await storedRuns(b)).find((r) => r.resumed_from === bFailed);
    expect(resumed).toMatchObject({ status: "completed", retry_count: 1 });
    // Each store keeps its snapshots and checkpoints in folders named after its file.
    expect([aSnapshots, bSnapshots, bCheckpoints]).toEqual([
      `${realpathSync(a)}.snapshots`,
      `${realpathSync(b)}.snapshots`,
      `${realpathSync(b)}.checkpoints`,
    ]);
  });
});

describe("runtrail prune of a store reached through a link", () => {
  it("compacts the file the link points to, and keeps the link and the store's snapshots", async () => {
    const real = join(tempDir(), "r.duckdb");
    const link = join(tempDir(), "runs.duckdb");
    symlinkSync(real, link);
    const { pipeline, control } = wordCountPipeline();
    const t = recorder(link);
    const options = { tracer: t.tracer, store: link, codeRef: "c1" };
    await pipeline.run({ doc: "pruned" }, options);
    control.failCount = true;
    await expect(pipeline.run({ doc: "kept" }, options)).rejects.toThrow("count broke");
    await finish(t);
    const failed = (await storedRuns(link)).find((r) => r.status === "failed")?.run_id as string;
    const snapshots = snapshotFolderOf(link);
    expect(snapshots).toBe(`${real}.snapshots`);
    const kept = filesIn(snapshots);

    const pruned = await runtrail([
      "prune",
      "--older-than",
      "0s",
      "--status",
      "completed",
      "--db",
      link,
    ]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(realpathSync(link)).toBe(realpathSync(real));
    expect(snapshotFolderOf(link)).toBe(snapshots);
    expect(filesIn(snapshots).length).toBeGreaterThan(0);
    expect(filesIn(snapshots).every((f) => kept.includes(f))).toBe(true);
    // The failed run still resumes from its snapshots.
    control.failCount = false;
    const r = recorder(link);
    expect(await pipeline.resume(failed, { tracer: r.tracer, store: link, codeRef: "c1" })).toEqual(
      {
        words: 2,
      },
    );
    await finish(r);
  });
});
