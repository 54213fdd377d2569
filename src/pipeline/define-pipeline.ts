import { diag, TraceFlags, trace } from "@opentelemetry/api";
import { RunTrailAttributes as R } from "../record/attributes.js";
import type { RunStatus } from "../record/run-status.js";
import { resolveStorePath } from "../store/store-path.js";
import { detectCodeRef } from "./code-ref.js";
import { fingerprint } from "./fingerprint.js";
import type { PipelineStage } from "./pipeline-stage.js";
import {
  type CachedStage,
  type RunPipelineOptions,
  runPipeline,
  trackingOn,
} from "./run-pipeline.js";
import { type Checkpoint, contentAddress, type SnapshotRef, SnapshotStore } from "./snapshots.js";
import { readStoredRun, type StoredRun, type StoredRunLookup } from "./stored-run.js";

/** One named stage: a function from the previous stage's output (or the run's input) to its own. */
export interface StageDefinition<In = unknown, Out = unknown> {
  name: string;
  run(input: In, stage: PipelineStage): Promise<Out> | Out;
  /** Attempts after a failure before the stage (and the run) fails. Default 0. */
  retries?: number;
  retryDelayMs?: number;
  /**
   * Keep the stage's output as a snapshot when it completes, so a failed run can resume after
   * it and a later run can reuse it. Default true; turn it off for outputs that are not data
   * (connections, streams).
   */
  snapshot?: boolean;
  /**
   * Reuse the output of an earlier execution with the same content address instead of running
   * the stage. Default true; turn it off for stages run for their effects (publishing, sending).
   */
  cache?: boolean;
}

export interface PipelineDefinition {
  name: string;
  stages: readonly StageDefinition[];
  /**
   * `import.meta.url` of the module that exports this pipeline. Recorded with each run, it lets
   * `runtrail resume <run-id>` load the pipeline and resume the run.
   */
  module?: string;
}

/** What a stage did, told as it happens (for progress output). */
export interface StageProgress {
  /** The run the stage belongs to. */
  runId: string;
  /** 1-based place of the stage. */
  index: number;
  total: number;
  name: string;
  outcome: "started" | "completed" | "cached" | "failed";
  /** For `cached`: the run whose output was reused. */
  cachedFrom?: string;
  durationMs?: number;
  error?: unknown;
}

export interface PipelineRunOptions extends Omit<RunPipelineOptions, "stages"> {
  /**
   * Reuse completed work: stages (and whole runs) whose content address (name, input
   * fingerprint, code ref, config hash) completed before are not run again. Needs a code ref
   * (detected from git, `RUNTRAIL_CODE_REF`, or `codeRef`): without one, nothing is reused.
   * Default true.
   */
  cache?: boolean;
  /** Told as each stage starts and ends. */
  onProgress?: (progress: StageProgress) => void;
}

export interface ResumeOptions extends PipelineRunOptions {
  /** Read the failed run through this runtrail server. Default: the server holding the store. */
  url?: string;
  /** Token for that server. Default `RUNTRAIL_TOKEN`. */
  token?: string;
}

/** A run cannot be resumed; the message says why. */
export class ResumeError extends Error {
  override name = "ResumeError";
}

/** Statuses of runs that can be resumed. */
export const RESUMABLE_STATUSES: readonly RunStatus[] = ["failed", "crashed", "timed_out"];

const PIPELINE = Symbol.for("runtrail.pipeline");

/** Where a resumed run starts, and what it carries over from the run it resumes. */
interface ResumePlan {
  from: StoredRun["run"];
  /**
   * Outputs of the stages before the first one to run, in order, where snapshotted: the run
   * starts at stage `carried.length`.
   */
  carried: (SnapshotRef | undefined)[];
  /** The input of that stage (the run's output when it is past the last stage). */
  input: unknown;
}

/**
 * A pipeline of named stages, each a function from the previous stage's output to its own. A
 * run is a run span with a stage span per stage, as `runPipeline` makes them; on top, each
 * output is snapshotted, completed work is reused, and a failed run can be resumed at the stage
 * that failed.
 */
export class Pipeline<In = unknown, Out = unknown> {
  readonly [PIPELINE] = true;
  readonly name: string;
  readonly stages: readonly StageDefinition[];
  readonly module: string | undefined;

  constructor(definition: PipelineDefinition) {
    this.name = definition.name;
    this.stages = [...definition.stages];
    this.module = definition.module;
  }

  /** Runs the pipeline on `input` as a new run and returns the last stage's output. */
  run(input: In, options: PipelineRunOptions = {}): Promise<Out> {
    return this.execute(input, options, undefined) as Promise<Out>;
  }

