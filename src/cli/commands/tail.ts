import { distinctIdPrefixes, lookalikeRuns, type RunIds } from "../../query/id-prefixes.js";
import { listRuns } from "../../query/list-runs.js";
import type { RunFilter } from "../../query/run-filter.js";
import { type RunRow, withIsoTimes } from "../../record/rows.js";
import { SHORT_ID_DIGITS } from "../../record/run-id.js";
import { isRunStatus, RUN_STATUSES, type RunStatus } from "../../record/run-status.js";
import { parseTimePoint } from "../../util/duration.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  type CommandContext,
  type ParsedValues,
  stringValue,
  stringValues,
} from "../_command.js";
import { formatCount, formatProgress, formatRunDuration, formatTime, jsonOf } from "../_format.js";
import { type Remote, remoteLookalikeRuns, remoteOf, remoteRuns, URL_USAGE } from "../_remote.js";
import { parseTimeOption, STALE_AFTER_USAGE, useStore } from "../_store.js";
import { paintStatus, type Style } from "../_style.js";
import { renderTable } from "../_table.js";
import { CliError, ExitCode } from "../cli-error.js";

const COLUMNS = [
  { header: "Run ID" },
  { header: "Pipeline" },
  { header: "Status" },
  { header: "Stage" },
  { header: "Started At (UTC)" },
  { header: "Stages", align: "right" as const },
  { header: "Rows In", align: "right" as const },
  { header: "Rows Out", align: "right" as const },
  { header: "LLM", align: "right" as const },
  { header: "Tokens", align: "right" as const },
  { header: "Duration", align: "right" as const },
];

/** A run's cells; `id` is the prefix of its run id shown (see `distinctIdPrefixes`). */
function cells(run: RunRow, id: string, style: Style): string[] {
  const stage = run.status === "running" ? run.current_stage : run.failed_stage;
  return [
    id,
    run.pipeline,
    paintStatus(style, run.status),
    stage ?? "-",
    formatTime(run.started_at),
    formatProgress(run),
    formatCount(run.rows_in),
    formatCount(run.rows_out),
    formatCount(run.llm_calls),
    formatCount(run.tokens),
    formatRunDuration(run),
  ];
}

/** Parses `--status`, `--pipeline`, `--since` into a filter. */
export function filterOf(values: ParsedValues): RunFilter {
  const statuses = stringValues(values, "status");
  for (const status of statuses) {
    if (!isRunStatus(status)) {
      throw new CliError(
        `--status: "${status}" is not a status; use one of ${RUN_STATUSES.join(", ")}`,
        ExitCode.usage,
      );
    }
  }
  const since = stringValue(values, "since");
  const pipeline = stringValue(values, "pipeline");
  return {
    ...(statuses.length > 0 ? { statuses: statuses as RunStatus[] } : {}),
    ...(pipeline !== undefined ? { pipeline } : {}),
    ...(since !== undefined ? { since: parseTimeOption("--since", since, parseTimePoint) } : {}),
  };
}

function countOf(values: ParsedValues): number {
  const text = stringValue(values, "n") ?? "10";
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new CliError(`-n: "${text}" is not a number of runs from 1 to 10000`, ExitCode.usage);
  }
  return n;
}

interface Latest {
  runs: RunRow[];
  total: number;
  /** The id shown of each run picked, by run id. */
  ids: Map<string, string>;
}

/**
 * The latest runs, from the server if there is one, else from the store itself, with the ids to
 * show for those `pick` picks of them: ids that `runtrail show` resolves to that run alone,
 * among the runs read and the runs whose ids look like theirs.
 */
async function latestRuns(
  context: CommandContext,
  remote: Remote | undefined,
  filter: RunFilter,
  limit: number,
  pick: (runs: RunRow[]) => RunRow[],
): Promise<{ path: string; result: Latest | undefined }> {
  const withIds = async (
    { runs, total }: { runs: RunRow[]; total: number },
    lookalikesOf: (runIds: string[]) => Promise<RunIds[]>,
  ): Promise<Latest> => {
    const picked = pick(runs);
    const lookalikes = await lookalikesOf(picked.map((r) => r.run_id));
    return { runs, total, ids: distinctIdPrefixes(picked, [...runs, ...lookalikes]) };
  };
  if (remote) {
    const listed = await remoteRuns(remote, filter, limit);
    return {
      path: remote.url,
      result: await withIds(listed, (ids) => remoteLookalikeRuns(remote, ids)),
    };
  }
  return useStore(context.values, context.io, async (s) =>
    withIds(await listRuns(s, { ...filter, limit }), (ids) => lookalikeRuns(s, ids)),
  );
}

