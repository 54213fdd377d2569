import { isRunStatus, RUN_STATUSES, type RunStatus } from "../../record/run-status.js";
import { compactStore, pruneResultJson, pruneRuns } from "../../store/prune.js";
import { parseDuration } from "../../util/duration.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  stringValue,
  stringValues,
} from "../_command.js";
import { formatCount, jsonOf } from "../_format.js";
import { parseTimeOption, useStore } from "../_store.js";
import { CliError, ExitCode } from "../cli-error.js";

function counted(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export const pruneCommand: Command = {
  usage: [
    "runtrail prune --older-than 30d [--status S[,S]] [--dry-run]",
    "",
    "  The artifact folders of the runs pruned go with them, and so do the store's snapshot files",
    "  that no run left refers to (kept an hour after their last use). --dry-run counts them too.",
    "",
    "  --older-than DUR   runs that started longer ago than this (required)",
    "  --status S         only runs with these statuses (running runs are never pruned)",
    "  --dry-run          count what would go, files included, and change nothing",
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    "older-than": { type: "string" },
    status: { type: "string", multiple: true },
    "dry-run": { type: "boolean", default: false },
  },
  async run({ values, io }) {
    const olderThan = stringValue(values, "older-than");
    if (olderThan === undefined) {
      throw new CliError("prune needs --older-than, such as --older-than 30d", ExitCode.usage);
    }
    const ms = parseTimeOption("--older-than", olderThan, parseDuration);
    const statuses = stringValues(values, "status");
    for (const status of statuses) {
      if (!isRunStatus(status)) {
        throw new CliError(`--status: use one of ${RUN_STATUSES.join(", ")}`, ExitCode.usage);
      }
    }
    const dryRun = values["dry-run"] === true;
    const { path, result } = await useStore(values, io, async (session) => {
      const pruned = await pruneRuns(session, {
        before: (Date.now() - ms) * 1000,
        statuses: statuses as RunStatus[],
        dryRun,
      });
      const space = dryRun || pruned.runs === 0 ? null : await compactStore(session);
      return { ...pruned, space };
    });
    if (result === undefined) {
      io.stderr(`runtrail: nothing to prune (no store at ${path})\n`);
      return ExitCode.ok;
    }
    if (values.json) {
      // The server's DELETE /api/runs answer, and the space given back.
      const json = {
        ...pruneResultJson(result, dryRun),
        space: result.space
          ? { bytes_before: result.space.bytesBefore, bytes_after: result.space.bytesAfter }
          : null,
      };
      io.stdout(`${jsonOf(json)}\n`);
      return ExitCode.ok;
    }
    const what = `${formatCount(result.runs)} runs and ${formatCount(result.stages)} stages older than ${olderThan}`;
    io.stdout(dryRun ? `Would prune ${what}\n` : `Pruned ${what}\n`);
    const { artifactFolders: folders, snapshots } = result;
    if (folders > 0 || snapshots > 0) {
      const files = `${counted(folders, "artifact folder", "artifact folders")} and ${counted(snapshots, "unused snapshot file", "unused snapshot files")}`;
      io.stdout(dryRun ? `Would remove ${files}\n` : `Removed ${files}\n`);
    }
    if (result.space) {
      io.stdout(
        `Store ${path}: ${megabytes(result.space.bytesBefore)} → ${megabytes(result.space.bytesAfter)}\n`,
      );
    }
    return ExitCode.ok;
  },
};
