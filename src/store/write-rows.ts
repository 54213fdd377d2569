import type { RunRow, StageRow } from "../record/rows.js";
import {
  type Columns,
  columnsOf,
  emptyColumns,
  jsonText,
  rowsOf,
  stagedColumn,
  stagedOffsets,
} from "./column-batch.js";
import { type Column, RUN_COLUMNS, STAGE_COLUMNS } from "./row-columns.js";
import {
  emptyStaged,
  STAGED_POSITION,
  type Staging,
  stageColumns,
  stagedSource,
  unstage,
  unstageFailed,
} from "./stage-columns.js";
import type { RowWatcher, StoreSession } from "./store-session.js";

/**
 * Rows to write. Rows a writer knows to be new are appended; the others (rewritten, spooled,
 * late, or received twice) are merged by key, so writing them again changes nothing.
 */
export interface RowBatch {
  /** Run rows that may be stored already, at most one per run id. */
  runs: readonly RunRow[];
  /** Run rows of runs never written before. */
  newRuns?: readonly RunRow[];
  /** Stage rows written for the first time. */
  stages: readonly StageRow[];
  /** Stage rows that may be stored already. */
  stagesToMerge?: readonly StageRow[];
}

/** A {@link RowBatch} as columns: what writers hand to the store thread. */
export interface ColumnBatch {
  runs: Columns;
  newRuns: Columns;
  stages: Columns;
  stagesToMerge: Columns;
}

export function columnBatchOf(batch: RowBatch): ColumnBatch {
  return {
    runs: columnsOf(RUN_COLUMNS, batch.runs),
    newRuns: columnsOf(RUN_COLUMNS, batch.newRuns ?? []),
    stages: columnsOf(STAGE_COLUMNS, batch.stages),
    stagesToMerge: columnsOf(STAGE_COLUMNS, batch.stagesToMerge ?? []),
  };
}

/** The same rows, all merged: for writing a batch again, to a store that may hold part of it. */
export function mergeAll(batch: ColumnBatch): ColumnBatch {
  const runs = [RUN_COLUMNS, batch.runs, batch.newRuns] as const;
  const stages = [STAGE_COLUMNS, batch.stages, batch.stagesToMerge] as const;
  const joined = ([spec, a, b]: readonly [typeof RUN_COLUMNS, Columns, Columns]) =>
    columnsOf(spec, [...rowsOf(spec, a), ...rowsOf(spec, b)] as object[]);
  return {
    runs: joined(runs),
    newRuns: emptyColumns(RUN_COLUMNS),
    stages: emptyColumns(STAGE_COLUMNS),
    stagesToMerge: joined(stages),
  };
}

/** The columns of a batch, for counting and for moving them to another thread. */
export function partsOf(batch: ColumnBatch): Columns[] {
  return [batch.runs, batch.newRuns, batch.stages, batch.stagesToMerge];
}

const DICTIONARY = "runtrail_staged_text";

/**
 * The connection's variable that carries a write's values to its statements: the texts of the
 * staged columns, the spans, the rows to delete, and how far back each merge looks. Set by one
 * kept statement, the statements that read it run as one text, in one trip to DuckDB's
 * threads; DuckDB reads a variable when it plans a statement, so its bounds prune row groups
 * as a constant does.
 */
const WRITE_VARIABLE = "runtrail_write";

/** A field of {@link WRITE_VARIABLE}. */
function given(field: keyof typeof WRITE_FIELDS): string {
  return `getvariable('${WRITE_VARIABLE}').${field}`;
}

/** The fields of {@link WRITE_VARIABLE} and their types, in the order they are bound. */
const WRITE_FIELDS = {
  text: "VARCHAR",
  runs_since: "BIGINT",
  new_runs_since: "BIGINT",
  merge_since: "BIGINT",
  new_stages_since: "BIGINT",
  span_trace: "VARCHAR",
  span_id: "VARCHAR",
  span_tenant: "VARCHAR",
  span_received: "VARCHAR",
  span_json: "VARCHAR",
  stale_runs: "VARCHAR",
  stale_stages: "VARCHAR",
} as const;

