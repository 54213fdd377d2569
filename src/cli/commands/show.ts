import { sep } from "node:path";
import { lookupRun } from "../../query/find-run.js";
import { runStages } from "../../query/run-stages.js";
import { type ArtifactRow, type RunRow, type StageRow, withIsoTimes } from "../../record/rows.js";
import { InvalidIdPrefixError, normalizeIdPrefix } from "../../record/run-id.js";
import { liveClaim } from "../../store/server-claim.js";
import { artifactFolderOf } from "../../store/store-files.js";
import { formatSeconds } from "../../util/duration.js";
import {
  type CliIo,
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  type ParsedValues,
  storePathOf,
} from "../_command.js";
import {
  formatBytes,
  formatCount,
  formatProgress,
  formatRunDuration,
  formatTime,
  jsonOf,
  shortId,
} from "../_format.js";
import { remoteOf, remoteRun, URL_USAGE } from "../_remote.js";
import { STALE_AFTER_USAGE, useStore } from "../_store.js";
import { paint, paintStatus, type Style } from "../_style.js";
import { renderPanel, renderTable } from "../_table.js";
import { CliError, ExitCode } from "../cli-error.js";

/** How a run stopped in a stage, for the stage it stopped in. */
const STOPPED_IN: Record<string, string> = {
  failed: "failed",
  crashed: "crashed",
  timed_out: "timed out",
};

/** `, now in load` for a running run, `, crashed in load` for a run that stopped in a stage. */
function stageNow(run: RunRow): string {
  if (run.current_stage) return `, now in ${run.current_stage}`;
  const stopped = STOPPED_IN[run.status];
  return stopped && run.failed_stage ? `, ${stopped} in ${run.failed_stage}` : "";
}

function detailLines(run: RunRow, style: Style): string[] {
  const lines = [
    `Run ID:   ${run.run_id}`,
    `Trace ID: ${run.trace_id ?? "-"}`,
    `Pipeline: ${run.pipeline}${run.service_name ? `  (service ${run.service_name})` : ""}`,
    `Status:   ${paintStatus(style, run.status)}${run.status_reason ? ` - ${run.status_reason}` : ""}`,
  ];
  if (run.tenant_id) lines.push(`Tenant:   ${run.tenant_id}`);
  if (run.resumed_from) lines.push(`Resumed from: ${run.resumed_from}`);
  if (run.cached_from) lines.push(`Reused from:  ${run.cached_from}`);
  if (run.entry_point) lines.push(`Entry point:  ${run.entry_point}`);
  lines.push(
    "",
    "Timestamps:",
    `  Started:  ${formatTime(run.started_at)} UTC`,
    `  Finished: ${run.finished_at === null ? "-" : `${formatTime(run.finished_at)} UTC`}`,
    `  Duration: ${formatRunDuration(run)}`,
  );
  if (run.deadline_at !== null) lines.push(`  Deadline: ${formatTime(run.deadline_at)} UTC`);
  if (run.status === "running" || run.status === "crashed") {
    lines.push(`  Last heartbeat: ${formatTime(run.last_heartbeat)} UTC`);
  }
  lines.push(
    "",
    "Metrics:",
    `  Rows In:   ${formatCount(run.rows_in)}`,
    `  Rows Out:  ${formatCount(run.rows_out)}`,
    `  LLM calls: ${formatCount(run.llm_calls)}`,
    `  Tokens:    ${formatCount(run.tokens)} (input ${formatCount(run.input_tokens)}, output ${formatCount(run.output_tokens)})`,
    `  Stages:    ${formatProgress(run)} completed${stageNow(run)}`,
    `  Retries:   ${run.retry_count}`,
  );
  if (run.stages_failed.length > 0) lines.push(`  Failed stages: ${run.stages_failed.join(", ")}`);
  if (run.input_fingerprint || run.code_ref || run.config_hash) {
    lines.push("", "Fingerprints:");
    if (run.input_fingerprint) lines.push(`  Input:  ${run.input_fingerprint}`);
    if (run.code_ref) lines.push(`  Code:   ${run.code_ref}`);
    if (run.config_hash) lines.push(`  Config: ${run.config_hash}`);
  }
  if (run.owner_pid !== null) {
    lines.push("", `Owner: pid ${run.owner_pid} on ${run.owner_host ?? "?"}`);
  }
  if (run.metadata && Object.keys(run.metadata).length > 0) {
    lines.push("", "Metadata:");
    for (const [key, value] of Object.entries(run.metadata)) {
      lines.push(`  ${key}: ${JSON.stringify(value)}`);
    }
  }
  if (run.error || run.error_message) {
    lines.push("", `Error${run.failed_stage ? ` (stage ${run.failed_stage})` : ""}:`);
    lines.push(`  ${paint(style, "red", run.error ?? run.error_message ?? "")}`);
    const stack = (run.error_stack ?? "").split("\n").filter((l) => l.trim().length > 0);
    // A JavaScript stack repeats the error line first; show it once.
    if (stack[0]?.trim() === run.error) stack.shift();
    for (const line of stack) lines.push(`    ${line.trim()}`);
  }
  return lines;
}