  /**
   * Resumes a failed, crashed or timed-out run of this pipeline: a new run, linked to it
   * (`resumed_from`, its retry count plus one, a span link), that takes the completed stages'
   * outputs from their snapshots and starts at the stage that failed. Completed stages are not
   * run again; they appear in the new run as `cached`.
   *
   * Given by id (or a prefix of it), the run is read from the store (through the runtrail
   * server when one holds it), so a run of this same process must have reached it: this
   * flushes the global tracer provider first; with a tracer of your own, flush its provider
   * before resuming. Given as already read (as `runtrail resume` does), it is not read again.
   */
  async resume(run: string | StoredRun, options: ResumeOptions = {}): Promise<Out> {
    if (!trackingOn(options.tracking)) {
      throw new ResumeError(
        "tracking is off (RUNTRAIL_ENABLED=false or tracking: false): no run was recorded, so none can be resumed",
      );
    }
    const store = resolveStorePath(options.store);
    const stored = typeof run === "string" ? await readRun(run, store, options) : run;
    const plan = await this.plan(stored, new SnapshotStore(store));
    return (await this.execute(plan.input as In, options, plan)) as Out;
  }

  private async plan(stored: StoredRun, snapshots: SnapshotStore): Promise<ResumePlan> {
    const { run, stages } = stored;
    if (run.pipeline !== this.name) {
      throw new ResumeError(
        `run ${run.run_id} is a run of pipeline "${run.pipeline}", not of "${this.name}"`,
      );
    }
    if (!RESUMABLE_STATUSES.includes(run.status)) {
      throw new ResumeError(
        `run ${run.run_id} is ${run.status}: only failed, crashed or timed-out runs can be resumed`,
      );
    }
    const done = new Map<string, SnapshotRef | null>();
    for (const stage of [...stages].sort((a, b) => a.seq - b.seq)) {
      if (stage.status === "completed" || stage.status === "cached") {
        done.set(stage.name, stage.snapshot ?? done.get(stage.name) ?? null);
      }
    }
    let firstUndone = 0;
    while (firstUndone < this.stages.length && done.has(this.stageAt(firstUndone).name)) {
      firstUndone++;
    }
    // Start at the first stage not completed, or earlier if the output it needs was not kept.
    const inputOf = (k: number) =>
      k === 0 ? run.input_snapshot : (done.get(this.stageAt(k - 1).name) ?? null);
    let startAt = firstUndone;
    while (startAt > 0 && inputOf(startAt) === null) startAt--;
    const inputRef = inputOf(startAt);
    if (inputRef === null) {
      throw new ResumeError(
        `run ${run.run_id} cannot be resumed: neither its input nor the output of a stage before "${this.stageAt(firstUndone)?.name ?? "the end"}" was snapshotted`,
      );
    }
    let input: unknown;
    try {
      input = await snapshots.read(inputRef);
    } catch (error) {
      throw new ResumeError(`run ${run.run_id} cannot be resumed: ${(error as Error).message}`);
    }
    const carried = this.stages.slice(0, startAt).map((s) => done.get(s.name) ?? undefined);
    return { from: run, carried, input };
  }

  private stageAt(index: number): StageDefinition {
    return this.stages[index] as StageDefinition;
  }

