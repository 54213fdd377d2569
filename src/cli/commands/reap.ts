import { COMMON_OPTIONS, COMMON_USAGE, type Command } from "../_command.js";
import { jsonOf } from "../_format.js";
import { SILENT_AFTER_USAGE, STALE_AFTER_USAGE, useStore } from "../_store.js";
import { ExitCode } from "../cli-error.js";

export const reapCommand: Command = {
  usage: [
    "runtrail reap [--stale-after 2m] [--silent-after 30m]",
    "",
    STALE_AFTER_USAGE,
    SILENT_AFTER_USAGE,
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    "stale-after": { type: "string" },
    "silent-after": { type: "string" },
  },
  async run({ values, io }) {
    const { reaped } = await useStore(values, io, async () => undefined);
    if (values.json) {
      io.stdout(`${jsonOf(reaped)}\n`);
      return ExitCode.ok;
    }
    io.stdout(`Marked ${reaped.length} run${reaped.length === 1 ? "" : "s"} crashed\n`);
    for (const run of reaped) io.stdout(`  ${run.run_id}  ${run.pipeline}: ${run.reason}\n`);
    return ExitCode.ok;
  },
};
