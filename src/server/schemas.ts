import { z } from "@hono/zod-openapi";
import { RUN_STATUSES, STAGE_STATUSES } from "../record/run-status.js";
import { type Column, RUN_COLUMNS, STAGE_COLUMNS } from "../store/row-columns.js";

/**
 * The schemas of the API: the same objects validate requests and make `/openapi.json`.
 * Query values stay text here; their meaning (a duration, a date) is read by the handler,
 * which answers 400 when it cannot.
 */

const STATUS_LIST = new RegExp(`^(${RUN_STATUSES.join("|")})(,(${RUN_STATUSES.join("|")}))*$`);

const statusList = z
  .string()
  .regex(STATUS_LIST, `a status, or several separated by commas: ${RUN_STATUSES.join(", ")}`);

export const ErrorSchema = z
  .object({
    error: z.string().openapi({ example: "not_found" }),
    detail: z.string().openapi({ example: 'no run matches "0af7"' }),
    candidates: z
      .array(
        z.object({
          run_id: z.string(),
          trace_id: z.string().nullable(),
          pipeline: z.string(),
          status: z.string(),
          started_at: z.string(),
        }),
      )
      .optional(),
  })
  .openapi("Error");

const timeText = z
  .string()
  .openapi({ description: "a duration ago (24h, 7d) or an ISO 8601 date or date-time (UTC)" });

export const RunFilterQuery = z.object({
  status: z
    .union([statusList, z.array(statusList)])
    .optional()
    .openapi({ description: "only these statuses (repeat the parameter or separate by commas)" }),
  pipeline: z.string().min(1).max(500).optional(),
  tenant: z.string().min(1).max(500).optional(),
  since: timeText.optional(),
  until: timeText.optional(),
  min_duration: z
    .string()
    .optional()
    .openapi({ description: "only runs that took at least this long: seconds, or 90s, 5m, 2h" }),
  has_error: z.enum(["true", "false"]).optional(),
});