  private async execute(
    input: unknown,
    options: PipelineRunOptions,
    resume: ResumePlan | undefined,
  ): Promise<unknown> {
    const { onProgress, cache, ...runOptions } = options;
    const snapshots = trackingOn(options.tracking)
      ? new SnapshotStore(resolveStorePath(options.store))
      : undefined;
    const codeRef = options.codeRef ?? detectCodeRef() ?? undefined;
    const configHash = options.configHash ?? null;
    const total = this.stages.length;
    // Reuse needs outputs kept, and a code ref to tell a change of code.
    const reuseOn = snapshots !== undefined && (cache ?? true) && codeRef !== undefined;
    const addressOf = (
      of: "stage" | "run",
      stage: string | readonly string[],
      inputFingerprint: string | undefined,
    ) =>
      reuseOn && codeRef !== undefined && inputFingerprint !== undefined
        ? contentAddress(of, { pipeline: this.name, stage, inputFingerprint, codeRef, configHash })
        : undefined;
    // Fingerprinted once: it is also the first stage's input fingerprint.
    const ownFingerprint =
      resume || options.inputFingerprint !== undefined ? undefined : tryFingerprint(input);
    const inputFingerprint = options.inputFingerprint ?? ownFingerprint;
    const runKey = resume
      ? undefined
      : addressOf(
          "run",
          this.stages.map((s) => s.name),
          inputFingerprint,
        );
    const wholeRun = await reusable(snapshots, runKey);
    const inputSnapshot = resume
      ? (resume.from.input_snapshot ?? undefined)
      : snapshots
        ? await trySnapshot(snapshots, input, "the run's input")
        : undefined;

    const attributes = { ...options.attributes };
    if (this.module) attributes[R.entryPoint] = this.module;
    if (inputSnapshot) attributes[R.inputSnapshot] = inputSnapshot;
    if (wholeRun) attributes[R.runCachedFrom] = wholeRun.checkpoint.run_id;
    const links = [...(options.links ?? [])];
    if (resume) {
      attributes[R.resumedFrom] = resume.from.run_id;
      attributes[R.retryCount] = resume.from.retry_count + 1;
      links.push({
        context: {
          traceId: resume.from.trace_id,
          spanId: resume.from.span_id,
          traceFlags: TraceFlags.SAMPLED,
        },
        attributes: { "runtrail.link": "resumed_from" },
      });
    }

    return runPipeline(
      this.name,
      {
        ...runOptions,
        stages: total,
        ...(inputFingerprint ? { inputFingerprint } : {}),
        ...(codeRef ? { codeRef } : {}),
        attributes,
        ...(links.length > 0 ? { links } : {}),
      },
      async (run) => {
        const tell = (progress: Omit<StageProgress, "runId" | "total">) => {
          try {
            onProgress?.({ runId: run.runId, total, ...progress });
          } catch (error) {
            diag.warn(`runtrail: onProgress threw: ${(error as Error).message}`);
          }
        };
        /** The output of stage `i` is known: recorded as a cached stage, not run. */
        const cached = (i: number, name: string, stage: CachedStage) => {
          run.cachedStage(name, stage);
          tell({ index: i + 1, name, outcome: "cached", cachedFrom: stage.cachedFrom });
        };
        if (wholeRun) {
          const { run_id: from, stages } = wholeRun.checkpoint;
          for (const [i, s] of (stages ?? []).entries()) {
            cached(i, s.name, { snapshot: s.snapshot, cachedFrom: from });
          }
          return wholeRun.output;
        }
        const produced: { name: string; snapshot: SnapshotRef }[] = [];
        let value = input;
        let stageRetries = 0;
        // The run it resumes counted as a try, and so does each retry of its own.
        const countTries = () => {
          if (resume) {
            run.span.setAttribute(R.retryCount, resume.from.retry_count + 1 + stageRetries);
          }
        };
        for (let i = 0; i < total; i++) {
          const definition = this.stageAt(i);
          const name = definition.name;
          if (resume && i < resume.carried.length) {
            const snapshot = resume.carried[i];
            cached(i, name, { snapshot, cachedFrom: resume.from.run_id });
            if (snapshot) produced.push({ name, snapshot });
            continue;
          }
          const stageInput = value;
          const keepOutput = snapshots !== undefined && definition.snapshot !== false;
          const canReuse = reuseOn && keepOutput && definition.cache !== false;
          // The first stage's input is the run's, fingerprinted already.
          const fingerprintOfInput = canReuse
            ? ((i === 0 ? ownFingerprint : undefined) ?? tryFingerprint(stageInput))
            : undefined;
          const key = addressOf("stage", name, fingerprintOfInput);
          const hit = await reusable(snapshots, key);
          if (hit) {
            const { snapshot, run_id } = hit.checkpoint;
            cached(i, name, { snapshot, cachedFrom: run_id, cacheKey: key });
            produced.push({ name, snapshot });
            value = hit.output;
            continue;
          }
          let snapshot: SnapshotRef | undefined;
          const started = Date.now();
          tell({ index: i + 1, name, outcome: "started" });
          try {
            value = await run.stage(
              name,
              async (stage) => {
                if (stage.attempt > 1) stageRetries++;
                const output = await definition.run(stageInput, stage);
                if (keepOutput && snapshots) {
                  snapshot = await trySnapshot(snapshots, output, `the output of stage "${name}"`);
                  if (snapshot) {
                    stage.span.setAttribute(R.stageSnapshot, snapshot);
                    if (key) stage.span.setAttribute(R.stageCacheKey, key);
                  }
                }
                return output;
              },
              { retries: definition.retries, retryDelayMs: definition.retryDelayMs },
            );
          } catch (error) {
            const durationMs = Date.now() - started;
            tell({ index: i + 1, name, outcome: "failed", durationMs, error });
            countTries();
            throw error;
          }
          tell({ index: i + 1, name, outcome: "completed", durationMs: Date.now() - started });
          if (!snapshot) continue;
          produced.push({ name, snapshot });
          if (key && snapshots) {
            await snapshots
              .putCheckpoint(key, {
                snapshot,
                run_id: run.runId,
                stage: name,
                created_at: new Date().toISOString(),
              })
              .catch(warnNotKept("a checkpoint"));
          }
        }
        countTries();
        const last = produced[produced.length - 1];
        // A whole run is reused only when each of its stages could be.
        const everyStageCached = this.stages.every((s) => s.cache !== false);
        if (runKey && snapshots && everyStageCached && produced.length === total && last) {
          await snapshots
            .putCheckpoint(runKey, {
              snapshot: last.snapshot,
              run_id: run.runId,
              stage: null,
              stages: produced,
              created_at: new Date().toISOString(),
            })
            .catch(warnNotKept("the run's checkpoint"));
        }
        return value;
      },
    );
  }
}

