import { StoreError } from "./store-errors.js";
import type { StoreSession } from "./store-session.js";

interface Migration {
  /** The schema version this migration brings the store to. */
  version: number;
  description: string;
  up(session: StoreSession): Promise<void>;
}

const RUNS_V1 = (table: string) => `
CREATE TABLE ${table} (
  run_id UUID NOT NULL,
  trace_id VARCHAR,
  span_id VARCHAR,
  tenant_id VARCHAR,
  pipeline VARCHAR NOT NULL,
  service_name VARCHAR,
  status VARCHAR NOT NULL,
  status_reason VARCHAR,
  error VARCHAR,
  error_type VARCHAR,
  error_message VARCHAR,
  error_stack VARCHAR,
  failed_stage VARCHAR,
  input_fingerprint VARCHAR,
  code_ref VARCHAR,
  config_hash VARCHAR,
  started_at TIMESTAMPTZ NOT NULL,
  finished_at TIMESTAMPTZ,
  duration_seconds DOUBLE,
  deadline_at TIMESTAMPTZ,
  rows_in BIGINT,
  rows_out BIGINT,
  llm_calls BIGINT NOT NULL DEFAULT 0,
  tokens BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  stages_expected INTEGER,
  stages_completed INTEGER NOT NULL DEFAULT 0,
  stages_executed VARCHAR[] NOT NULL DEFAULT [],
  stages_failed VARCHAR[] NOT NULL DEFAULT [],
  retry_count INTEGER NOT NULL DEFAULT 0,
  current_stage VARCHAR,
  metadata JSON,
  owner_host VARCHAR,
  owner_pid INTEGER,
  owner_started_at TIMESTAMPTZ,
  last_heartbeat TIMESTAMPTZ
)`;

const STAGES_V1 = `
CREATE TABLE stages (
  run_id UUID NOT NULL,
  span_id VARCHAR NOT NULL,
  parent_span_id VARCHAR,
  name VARCHAR NOT NULL,
  seq INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 1,
  status VARCHAR NOT NULL,
  error_type VARCHAR,
  error_message VARCHAR,
  error_stack VARCHAR,
  started_at TIMESTAMPTZ NOT NULL,
  finished_at TIMESTAMPTZ,
  duration_seconds DOUBLE,
  rows_in BIGINT,
  rows_out BIGINT,
  llm_calls BIGINT NOT NULL DEFAULT 0,
  tokens BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  metadata JSON
)`;

/**
 * Seed 000's runs.duckdb (Egregora) is schema version 0: a `runs` table with a `stage` column
 * and no `runtrail_meta`. Version 1 adopts it: its rows move into runtrail's `runs` table.
 */
const SEED_000_COPY = `
INSERT INTO runs_v1 (run_id, tenant_id, pipeline, status, error, error_message, input_fingerprint,
  code_ref, config_hash, started_at, finished_at, duration_seconds, rows_in, rows_out,
  llm_calls, tokens, trace_id)
SELECT run_id, tenant_id, stage, status, error, error, input_fingerprint, code_ref, config_hash,
  started_at::TIMESTAMP AT TIME ZONE 'UTC', finished_at::TIMESTAMP AT TIME ZONE 'UTC',
  duration_seconds, rows_in, rows_out, coalesce(llm_calls, 0), coalesce(tokens, 0), trace_id
FROM runs`;

/**
 * What the recorder reads of every span that arrived over OTLP (see `RemoteSpan`): the rows of
 * a trace are rebuilt from its spans whenever more of them arrive, in any order, across
 * requests and restarts of the server.
 */
const OTLP_SPANS_V2 = `
CREATE TABLE otlp_spans (
  trace_id VARCHAR NOT NULL,
  span_id VARCHAR NOT NULL,
  tenant_id VARCHAR,
  received_at TIMESTAMPTZ NOT NULL,
  span VARCHAR NOT NULL
)`;