type WriteValues = Record<keyof typeof WRITE_FIELDS, string | number | null>;

/**
 * The variable as a row, for the long lists of values: read as a column, a list is parsed as
 * the statement runs; read as the variable, DuckDB parses it while planning and copies the
 * parsed list between its optimizer's passes (a third more time for a write's spans).
 */
const WRITE_ROW = `(SELECT getvariable('${WRITE_VARIABLE}') AS w)`;

const SET_WRITE = `SET VARIABLE ${WRITE_VARIABLE} = {${Object.entries(WRITE_FIELDS)
  .map(([name, type], i) => `${name}: $${i + 1}::${type}`)
  .join(", ")}}`;

/** From the staged column (a number, or a code into the dictionary `d.v`) to the table's type. */
function fromStaged(column: Column): string {
  const name = column.name;
  const text = `d.v[s.${name}::INTEGER + 1]`;
  switch (column.kind) {
    case "uuid":
      return `${text}::UUID AS ${name}`;
    case "text":
      return `${text} AS ${name}`;
    case "span_id":
      return `coalesce(printf('%08x%08x', s.${name}_hi::UBIGINT, s.${name}_lo::UBIGINT), d.v[s.${name}_text::INTEGER + 1]) AS ${name}`;
    case "list":
      return `from_json(${text}, '["VARCHAR"]') AS ${name}`;
    case "json":
      return `${text}::JSON AS ${name}`;
    case "time":
      return `make_timestamptz(s.${name}::BIGINT) AS ${name}`;
    case "bigint":
      return `s.${name}::BIGINT AS ${name}`;
    case "integer":
      return `s.${name}::INTEGER AS ${name}`;
    case "double":
      return `s.${name} AS ${name}`;
  }
}

/** The rows staged as `part` as the table's columns; `extra` selects more before them. */
function stagedSelect(staging: Staging, cols: readonly Column[], part: string, extra = ""): string {
  return `SELECT ${extra}${cols.map(fromStaged).join(", ")} FROM ${stagedSource(staging, part)} s, temp.main.${DICTIONARY} d`;
}

/** Where the value of the column `name` sits in each staged row of `spec`. */
function offsetOf(spec: readonly Column[], name: string): number {
  return stagedOffsets(spec).offsets[spec.findIndex((c) => c.name === name)] as number;
}

/** The earliest `started_at` of a batch, to bound the scan of the table it merges into. */
function earliest(cols: readonly Column[], batch: Columns): number {
  let min = Number.POSITIVE_INFINITY;
  for (const value of stagedColumn(batch, offsetOf(cols, "started_at"))) {
    min = Math.min(min, value);
  }
  return min;
}

const RUN_SET = RUN_COLUMNS.filter((c) => c.name !== "run_id")
  .map((c) => `${c.name} = s.${c.name}`)
  .join(", ");
const RUN_NAMES = RUN_COLUMNS.map((c) => c.name).join(", ");
const RUN_VALUES = RUN_COLUMNS.map((c) => `s.${c.name}`).join(", ");

/**
 * New runs are appended, without the cost of a merge, unless the store has their row already
 * (another processor saw the same span, or a trace id was reused): then nothing changes.
 */
const APPEND_RUNS = (staging: Staging) => `
INSERT INTO runs (${RUN_COLUMNS.map((c) => c.name).join(", ")})
SELECT n.* FROM (${stagedSelect(staging, RUN_COLUMNS, "new_runs")}) AS n
ANTI JOIN (SELECT run_id FROM runs WHERE started_at >= make_timestamptz(${given("new_runs_since")})) AS r
  ON n.run_id = r.run_id`;