function stageTable(stages: StageRow[], style: Style): string {
  return renderTable(
    [
      { header: "#", align: "right" },
      { header: "Stage" },
      { header: "Status" },
      { header: "Try", align: "right" },
      { header: "Rows In", align: "right" },
      { header: "Rows Out", align: "right" },
      { header: "LLM", align: "right" },
      { header: "Tokens", align: "right" },
      { header: "Duration", align: "right" },
      { header: "Error" },
    ],
    stages.map((s) => [
      String(s.seq + 1),
      s.name,
      paintStatus(style, s.status),
      String(s.attempt),
      formatCount(s.rows_in),
      formatCount(s.rows_out),
      formatCount(s.llm_calls),
      formatCount(s.tokens),
      s.duration_seconds === null ? "-" : formatSeconds(s.duration_seconds),
      s.error_message ?? s.error_type ?? "",
    ]),
  );
}

/** A run found by a prefix of its run id or trace id, with its stages. */
export interface FoundRun {
  run: RunRow;
  stages: StageRow[];
  /** The store's file, when the run was read from it or through the server that holds it. */
  storePath: string | undefined;
}

/**
 * The one run a prefix names: read through the runtrail server when one holds the store (or
 * `--url` names one), else from the store file. No match and several matches are CliErrors.
 */
export async function findRun(values: ParsedValues, io: CliIo, prefix: string): Promise<FoundRun> {
  try {
    normalizeIdPrefix(prefix);
  } catch (error) {
    if (error instanceof InvalidIdPrefixError) throw new CliError(error.message, ExitCode.usage);
    throw error;
  }
  const remote = remoteOf(values, io);
  const { path, result } = remote
    ? { path: remote.url, result: await remoteRun(remote, prefix) }
    : await useStore(values, io, async (session) => {
        // The prefix was checked above.
        const lookup = await lookupRun(session, prefix);
        if (lookup.found !== "one") return lookup;
        return { ...lookup, stages: await runStages(session, lookup.run) };
      });
  if (result === undefined || result.found === "none") {
    throw new CliError(
      result === undefined
        ? `no run matches "${prefix}": there is no store at ${path}`
        : `no run matches "${prefix}"`,
    );
  }
  if (result.found === "many") {
    throw new CliError(
      `"${prefix}" matches ${result.candidates.length >= 10 ? "10 or more" : result.candidates.length} runs; give more of the id:`,
      ExitCode.usage,
      result.candidates.map(
        (r) => `  ${r.run_id}  ${r.pipeline}  ${r.status}  ${formatTime(r.started_at)}`,
      ),
    );
  }
  // A server named by --url (or RUNTRAIL_URL) may keep its store anywhere: the store here is
  // its store only when the store's claim file names that server.
  const local = storePathOf(values, io);
  const storePath =
    remote === undefined ||
    remote.holdsStoreHere ||
    liveClaim(local)?.url.replace(/\/+$/, "") === remote.url
      ? local
      : undefined;
  return { run: result.run, stages: result.stages, storePath };
}

function artifactTable(artifacts: readonly ArtifactRow[]): string {
  return renderTable(
    [
      { header: "#", align: "right" },
      { header: "Kind" },
      { header: "File" },
      { header: "Media Type" },
      { header: "Size", align: "right" },
      { header: "Stage" },
    ],
    // In order of their sequence numbers, as the run row keeps them.
    artifacts.map((a) => [
      String(a.seq),
      a.kind,
      a.file,
      a.media_type,
      formatBytes(a.size),
      a.stage ?? "-",
    ]),
  );
}

export const showCommand: Command = {
  usage: [
    "runtrail show <run-id-or-trace-id-prefix>",
    "",
    "  The prefix needs at least 4 hex digits; dashes are optional.",
    STALE_AFTER_USAGE,
    URL_USAGE,
    ...COMMON_USAGE,
  ].join("\n"),
  options: { ...COMMON_OPTIONS, url: { type: "string" }, "stale-after": { type: "string" } },
  argument: "one run id or trace id prefix",
  async run({ values, positionals, io }) {
    // run-cli gives exactly one.
    const prefix = positionals[0] as string;
    const { run, stages, storePath } = await findRun(values, io, prefix);
    if (values.json) {
      io.stdout(`${jsonOf({ ...withIsoTimes(run), stages: stages.map(withIsoTimes) })}\n`);
    } else {
      const title = `Run Details: ${run.pipeline} ${shortId(run.run_id, run.trace_id)}`;
      io.stdout(`${renderPanel(title, detailLines(run, io.style))}\n`);
      if (stages.length > 0) io.stdout(`Stages:\n${stageTable(stages, io.style)}\n`);
      const artifacts = run.artifacts ?? [];
      if (artifacts.length > 0) {
        const folder =
          storePath === undefined
            ? `artifacts/${run.run_id}/ next to the server's store`
            : `${artifactFolderOf(storePath, run.run_id)}${sep}`;
        io.stdout(`Artifacts: ${folder}\n${artifactTable(artifacts)}\n`);
      }
    }
    return ExitCode.ok;
  },
};
