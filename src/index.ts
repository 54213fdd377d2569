export {
  RunTrailSpanProcessor,
  type RunTrailSpanProcessorOptions,
  type RunTrailStats,
} from "./ingest/span-processor.js";
export { RunTrailAttributes } from "./record/attributes.js";
export type { RunRow, StageRow } from "./record/rows.js";
export { RUN_STATUSES, type RunStatus } from "./record/run-status.js";
export type { SpanView } from "./record/span-view.js";