/** Resume, cached stages and artifacts. Columns are added at the end, in row order. */
const RESUME_V3 = [
  "ALTER TABLE runs ADD COLUMN resumed_from UUID",
  "ALTER TABLE runs ADD COLUMN cached_from UUID",
  "ALTER TABLE runs ADD COLUMN entry_point VARCHAR",
  "ALTER TABLE runs ADD COLUMN input_snapshot VARCHAR",
  "ALTER TABLE runs ADD COLUMN artifacts JSON",
  "ALTER TABLE stages ADD COLUMN snapshot VARCHAR",
  "ALTER TABLE stages ADD COLUMN cache_key VARCHAR",
  "ALTER TABLE stages ADD COLUMN cached_from UUID",
  // Artifacts live in their run's row; this reads them as rows of their own.
  `CREATE VIEW artifacts AS
   SELECT r.run_id, a.seq::INTEGER AS seq, a.kind, a.file, a.media_type, a.size::BIGINT AS size,
     a.sha256, a.metadata, a.stage, a.created_at::TIMESTAMPTZ AS created_at
   FROM runs r, unnest(from_json(r.artifacts, '[{"seq":"INTEGER","kind":"VARCHAR","file":"VARCHAR","media_type":"VARCHAR","size":"BIGINT","sha256":"VARCHAR","metadata":"JSON","stage":"VARCHAR","created_at":"VARCHAR"}]')) AS t(a)
   WHERE r.artifacts IS NOT NULL`,
];

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "runs and stages; adopts a seed 000 runs table",
    async up(session) {
      await session.run(
        "CREATE TABLE runtrail_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
      );
      if (await hasTable(session, "runs")) {
        // The old table's indexes depend on it, so the rows move to a new table that then
        // takes its name; dropping the old table drops its indexes with it.
        await session.run(RUNS_V1("runs_v1"));
        await session.run(SEED_000_COPY);
        await session.run("DROP TABLE runs");
        await session.run("ALTER TABLE runs_v1 RENAME TO runs");
      } else {
        await session.run(RUNS_V1("runs"));
      }
      await session.run(STAGES_V1);
    },
  },
  {
    version: 2,
    description: "spans received over OTLP, kept to rebuild their runs as more arrive",
    async up(session) {
      await session.run(OTLP_SPANS_V2);
    },
  },
  {
    version: 3,
    description: "resumed and cached runs and stages, snapshots, artifacts",
    async up(session) {
      for (const statement of RESUME_V3) await session.run(statement);
    },
  },
];

/** The schema version this runtrail writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

async function hasTable(session: StoreSession, name: string): Promise<boolean> {
  const row = await session.one<{ n: number }>(
    `SELECT count(*)::INTEGER AS n FROM duckdb_tables()
     WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $1`,
    [name],
  );
  return (row?.n ?? 0) > 0;
}

/** The store's schema version: 0 for an empty store or a seed 000 store. */
export async function schemaVersion(session: StoreSession): Promise<number> {
  if (!(await hasTable(session, "runtrail_meta"))) return 0;
  const row = await session.one<{ value: string }>(
    "SELECT value FROM runtrail_meta WHERE key = 'schema_version'",
  );
  return row ? Number(row.value) : 0;
}

/**
 * Brings the store to `target` (default: the current version) in place, one migration per
 * transaction, so a failure leaves it at the last version that completed.
 */
export async function migrate(
  session: StoreSession,
  target: number = SCHEMA_VERSION,
): Promise<void> {
  const current = await schemaVersion(session);
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      "too_new",
      `the store ${session.path} has schema version ${current}, newer than this runtrail (${SCHEMA_VERSION}): upgrade runtrail`,
    );
  }
  for (const migration of MIGRATIONS) {
    if (migration.version <= current || migration.version > target) continue;
    await session.transaction(async () => {
      await migration.up(session);
      await session.run(
        "INSERT OR REPLACE INTO runtrail_meta (key, value) VALUES ('schema_version', $1)",
        [String(migration.version)],
      );
    });
  }
}

/** Refuses a store whose schema is not this runtrail's, for readers that may not migrate it. */
export async function requireCurrentSchema(session: StoreSession): Promise<void> {
  const version = await schemaVersion(session);
  if (version === SCHEMA_VERSION) return;
  throw new StoreError(
    version > SCHEMA_VERSION ? "too_new" : "unwritable",
    version > SCHEMA_VERSION
      ? `the store ${session.path} has schema version ${version}, newer than this runtrail (${SCHEMA_VERSION}): upgrade runtrail`
      : `the store ${session.path} has schema version ${version} and must be upgraded by a process that can write it`,
  );
}