/** Defines a pipeline of named stages; see {@link Pipeline}. */
export function definePipeline<In = unknown, Out = unknown>(
  definition: PipelineDefinition,
): Pipeline<In, Out> {
  if (typeof definition.name !== "string" || definition.name.length === 0) {
    throw new TypeError("definePipeline: give the pipeline a name");
  }
  if (definition.stages.length === 0) {
    throw new TypeError(`definePipeline: pipeline "${definition.name}" has no stages`);
  }
  const names = new Set<string>();
  for (const stage of definition.stages) {
    if (typeof stage.name !== "string" || stage.name.length === 0) {
      throw new TypeError(`definePipeline: a stage of "${definition.name}" has no name`);
    }
    if (names.has(stage.name)) {
      throw new TypeError(
        `definePipeline: pipeline "${definition.name}" has two stages named "${stage.name}"; a run resumes by stage name`,
      );
    }
    names.add(stage.name);
  }
  return new Pipeline<In, Out>(definition);
}

/** Whether a value is a pipeline made by `definePipeline`, of this copy of runtrail or another. */
export function isPipeline(value: unknown): value is Pipeline {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<symbol, unknown>)[PIPELINE] === true
  );
}

function tryFingerprint(value: unknown): string | undefined {
  try {
    return fingerprint(value);
  } catch {
    return undefined;
  }
}

async function trySnapshot(
  snapshots: SnapshotStore,
  value: unknown,
  what: string,
): Promise<SnapshotRef | undefined> {
  try {
    return await snapshots.write(value);
  } catch (error) {
    warnNotKept(`a snapshot of ${what}`)(error);
    return undefined;
  }
}

/** The output a content address produced before, when its checkpoint and snapshots are there. */
async function reusable(
  snapshots: SnapshotStore | undefined,
  key: string | undefined,
): Promise<{ checkpoint: Checkpoint; output: unknown } | undefined> {
  if (snapshots === undefined || key === undefined) return undefined;
  const checkpoint = await snapshots.checkpoint(key);
  if (checkpoint === undefined) return undefined;
  try {
    return { checkpoint, output: await snapshots.read(checkpoint.snapshot) };
  } catch (error) {
    diag.warn(`runtrail: ${(error as Error).message}; the stage runs instead`);
    return undefined;
  }
}

/** A run by id or prefix, read from the store or the server that holds it. */
async function readRun(id: string, store: string, options: ResumeOptions): Promise<StoredRun> {
  await flushGlobalProvider();
  let lookup: StoredRunLookup;
  try {
    lookup = await readStoredRun(
      {
        store,
        ...(options.url ? { url: options.url } : {}),
        ...(options.token ? { token: options.token } : {}),
      },
      id,
    );
  } catch (error) {
    throw new ResumeError(`cannot read run "${id}": ${(error as Error).message}`);
  }
  if (lookup.found === "none") {
    throw new ResumeError(
      `no run matches "${id}" in ${store}: it did not run there, or it was pruned`,
    );
  }
  if (lookup.found === "many") {
    throw new ResumeError(
      `"${id}" matches several runs (${lookup.candidates.join(", ")}): give more of the id`,
    );
  }
  return lookup.stored;
}

function warnNotKept(what: string): (error: unknown) => void {
  return (error) => diag.warn(`runtrail: ${what} was not kept: ${(error as Error).message}`);
}

async function flushGlobalProvider(): Promise<void> {
  const provider = trace.getTracerProvider() as unknown as {
    getDelegate?: () => unknown;
  };
  const delegate = (provider.getDelegate?.() ?? provider) as { forceFlush?: () => Promise<void> };
  if (typeof delegate.forceFlush === "function") await delegate.forceFlush();
}
