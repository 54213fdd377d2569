import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  definePipeline,
  type Pipeline,
  ResumeError,
  type StageProgress,
} from "../../src/pipeline/define-pipeline.js";
import type { PipelineStage } from "../../src/pipeline/pipeline-stage.js";
import { SnapshotStore } from "../../src/pipeline/snapshots.js";
import type { RunRow, StageRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import { pruneRuns } from "../../src/store/prune.js";
import { snapshotFileOf } from "../../src/store/store-files.js";
import { flushed, type Recording, recording } from "./_fixtures.js";

/**
 * Five stages that count their calls; `failAt` makes that stage throw until it is cleared.
 * Each stage adds its name to the list it is given, so the final output shows every stage's
 * contribution in order.
 */
function countingPipeline(options: { failAt?: string; cacheOff?: string[] } = {}) {
  const calls: Record<string, number> = {};
  const control = { failAt: options.failAt };
  const stage = (name: string) => ({
    name,
    cache: !(options.cacheOff ?? []).includes(name),
    run: (input: { trail: string[] }, s: PipelineStage) => {
      calls[name] = (calls[name] ?? 0) + 1;
      if (control.failAt === name) throw new Error(`${name} broke`);
      s.rows({ in: input.trail.length, out: input.trail.length + 1 });
      if (name === "summarize") s.llmCall({ model: "m", inputTokens: 10, outputTokens: 5 });
      return { trail: [...input.trail, name] };
    },
  });
  const pipeline = definePipeline<{ trail: string[] }, { trail: string[] }>({
    name: "five-stages",
    stages: ["fetch", "clean", "summarize", "review", "publish"].map(stage),
  });
  return { pipeline, calls, control };
}

async function failedRun(
  r: Recording,
  pipeline: Pipeline<{ trail: string[] }, { trail: string[] }>,
  options: { codeRef?: string } = {},
): Promise<RunRow> {
  await expect(
    pipeline.run(
      { trail: [] },
      { tracer: r.tracer, store: r.db, codeRef: options.codeRef ?? "c1" },
    ),
  ).rejects.toThrow();
  const { runs } = await flushed(r);
  const failed = runs.filter((run) => run.status === "failed").at(-1);
  if (!failed) throw new Error("no failed run");
  return failed;
}

function stagesOf(stages: StageRow[], runId: string): [string, string][] {
  return stages.filter((s) => s.run_id === runId).map((s) => [s.name, s.status]);
}

describe("definePipeline: resume", () => {
  it("resumes a run that failed in stage 3 of 5 without running stages 1 and 2 again", async () => {
    const r = recording();
    const { pipeline, calls, control } = countingPipeline({ failAt: "summarize" });
    const failed = await failedRun(r, pipeline);
    expect(failed).toMatchObject({ failed_stage: "summarize", stages_completed: 2 });
    expect(calls).toEqual({ fetch: 1, clean: 1, summarize: 1 });

    control.failAt = undefined;
    const progress: StageProgress[] = [];
    const output = await pipeline.resume(failed.run_id.slice(0, 8), {
      tracer: r.tracer,
      store: r.db,
      codeRef: "c1",
      onProgress: (p) => progress.push(p),
    });
    expect(output).toEqual({ trail: ["fetch", "clean", "summarize", "review", "publish"] });
    expect(calls).toEqual({ fetch: 1, clean: 1, summarize: 2, review: 1, publish: 1 });

    const { runs, stages } = await flushed(r);
    const resumed = runs.find((run) => run.resumed_from === failed.run_id) as RunRow;
    expect(resumed).toMatchObject({
      status: "completed",
      retry_count: failed.retry_count + 1,
      stages_expected: 5,
      stages_completed: 5,
      input_snapshot: failed.input_snapshot,
      llm_calls: 1,
    });
    expect(stagesOf(stages, resumed.run_id)).toEqual([
      ["fetch", "cached"],
      ["clean", "cached"],
      ["summarize", "completed"],
      ["review", "completed"],
      ["publish", "completed"],
    ]);
    for (const s of stages.filter((s) => s.run_id === resumed.run_id && s.status === "cached")) {
      expect(s.cached_from).toBe(failed.run_id);
      expect(s.llm_calls).toBe(0);
    }
    expect(
      progress.filter((p) => p.outcome !== "started").map((p) => [p.index, p.outcome]),
    ).toEqual([
      [1, "cached"],
      [2, "cached"],
      [3, "completed"],
      [4, "completed"],
      [5, "completed"],
    ]);
    await r.provider.shutdown();
  });

  it("links the resumed run's span to the failed run's span", async () => {
    const r = recording();
    const { pipeline, control } = countingPipeline({ failAt: "review" });
    const failed = await failedRun(r, pipeline);
    control.failAt = undefined;
    const { InMemorySpanExporter, SimpleSpanProcessor, BasicTracerProvider } = await import(
      "@opentelemetry/sdk-trace-base"
    );
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter), r.processor],
    });
    await pipeline.resume(failed.run_id, {
      tracer: provider.getTracer("t"),
      store: r.db,
      codeRef: "c1",
    });
    const runSpan = exporter.getFinishedSpans().find((s) => s.name === "five-stages");
    expect(runSpan?.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [failed.trace_id, failed.span_id],
    ]);
    expect(runSpan?.attributes["runtrail.run.resumed_from"]).toBe(failed.run_id);
    await provider.shutdown();
  });

  it("resumes a resumed run that failed again, counting both tries", async () => {
    const r = recording();
    const { pipeline, calls, control } = countingPipeline({ failAt: "clean" });
    const first = await failedRun(r, pipeline);
    control.failAt = "review";
    await expect(
      pipeline.resume(first.run_id, { tracer: r.tracer, store: r.db, codeRef: "c1" }),
    ).rejects.toThrow("review broke");
    const second = (await flushed(r)).runs.find((run) => run.resumed_from === first.run_id);
    expect(second).toMatchObject({ status: "failed", retry_count: 1, failed_stage: "review" });
    control.failAt = undefined;
    await pipeline.resume(second?.run_id as string, {
      tracer: r.tracer,
      store: r.db,
      codeRef: "c1",
    });
    const third = (await flushed(r)).runs.find((run) => run.resumed_from === second?.run_id);
    expect(third).toMatchObject({ status: "completed", retry_count: 2 });
    expect(calls).toEqual({ fetch: 1, clean: 2, summarize: 1, review: 2, publish: 1 });
    await r.provider.shutdown();
  });

  it("refuses to resume a completed run, another pipeline's run, or an unknown one", async () => {
    const r = recording();
    const { pipeline } = countingPipeline();
    await pipeline.run({ trail: [] }, { tracer: r.tracer, store: r.db, codeRef: "c1" });
    const [done] = (await flushed(r)).runs as [RunRow];
    const resume = (id: string, p = pipeline) =>
      p.resume(id, { tracer: r.tracer, store: r.db, codeRef: "c1" });
    await expect(resume(done.run_id)).rejects.toThrow(
      new ResumeError(
        `run ${done.run_id} is completed: only failed, crashed or timed-out runs can be resumed`,
      ),
    );
    const other = definePipeline({ name: "other", stages: [{ name: "a", run: () => 1 }] });
    await expect(resume(done.run_id, other as never)).rejects.toThrow(
      `run ${done.run_id} is a run of pipeline "five-stages", not of "other"`,
    );
    await expect(resume("0123456789abcdef")).rejects.toThrow(
      `no run matches "0123456789abcdef" in ${r.db}: it did not run there, or it was pruned`,
    );
    await r.provider.shutdown();
  });

  it("refuses to resume from a file that is not a store, and leaves the file as it is", async () => {
    const r = recording();
    const { pipeline } = countingPipeline();
    const notAStore = join(dirname(r.db), "notes.txt");
    writeFileSync(notAStore, "not a store\n");
    await expect(
      pipeline.resume("abcd1234", { tracer: r.tracer, store: notAStore, codeRef: "c1" }),
    ).rejects.toThrow(`cannot read run "abcd1234": ${notAStore} is not a runtrail store`);
    expect(readFileSync(notAStore, "utf8")).toBe("not a store\n");
    expect(readdirSync(dirname(r.db)).filter((f) => f.startsWith("notes.txt"))).toEqual([
      "notes.txt",
    ]);
    await r.provider.shutdown();
  });

  it("refuses to resume a pruned run, and a run whose snapshots are gone", async () => {
    const r = recording();
    const { pipeline, control } = countingPipeline({ failAt: "review" });
    const pruned = await failedRun(r, pipeline);
    const kept = await failedRun(r, pipeline, { codeRef: "c2" });
    control.failAt = undefined;
    await r.processor.forceFlush();
    await withStore(r.db, (session) =>
      pruneRuns(session, {
        before: pruned.started_at + 1,
        dryRun: false,
        snapshotGraceMs: 0,
      }),
    );
    const options = { tracer: r.tracer, store: r.db, codeRef: "c1" };
    await expect(pipeline.resume(pruned.run_id, options)).rejects.toThrow(
      "it did not run there, or it was pruned",
    );
    const summarize = (await flushed(r)).stages.find(
      (s) => s.run_id === kept.run_id && s.name === "summarize",
    ) as StageRow;
    rmSync(snapshotFileOf(r.db, summarize.snapshot as string) as string);
    await expect(pipeline.resume(kept.run_id, options)).rejects.toThrow(
      new ResumeError(
        `run ${kept.run_id} cannot be resumed: the snapshot ${summarize.snapshot} is gone (pruned or deleted)`,
      ),
    );
    await r.provider.shutdown();
  });

  it("refuses to resume, without a crash, while tracking is off", async () => {
    const r = recording();
    const { pipeline } = countingPipeline();
    await expect(
      pipeline.resume("0123456789abcdef", { tracer: r.tracer, store: r.db, tracking: false }),
    ).rejects.toThrow(/^tracking is off/);
    await r.provider.shutdown();
  });
});