/** How many of the latest runs each poll of `--follow` reads. */
const FOLLOWED_RUNS = 200;

async function follow(
  context: CommandContext,
  remote: Remote | undefined,
  filter: RunFilter,
  seen: Map<string, string>,
  idWidth: number,
) {
  const { io, values } = context;
  const changed = (runs: RunRow[]) =>
    values.json ? [] : runs.filter((r) => seen.get(r.run_id) !== r.status);
  // Ids are padded to the widest shown so far, so that the lines keep their columns as long as
  // no run needs a longer id.
  let width = idWidth;
  // Ctrl-C also cancels a request to a server that does not answer, rather than waiting for it.
  const stopping = new AbortController();
  const stopped = Promise.race([io.interrupted, io.outputClosed]).then(() => stopping.abort());
  const server = remote && { ...remote, signal: stopping.signal };
  for (;;) {
    const stop = await Promise.race([
      stopped.then(() => true),
      // A ref'd timer: following is what keeps the command running until Ctrl-C.
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000)),
    ]);
    if (stop) return;
    let result: Latest | undefined;
    try {
      ({ result } = await latestRuns(context, server, filter, FOLLOWED_RUNS, changed));
    } catch (error) {
      if (stopping.signal.aborted) return;
      throw error;
    }
    for (const run of [...(result?.runs ?? [])].reverse()) {
      if (seen.get(run.run_id) === run.status) continue;
      seen.set(run.run_id, run.status);
      if (values.json) {
        io.stdout(`${JSON.stringify(withIsoTimes(run))}\n`);
        continue;
      }
      const id = result?.ids.get(run.run_id) ?? run.run_id;
      width = Math.max(width, id.length);
      io.stdout(`${cells(run, id.padEnd(width), io.style).join("  ")}\n`);
    }
  }
}

export const tailCommand: Command = {
  usage: [
    "runtrail tail [-n 10] [--status S[,S]] [--pipeline P] [--since 24h] [--follow]",
    "",
    "  -n N               how many runs (default 10)",
    `  --status S         only these statuses: ${RUN_STATUSES.join(", ")}`,
    "  --pipeline P       only this pipeline",
    "  --since T          only runs started since T: a duration ago (24h, 7d) or a date",
    "  -f, --follow       keep printing runs as they start and change, until Ctrl-C",
    STALE_AFTER_USAGE,
    URL_USAGE,
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    url: { type: "string" },
    n: { type: "string", short: "n" },
    status: { type: "string", multiple: true },
    pipeline: { type: "string" },
    since: { type: "string" },
    follow: { type: "boolean", short: "f", default: false },
    "stale-after": { type: "string" },
  },
  async run(context) {
    const { values, io } = context;
    const filter = filterOf(values);
    const limit = countOf(values);
    const remote = remoteOf(values, io);
    // Following, every run a poll reads is read now too, so that those already there count as
    // seen: only runs that start or change from now on are printed.
    const read = values.follow ? Math.max(limit, FOLLOWED_RUNS) : limit;
    const shown = (all: RunRow[]) => (values.json ? [] : all.slice(0, limit));
    const { path, result } = await latestRuns(context, remote, filter, read, shown);
    const runs = (result?.runs ?? []).slice(0, limit);
    const idOf = (run: RunRow) => result?.ids.get(run.run_id) ?? run.run_id;
    if (result === undefined) io.stderr(`runtrail: no runs recorded yet (no store at ${path})\n`);
    if (values.json && values.follow) {
      for (const run of [...runs].reverse()) io.stdout(`${JSON.stringify(withIsoTimes(run))}\n`);
    } else if (values.json) {
      io.stdout(`${jsonOf(runs.map(withIsoTimes))}\n`);
    } else if (runs.length > 0 || result !== undefined) {
      io.stdout(
        `${renderTable(
          COLUMNS,
          runs.map((r) => cells(r, idOf(r), io.style)),
        )}\n`,
      );
      if (result && result.total > runs.length) {
        io.stdout(`${runs.length} of ${result.total} runs\n`);
      }
    }
    if (values.follow) {
      const seen = new Map((result?.runs ?? []).map((r) => [r.run_id, r.status]));
      const idWidth = Math.max(SHORT_ID_DIGITS, ...runs.map((r) => idOf(r).length));
      await follow(context, remote, filter, seen, idWidth);
    }
    return ExitCode.ok;
  },
};
