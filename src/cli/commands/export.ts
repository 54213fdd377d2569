import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { EXPORT_FORMATS, type ExportFormat, exportRuns } from "../../store/export-runs.js";
import { isStoreFile } from "../../store/store-files.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  storePathOf,
  stringValue,
} from "../_command.js";
import { useStore } from "../_store.js";
import { CliError, ExitCode } from "../cli-error.js";
import { filterOf } from "./tail.js";

export const exportCommand: Command = {
  usage: [
    "runtrail export --format csv|parquet|jsonl [--out FILE] [--since T] [--status S] [--pipeline P] [--stages]",
    "",
    "  --format F         csv, parquet or jsonl (required)",
    "  --out FILE         the file to write (default: standard output)",
    "  --since T          runs started since T: a duration ago (24h, 7d) or a date",
    "  --status S         only these statuses",
    "  --pipeline P       only this pipeline",
    "  --stages           the stages of the selected runs instead of the runs",
    ...COMMON_USAGE,
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    format: { type: "string" },
    out: { type: "string", short: "o" },
    since: { type: "string" },
    status: { type: "string", multiple: true },
    pipeline: { type: "string" },
    stages: { type: "boolean", default: false },
  },
  async run({ values, io }) {
    const format = stringValue(values, "format");
    if (format === undefined || !(EXPORT_FORMATS as readonly string[]).includes(format)) {
      throw new CliError(`export needs --format ${EXPORT_FORMATS.join("|")}`, ExitCode.usage);
    }
    const filter = filterOf(values);
    const out = stringValue(values, "out");
    const store = storePathOf(values, io);
    if (out !== undefined && isStoreFile(store, out)) {
      throw new CliError(
        `--out ${resolve(out)} is the store ${store} or a file kept with it: export to another file`,
        ExitCode.usage,
      );
    }
    const scratch =
      out === undefined ? await mkdtemp(join(tmpdir(), "runtrail-export-")) : undefined;
    const file = out === undefined ? join(scratch ?? "", `export.${format}`) : resolve(out);
    try {
      const { path, result } = await useStore(values, io, async (session) => {
        try {
          return await exportRuns(session, {
            ...filter,
            format: format as ExportFormat,
            out: file,
            table: values.stages ? "stages" : "runs",
          });
        } catch (error) {
          const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
          throw new CliError(`cannot write ${file}: ${reason}`);
        }
      });
      if (result === undefined)
        throw new CliError(`nothing to export: there is no store at ${path}`);
      if (out === undefined) {
        try {
          await pipeline(createReadStream(file), process.stdout, { end: false });
        } catch (error) {
          // The reader went away (`runtrail export --format csv | head`): nothing more to do.
          if ((error as NodeJS.ErrnoException).code !== "EPIPE") throw error;
        }
      } else {
        io.stderr(`Exported ${result} ${values.stages ? "stages" : "runs"} to ${file}\n`);
      }
    } finally {
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
    return ExitCode.ok;
  },
};