export const ListRunsQuery = RunFilterQuery.extend({
  limit: z
    .string()
    .regex(/^\d+$/, "a whole number from 1 to 1000")
    .optional()
    .openapi({ description: "runs per page, 1 to 1000 (default 100)" }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .openapi({ description: "next_cursor of the previous page" }),
});

export const StatsQuery = RunFilterQuery.extend({
  group_by: z.enum(["pipeline", "stage", "tenant"]).optional(),
  stuck_after: z
    .string()
    .optional()
    .openapi({ description: "a running run older than this is stuck (default 1h)" }),
});

export const DeleteRunsQuery = z
  .object({
    older_than: z
      .string()
      .openapi({ description: "delete finished runs started longer ago than this: 30d, 12h" }),
    status: z.union([statusList, z.array(statusList)]).optional(),
    dry_run: z.enum(["true", "false"]).optional(),
  })
  // A parameter it does not know (`tenant`, a misspelt `status`) would delete more than meant.
  .strict();

export const PipelineRunsQuery = z.object({
  limit: z.string().regex(/^\d+$/, "a whole number from 1 to 1000").optional(),
  result: z.enum(["success", "failed", "stopped"]).optional(),
});

export const IdParam = z.object({
  id: z
    .string()
    .max(64)
    .openapi({
      param: { name: "id", in: "path" },
      description: "a run id or a trace id, or a prefix of at least 4 hex digits",
    }),
});

function fieldSchema(column: Column): z.ZodType {
  switch (column.kind) {
    case "uuid":
    case "span_id":
    case "text":
      return z.string().nullable();
    case "time":
      return z.string().nullable().openapi({ format: "date-time" });
    case "integer":
    case "bigint":
    case "double":
      return z.number().nullable();
    case "list":
      return z.array(z.string());
    case "json":
      return z.record(z.string(), z.unknown()).nullable();
  }
}

function rowSchema(columns: readonly Column[]): Record<string, z.ZodType> {
  return Object.fromEntries(columns.map((c) => [c.name, fieldSchema(c)]));
}

export const StageSchema = z
  .object({ ...rowSchema(STAGE_COLUMNS), status: z.enum(STAGE_STATUSES) })
  .openapi("Stage");

export const ArtifactSchema = z
  .object({
    seq: z.number().int(),
    kind: z.string(),
    file: z.string(),
    media_type: z.string(),
    size: z.number().int(),
    sha256: z.string(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    stage: z.string().nullable(),
    created_at: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Artifact");

export const ArtifactLinkSchema = ArtifactSchema.extend({
  url: z.string().openapi({
    description: "where its file is served: /api/runs/<run_id>/artifacts/<seq>",
    example: "/api/runs/0af7651b-6f3d-4b2c-9a1e-3f0c2d8e4b5a/artifacts/1",
  }),
}).openapi("ArtifactLink");

export const ArtifactListSchema = z
  .object({ run_id: z.string(), artifacts: z.array(ArtifactLinkSchema) })
  .openapi("ArtifactList");

export const ArtifactRefParam = IdParam.extend({
  ref: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
      "a sequence number, or an artifact kind (letters, digits, _ and -)",
    )
    .openapi({
      param: { name: "ref", in: "path" },
      description:
        "an artifact's sequence number (digits), or a kind, for the latest artifact of that kind",
    }),
});

export const RunSchema = z
  .object({
    ...rowSchema(RUN_COLUMNS),
    artifacts: z.array(ArtifactSchema).nullable(),
    run_id: z.string().openapi({ format: "uuid" }),
    pipeline: z.string(),
    status: z.enum(RUN_STATUSES),
    started_at: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Run");

export const RunPageSchema = z
  .object({
    runs: z.array(RunSchema),
    total: z.number().int(),
    next_cursor: z.string().nullable(),
  })
  .openapi("RunPage");

export const RunDetailSchema = RunSchema.extend({
  stages: z.array(StageSchema),
  links: z.object({ self: z.string(), jaeger: z.string().optional() }),
}).openapi("RunDetail");

export const RunStatusSchema = z
  .object({
    run_id: z.string(),
    status: z.enum(RUN_STATUSES),
    finished: z.boolean(),
    current_stage: z.string().nullable(),
    progress: z.string().nullable().openapi({ description: '"k/n" when n stages are declared' }),
    stages_completed: z.number().int(),
    stages_expected: z.number().int().nullable(),
    completed_stages: z.array(z.string()),
    failed_stages: z.array(z.string()),
    seconds_since_heartbeat: z.number().nullable(),
    started_at: z.string(),
    finished_at: z.string().nullable(),
    duration_seconds: z.number().nullable(),
  })
  .openapi("RunStatus");

const GroupStatsSchema = z.object({
  key: z.string().nullable(),
  runs: z.number(),
  by_status: z.record(z.string(), z.number()),
  failure_rate: z.number().nullable(),
  p50_seconds: z.number().nullable(),
  p95_seconds: z.number().nullable(),
  p99_seconds: z.number().nullable(),
  llm_calls: z.number(),
  tokens: z.number(),
  input_tokens: z.number(),
  output_tokens: z.number(),
  rows_in: z.number(),
  rows_out: z.number(),
  stuck: z.number(),
});

export const StatsSchema = z
  .object({
    group_by: z.enum(["pipeline", "stage", "tenant"]),
    since: z.string(),
    until: z.string().nullable(),
    groups: z.array(GroupStatsSchema),
    stuck: z.number().openapi({ description: "running runs started before now - stuck_after" }),
    crashed: z.number(),
  })
  .openapi("Stats");

export const PipelineRunSchema = z
  .object({
    run_id: z.string(),
    pipeline: z.string(),
    status: z.enum(RUN_STATUSES),
    started_at: z.string(),
    ended_at: z.string().nullable(),
    result: z.enum(["success", "failed", "stopped", "running"]),
    failure_reason: z.string().nullable(),
    stages_executed: z.array(z.string()),
    stages_failed: z.array(z.string()),
    retry_count: z.number(),
    metadata: z.record(z.string(), z.unknown()),
  })
  .openapi("PipelineRun");

export const PipelineRunsSchema = z
  .object({ runs: z.array(PipelineRunSchema), total: z.number() })
  .openapi("PipelineRuns");

export const DeleteResultSchema = z
  .object({
    runs: z.number(),
    stages: z.number(),
    artifact_folders: z.number().openapi({
      description: "artifact folders removed with their runs (on a dry run: that would be)",
    }),
    snapshots: z.number().openapi({
      description:
        "the store's snapshot files no remaining run refers to, removed (on a dry run: that would be)",
    }),
    dry_run: z.boolean(),
  })
  .openapi("DeleteResult");

export const HealthSchema = z.object({ status: z.string(), detail: z.string().optional() });

/** A JSON response of an OpenAPI route. */
export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

/** The error responses every API route may give. */
export const API_ERRORS = {
  400: jsonContent(ErrorSchema, "invalid request"),
  401: jsonContent(ErrorSchema, "missing or unknown token"),
  403: jsonContent(ErrorSchema, "the token may not do this"),
  503: jsonContent(ErrorSchema, "the store is not open"),
} as const;

/** The error responses of a route that finds one run by an id or a prefix. */
export const RUN_LOOKUP_ERRORS = {
  ...API_ERRORS,
  404: jsonContent(ErrorSchema, "no run matches"),
  409: jsonContent(ErrorSchema, "the prefix matches several runs; candidates listed"),
} as const;
