/** Every status a run can have. */
export const RUN_STATUSES = [
  "running",
  "completed",
  "failed",
  "degraded",
  "rejected",
  "cancelled",
  "timed_out",
  "crashed",
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * Statuses that count as failures, in failure rates and for seed 001's `result=failed`: the run
 * ended in an error, was killed or ran out of time.
 */
export const FAILURE_STATUSES = ["failed", "timed_out", "crashed"] as const satisfies RunStatus[];

/** `cached`: completed by reusing an earlier execution's output, its body not run. */
export const STAGE_STATUSES = ["running", "completed", "failed", "cached"] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];

export function isRunStatus(value: string): value is RunStatus {
  return (RUN_STATUSES as readonly string[]).includes(value);
}

/** Statuses a run ends in; `crashed` is final unless its owner turns out to be alive. */
export function isFinished(status: RunStatus): boolean {
  return status !== "running";
}

/** A result declared on the run span, by runtrail's attribute or by `cicd.pipeline.result`. */
export type DeclaredResult = "completed" | "failed" | "rejected" | "cancelled" | "timed_out";

const DECLARED: Record<string, DeclaredResult> = {
  rejected: "rejected",
  cancelled: "cancelled",
  canceled: "cancelled",
  timed_out: "timed_out",
  // cicd.pipeline.result values
  success: "completed",
  failure: "failed",
  error: "failed",
  timeout: "timed_out",
  cancellation: "cancelled",
  skip: "rejected",
};

export function parseDeclaredResult(value: unknown): DeclaredResult | undefined {
  return typeof value === "string" ? DECLARED[value.toLowerCase()] : undefined;
}

/** The `cicd.pipeline.result` value of a runtrail status, where the convention has one. */
export function cicdPipelineResult(status: RunStatus): string | undefined {
  switch (status) {
    case "completed":
    case "degraded":
      return "success";
    case "failed":
      return "failure";
    case "crashed":
      return "error";
    case "timed_out":
      return "timeout";
    case "cancelled":
      return "cancellation";
    case "rejected":
      return "skip";
    case "running":
      return undefined;
  }
}

export interface RunOutcome {
  /** The run span ended with status ERROR or recorded an `exception` event. */
  rootFailed: boolean;
  declared: DeclaredResult | undefined;
  deadlineExceeded: boolean;
  stageFailed: boolean;
  retried: boolean;
}

/**
 * The status of a finished run. A declared rejection, cancellation or timeout wins, then an
 * exceeded deadline, then a failure of the run span itself; a run that finished although a
 * stage failed or was retried is `degraded`.
 */
export function finishedRunStatus(outcome: RunOutcome): RunStatus {
  const { declared } = outcome;
  if (declared === "rejected" || declared === "cancelled" || declared === "timed_out") {
    return declared;
  }
  if (outcome.deadlineExceeded) return "timed_out";
  if (outcome.rootFailed || declared === "failed") return "failed";
  if (outcome.stageFailed || outcome.retried) return "degraded";
  return "completed";
}