/**
 * A run row replaces the stored one, except that a `running` row never replaces a finished
 * one: only a crashed run comes back to life, when its owner shows it is still going.
 * `started_at` bounds the scan: runs are appended in start order, so DuckDB's min/max zone maps
 * skip the older row groups.
 */
const MERGE_RUNS = (staging: Staging) => `
MERGE INTO runs USING (${stagedSelect(staging, RUN_COLUMNS, "runs")}) AS s
ON runs.run_id = s.run_id AND runs.started_at >= make_timestamptz(${given("runs_since")})
WHEN MATCHED AND NOT (s.status = 'running' AND runs.status NOT IN ('running', 'crashed'))
  THEN UPDATE SET ${RUN_SET}
WHEN NOT MATCHED THEN INSERT (${RUN_NAMES}) VALUES (${RUN_VALUES})`;

const STAGE_NAMES = STAGE_COLUMNS.map((c) => c.name).join(", ");
const STAGE_VALUES = STAGE_COLUMNS.map((c) => `s.${c.name}`).join(", ");
const STAGE_SET = STAGE_COLUMNS.filter((c) => c.name !== "run_id" && c.name !== "span_id")
  .map((c) => `${c.name} = s.${c.name}`)
  .join(", ");

/** A span received over OTLP, as `otlp_spans` stores it. */
export interface StoredSpan {
  trace_id: string;
  span_id: string;
  tenant_id: string | null;
  received_at: number;
  span: string;
}

/**
 * Appends spans to `otlp_spans`. Each column travels as one JSON list, parsed by DuckDB on its
 * own thread: appending a value at a time, each a call into DuckDB on this thread, cost several
 * times more.
 */
const APPEND_SPANS = (() => {
  const list = (field: keyof typeof WRITE_FIELDS, type: string) =>
    `unnest(from_json(w.${field}, '["${type}"]'))`;
  return `
INSERT INTO otlp_spans (trace_id, span_id, tenant_id, received_at, span)
SELECT t, s, n, make_timestamptz(r), j FROM (
  SELECT ${list("span_trace", "VARCHAR")} AS t, ${list("span_id", "VARCHAR")} AS s,
    ${list("span_tenant", "VARCHAR")} AS n, ${list("span_received", "BIGINT")} AS r,
    ${list("span_json", "VARCHAR")} AS j
  FROM ${WRITE_ROW})`;
})();

/** Rows the same traces gave before that they no longer give. */
const DELETE_STALE_RUNS = [
  `DELETE FROM stages WHERE run_id IN (SELECT unnest(from_json(${given("stale_runs")}, '["UUID"]')))`,
  `DELETE FROM runs WHERE run_id IN (SELECT unnest(from_json(${given("stale_runs")}, '["UUID"]')))`,
];
const DELETE_STALE_STAGES = `
DELETE FROM stages USING (
  SELECT unnest(from_json(${given("stale_stages")}, '[{"run_id":"UUID","span_id":"VARCHAR"}]'), recursive := true)
) AS gone
WHERE stages.run_id = gone.run_id AND stages.span_id = gone.span_id`;

const APPEND_STAGES = (staging: Staging) =>
  `INSERT INTO stages (${STAGE_NAMES}) ${stagedSelect(staging, STAGE_COLUMNS, "stages")}`;

/** Stages of runs new to the writer: appended, unless another path stored them already. */
const APPEND_NEW_STAGES = (staging: Staging) => `
INSERT INTO stages (${STAGE_NAMES})
SELECT n.* FROM (${stagedSelect(staging, STAGE_COLUMNS, "new_stages")}) AS n
ANTI JOIN (SELECT run_id, span_id FROM stages WHERE started_at >= make_timestamptz(${given("new_stages_since")})) AS s
  ON n.run_id = s.run_id AND n.span_id = s.span_id`;

/**
 * A stage may come more than once in a batch (late spans rewrite its row, each with the totals
 * so far): the last one staged is merged.
 */
