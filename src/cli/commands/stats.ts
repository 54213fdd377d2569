import {
  type GroupStats,
  groupStatsJson,
  runStats,
  type StatsGroup,
} from "../../query/run-stats.js";
import { formatSeconds, parseDuration, parseTimePoint } from "../../util/duration.js";
import { COMMON_OPTIONS, COMMON_USAGE, type Command, stringValue } from "../_command.js";
import { formatCount, formatPercent, jsonOf } from "../_format.js";
import { remoteOf, remoteStats, URL_USAGE } from "../_remote.js";
import { parseTimeOption, STALE_AFTER_USAGE, useStore } from "../_store.js";
import { renderTable } from "../_table.js";
import { CliError, ExitCode } from "../cli-error.js";

const GROUPS: readonly StatsGroup[] = ["pipeline", "stage", "tenant"];

function seconds(value: number | null): string {
  return value === null ? "-" : formatSeconds(value);
}

function row(group: GroupStats): string[] {
  const s = group.byStatus;
  return [
    group.key ?? "(none)",
    formatCount(group.runs),
    formatCount(s.completed),
    formatCount(s.degraded),
    formatCount(s.failed + s.timed_out),
    formatCount(s.crashed),
    formatCount(s.running),
    formatCount(s.rejected + s.cancelled),
    formatPercent(group.failureRate),
    seconds(group.p50Seconds),
    seconds(group.p95Seconds),
    formatCount(group.llmCalls),
    formatCount(group.tokens),
  ];
}

export const statsCommand: Command = {
  usage: [
    "runtrail stats [--since 7d] [--pipeline P] [--by pipeline|stage|tenant]",
    "",
    "  --since T          runs started since T: a duration ago (default 7d) or a date",
    "  --pipeline P       only this pipeline",
    "  --by G             group by pipeline (default), stage or tenant",
    "  --stuck-after DUR  a run still running after this long is stuck (default 1h)",
    STALE_AFTER_USAGE,
    URL_USAGE,
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    url: { type: "string" },
    since: { type: "string" },
    pipeline: { type: "string" },
    by: { type: "string" },
    "stuck-after": { type: "string" },
    "stale-after": { type: "string" },
  },
  async run({ values, io }) {
    const groupBy = (stringValue(values, "by") ?? "pipeline") as StatsGroup;
    if (!GROUPS.includes(groupBy)) {
      throw new CliError(`--by: use one of ${GROUPS.join(", ")}`, ExitCode.usage);
    }
    const since = parseTimeOption("--since", stringValue(values, "since") ?? "7d", parseTimePoint);
    const stuckAfterMs = parseTimeOption(
      "--stuck-after",
      stringValue(values, "stuck-after") ?? "1h",
      parseDuration,
    );
    const pipeline = stringValue(values, "pipeline");
    const options = { groupBy, since, stuckAfterMs, ...(pipeline ? { pipeline } : {}) };
    const remote = remoteOf(values, io);
    const { path, result } = remote
      ? { path: remote.url, result: await remoteStats(remote, options) }
      : await useStore(values, io, (session) => runStats(session, options));
    const groups = result ?? [];
    if (result === undefined) io.stderr(`runtrail: no runs recorded yet (no store at ${path})\n`);
    if (values.json) {
      io.stdout(`${jsonOf(groups.map(groupStatsJson))}\n`);
      return ExitCode.ok;
    }
    const right = "right" as const;
    io.stdout(
      `${renderTable(
        [
          { header: groupBy[0]?.toUpperCase() + groupBy.slice(1) },
          { header: "Runs", align: right },
          { header: "Completed", align: right },
          { header: "Degraded", align: right },
          { header: "Failed", align: right },
          { header: "Crashed", align: right },
          { header: "Running", align: right },
          { header: "Rejected/Cancelled", align: right },
          { header: "Failure Rate", align: right },
          { header: "p50", align: right },
          { header: "p95", align: right },
          { header: "LLM Calls", align: right },
          { header: "Tokens", align: right },
        ],
        groups.map(row),
      )}\n`,
    );
    const stuck = groups.reduce((n, g) => n + g.stuck, 0);
    if (stuck > 0)
      io.stdout(
        `${stuck} runs still running after ${stringValue(values, "stuck-after") ?? "1h"}\n`,
      );
    return ExitCode.ok;
  },
};
