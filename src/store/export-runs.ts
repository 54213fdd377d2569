import type { RunFilter } from "../query/run-filter.js";
import { runFilterSql } from "../query/run-filter.js";
import { SqlParams } from "../query/sql-params.js";
import { sqlString } from "./sql-literal.js";
import type { StoreSession } from "./store-session.js";

export const EXPORT_FORMATS = ["csv", "parquet", "jsonl"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions extends RunFilter {
  format: ExportFormat;
  /** The file to write. */
  out: string;
  /** `runs` (default) or the `stages` of the selected runs. */
  table?: "runs" | "stages";
}

const COPY_OPTIONS: Record<ExportFormat, string> = {
  csv: "FORMAT csv, HEADER",
  parquet: "FORMAT parquet",
  jsonl: "FORMAT json",
};

/** Writes the selected runs (or their stages) to a file; returns how many rows it holds. */
export async function exportRuns(session: StoreSession, options: ExportOptions): Promise<number> {
  const params = new SqlParams();
  const where = runFilterSql(options, params);
  const query =
    options.table === "stages"
      ? `SELECT s.* FROM stages s JOIN (SELECT run_id, started_at FROM runs WHERE ${where}) r
           ON s.run_id = r.run_id AND s.started_at >= r.started_at ORDER BY s.started_at, s.seq`
      : `SELECT * FROM runs WHERE ${where} ORDER BY started_at`;
  const rows = await session.one<{ n: number }>(
    `SELECT count(*)::DOUBLE AS n FROM (${query})`,
    params.values,
  );
  await session.run(
    `COPY (${query}) TO ${sqlString(options.out)} (${COPY_OPTIONS[options.format]})`,
    params.values,
  );
  return rows?.n ?? 0;
}