const MERGE_STAGES = (staging: Staging) => `
MERGE INTO stages USING (
  SELECT * EXCLUDE (${STAGED_POSITION}) FROM (
    ${stagedSelect(staging, STAGE_COLUMNS, "merge", `s.${STAGED_POSITION}, `)}
  ) QUALIFY row_number() OVER (PARTITION BY run_id, span_id ORDER BY ${STAGED_POSITION} DESC) = 1
) AS s
ON stages.run_id = s.run_id AND stages.span_id = s.span_id
  AND stages.started_at >= make_timestamptz(${given("merge_since")})
WHEN MATCHED THEN UPDATE SET ${STAGE_SET}
WHEN NOT MATCHED THEN INSERT (${STAGE_NAMES}) VALUES (${STAGE_VALUES})`;

/** The statements that write each part in, reading it as `staging` has it. */
function statementsFor(staging: Staging) {
  return {
    mergeRuns: MERGE_RUNS(staging),
    appendRuns: APPEND_RUNS(staging),
    appendStages: APPEND_STAGES(staging),
    mergeStages: MERGE_STAGES(staging),
    appendNewStages: APPEND_NEW_STAGES(staging),
  };
}

const STATEMENTS: Record<Staging, ReturnType<typeof statementsFor>> = {
  function: statementsFor("function"),
  tables: statementsFor("tables"),
};

const RUN_ID_AT = offsetOf(RUN_COLUMNS, "run_id");
const RUN_START_AT = offsetOf(RUN_COLUMNS, "started_at");
const STAGE_RUN_AT = offsetOf(STAGE_COLUMNS, "run_id");

/** The text a staged text value stands for: an index into `values`, NaN for null. */
function textAt(part: Columns, at: number): string | null {
  return part.values[at] ?? null;
}

/** Tells `watcher` of every run row of `runs`. */
function watchRuns(watcher: RowWatcher, runs: Columns): void {
  if (runs.count === 0) return;
  const ids = stagedColumn(runs, RUN_ID_AT);
  const starts = stagedColumn(runs, RUN_START_AT);
  for (let i = 0; i < runs.count; i++) {
    const id = textAt(runs, ids[i] as number);
    if (id !== null) watcher.runRow(id, starts[i] as number);
  }
}

/** Tells `watcher` of the run of every stage row of `stages`, once per text value. */
function watchStages(watcher: RowWatcher, stages: Columns): void {
  if (stages.count === 0) return;
  const told = new Set<number>();
  for (const at of stagedColumn(stages, STAGE_RUN_AT)) {
    if (told.has(at)) continue;
    told.add(at);
    const id = textAt(stages, at);
    if (id !== null) watcher.runChanged(id);
  }
}

/** Writes row objects; see {@link writeColumns}. */
export async function writeRows(session: StoreSession, batch: RowBatch): Promise<void> {
  await writeColumns(session, columnBatchOf(batch));
}

/** What a write of spans received over OTLP adds to its batch of rows, in the same transaction. */
export interface WriteExtras {
  /** Spans to append to `otlp_spans`. */
  spans?: readonly StoredSpan[];
  /** Their texts (`span`) as one JSON list (see `jsonText`), when the caller made it already. */
  spanTexts?: string;
  /** Stage rows of runs first seen in this batch: appended, unless the store has them. */
  newStages?: Columns;
  /** Rows the same traces gave before that they no longer give: deleted. */
  staleRuns?: readonly string[];
  staleStages?: readonly { run_id: string; span_id: string }[];
  /** Epoch microseconds no stored row of the batch starts before, when its rows may not know. */
  since?: number;
}

/**
 * Writes a batch in one transaction: all of it or none. Columns are staged for DuckDB to read
 * as tables, as the session's `staging` says (see `stageColumns`), then merged or appended by
 * SQL. Two trips to DuckDB's threads, whatever the batch: the write's values, then the
 * transaction with every statement.
 */