describe("definePipeline: content-addressed checkpoints", () => {
  it("reuses completed stages for the same input, code and config, and counts no LLM calls", async () => {
    const r = recording();
    const { pipeline, calls } = countingPipeline();
    const options = { tracer: r.tracer, store: r.db, codeRef: "c1", configHash: "k1" };
    const first = await pipeline.run({ trail: ["x"] }, options);
    // A different input misses the first stage; the whole run is not reused either.
    await pipeline.run({ trail: ["y"] }, options);
    expect(calls.fetch).toBe(2);
    const again = await pipeline.run({ trail: ["x"] }, options);
    expect(again).toEqual(first);
    expect(calls).toEqual({ fetch: 2, clean: 2, summarize: 2, review: 2, publish: 2 });
    const { runs, stages } = await flushed(r);
    const third = runs[2] as RunRow;
    expect(third).toMatchObject({
      status: "completed",
      cached_from: runs[0]?.run_id,
      llm_calls: 0,
      stages_completed: 5,
    });
    expect(stagesOf(stages, third.run_id).every(([, status]) => status === "cached")).toBe(true);
    await r.provider.shutdown();
  });

  it("misses when the code ref or the config hash changed", async () => {
    const r = recording();
    const { pipeline, calls } = countingPipeline();
    const base = { tracer: r.tracer, store: r.db };
    await pipeline.run({ trail: [] }, { ...base, codeRef: "c1", configHash: "k1" });
    await pipeline.run({ trail: [] }, { ...base, codeRef: "c2", configHash: "k1" });
    await pipeline.run({ trail: [] }, { ...base, codeRef: "c2", configHash: "k2" });
    expect(calls.fetch).toBe(3);
    await pipeline.run({ trail: [] }, { ...base, codeRef: "c1", configHash: "k1" });
    expect(calls.fetch).toBe(3);
    await r.provider.shutdown();
  });

  it("reuses single stages when only a later stage's input differs", async () => {
    const r = recording();
    const { pipeline, calls, control } = countingPipeline({ failAt: "review" });
    const options = { tracer: r.tracer, store: r.db, codeRef: "c1" };
    await expect(pipeline.run({ trail: [] }, options)).rejects.toThrow();
    control.failAt = undefined;
    // The same input: stages 1 to 3 come from the failed run's checkpoints.
    await pipeline.run({ trail: [] }, options);
    expect(calls).toEqual({ fetch: 1, clean: 1, summarize: 1, review: 2, publish: 1 });
    const { runs, stages } = await flushed(r);
    const second = runs[1] as RunRow;
    expect(stagesOf(stages, second.run_id)).toEqual([
      ["fetch", "cached"],
      ["clean", "cached"],
      ["summarize", "cached"],
      ["review", "completed"],
      ["publish", "completed"],
    ]);
    const cachedRow = stages.find((s) => s.run_id === second.run_id && s.name === "fetch");
    expect(cachedRow?.cached_from).toBe(runs[0]?.run_id);
    expect(cachedRow?.cache_key).toMatch(/^[0-9a-f]{64}$/);
    await r.provider.shutdown();
  });

  it("lets a stage or a whole run opt out, and reuses nothing without a code ref", async () => {
    const r = recording();
    const { pipeline, calls } = countingPipeline({ cacheOff: ["publish"] });
    const options = { tracer: r.tracer, store: r.db, codeRef: "c1" };
    await pipeline.run({ trail: [] }, options);
    await pipeline.run({ trail: [] }, { ...options, cache: false });
    expect(calls.fetch).toBe(2);
    // The whole run is never reused while a stage opts out; that stage always runs.
    await pipeline.run({ trail: [] }, options);
    expect(calls).toMatchObject({ fetch: 2, publish: 3 });
    const saved = process.env.RUNTRAIL_CODE_REF;
    process.env.RUNTRAIL_CODE_REF = "";
    try {
      const noGit = definePipeline({
        name: "no-code-ref",
        stages: [{ name: "only", run: () => (calls.only = (calls.only ?? 0) + 1) }],
      });
      // Outside git, with no code ref given, a code change could not be told: nothing is reused.
      const cwd = process.cwd();
      process.chdir("/");
      try {
        await noGit.run(undefined, { tracer: r.tracer, store: r.db });
        await noGit.run(undefined, { tracer: r.tracer, store: r.db });
      } finally {
        process.chdir(cwd);
      }
      expect(calls.only).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.RUNTRAIL_CODE_REF;
      else process.env.RUNTRAIL_CODE_REF = saved;
    }
    await r.provider.shutdown();
  });

  it("runs the stage when its checkpoint's snapshot is gone, and prune keeps shared snapshots", async () => {
    const r = recording();
    const { pipeline, calls } = countingPipeline();
    const options = { tracer: r.tracer, store: r.db, codeRef: "c1" };
    await pipeline.run({ trail: [] }, options);
    const { runs, stages } = await flushed(r);
    const fetch = stages.find((s) => s.name === "fetch") as StageRow;
    const snapshots = new SnapshotStore(r.db);
    expect(await snapshots.read(fetch.snapshot as string)).toEqual({ trail: ["fetch"] });
    // Pruning the only run frees its snapshots once they are past the grace period.
    const file = snapshotFileOf(r.db, fetch.snapshot as string) as string;
    const old = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(file, old, old);
    const pruned = await withStore(r.db, (session) =>
      pruneRuns(session, { before: (runs[0] as RunRow).started_at + 1, dryRun: false }),
    );
    expect(pruned).toMatchObject({ runs: 1, snapshots: 1 });
    expect(snapshots.has(fetch.snapshot as string)).toBe(false);
    await pipeline.run({ trail: [] }, options);
    expect(calls.fetch).toBe(2);
    expect(calls.clean).toBe(1);
    await r.provider.shutdown();
  });
});
