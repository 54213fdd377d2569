/**
 * The span the pipeline helpers end as a run starts: a child of the run span carrying the
 * run's attributes, with `runtrail.kind` set to {@link START_MARKER_KIND}. Recorded in process
 * it is neither a stage nor an LLM call; received over OTLP before the run span itself (which
 * only comes when the run ends), it tells the store that the run is going, and its name.
 */
export const START_MARKER_NAME = "runtrail.run.start";
export const START_MARKER_KIND = "run.start";