export async function writeColumns(
  session: StoreSession,
  batch: ColumnBatch,
  extras: WriteExtras = {},
): Promise<void> {
  const { runs, newRuns, stages, stagesToMerge } = batch;
  const newStages = extras.newStages ?? emptyColumns(STAGE_COLUMNS);
  const spans = extras.spans ?? [];
  const staleRuns = extras.staleRuns ?? [];
  const staleStages = extras.staleStages ?? [];
  const watcher = session.watcher;
  if (watcher !== undefined) {
    for (const part of [runs, newRuns]) watchRuns(watcher, part);
    for (const part of [stages, stagesToMerge, newStages]) watchStages(watcher, part);
    for (const id of staleRuns) watcher.runChanged(id);
    for (const stage of staleStages) watcher.runChanged(stage.run_id);
  }
  // Each part that has rows: its name, and the statement that writes it in. In this order: a
  // stage that ended in this batch and then took a late span has its row appended and merged,
  // and the merged one is the later.
  const statement = STATEMENTS[session.staging];
  const staged = (
    [
      ["runs", RUN_COLUMNS, runs, statement.mergeRuns],
      ["new_runs", RUN_COLUMNS, newRuns, statement.appendRuns],
      ["stages", STAGE_COLUMNS, stages, statement.appendStages],
      ["merge", STAGE_COLUMNS, stagesToMerge, statement.mergeStages],
      ["new_stages", STAGE_COLUMNS, newStages, statement.appendNewStages],
    ] as const
  ).filter(([, , part]) => part.count > 0);
  /** How far back a merge into `cols`' table looks for the stored rows of `part`. */
  const since = (cols: readonly Column[], part: Columns) => {
    if (part.count === 0) return null;
    const bound = Math.min(earliest(cols, part), extras.since ?? Number.POSITIVE_INFINITY);
    return Number.isFinite(bound) ? Math.floor(bound) : null;
  };
  const closing = [
    `CREATE OR REPLACE TEMP TABLE ${DICTIONARY} AS SELECT from_json(w.text, '["VARCHAR"]') AS v FROM ${WRITE_ROW}`,
    ...(staleRuns.length > 0 ? DELETE_STALE_RUNS : []),
    ...(staleStages.length > 0 ? [DELETE_STALE_STAGES] : []),
    ...(spans.length > 0 ? [APPEND_SPANS] : []),
    ...staged.map(([, , , statement]) => statement),
  ];
  try {
    const values: string[] = [];
    for (const [part, cols, rows] of staged) await stageColumns(session, part, cols, rows, values);
    const column = (pick: (span: StoredSpan) => string | number | null) =>
      spans.length > 0 ? jsonText(spans.map(pick)) : null;
    const write: WriteValues = {
      text: jsonText(values),
      runs_since: since(RUN_COLUMNS, runs),
      new_runs_since: since(RUN_COLUMNS, newRuns),
      merge_since: since(STAGE_COLUMNS, stagesToMerge),
      new_stages_since: since(STAGE_COLUMNS, newStages),
      span_trace: column((span) => span.trace_id),
      span_id: column((span) => span.span_id),
      span_tenant: column((span) => span.tenant_id),
      span_received: column((span) => span.received_at),
      span_json: extras.spanTexts ?? column((span) => span.span),
      stale_runs: staleRuns.length > 0 ? jsonText(staleRuns) : null,
      stale_stages: staleStages.length > 0 ? jsonText(staleStages) : null,
    };
    await session.run(
      SET_WRITE,
      Object.keys(WRITE_FIELDS).map((name) => write[name as keyof WriteValues]),
    );
    await session.script(["BEGIN TRANSACTION", ...closing, ...emptyStaged(session), "COMMIT"]);
    unstage(session);
  } catch (error) {
    await session.script(["ROLLBACK"]).catch(() => undefined);
    await unstageFailed(session);
    throw error;
  }
}
