import { RunTrailAttributes as R } from "../record/attributes.js";
import { RunRecorder } from "../record/recorder.js";
import type { RunRow, StageRow } from "../record/rows.js";
import type { RunState } from "../record/run-state.js";
import { hrTimeToMicros, type SpanView } from "../record/span-view.js";
import { START_MARKER_KIND } from "../record/start-marker.js";
import { RemoteSpan } from "./remote-span.js";

/** The rows a trace's spans give, and whether its root span was among them. */
export interface TraceRows {
  runs: RunRow[];
  stages: StageRow[];
  /** No span of the trace without a parent: the rows are provisional, waiting for the rest. */
  rootless: boolean;
}

/**
 * Spans' clocks disagree by up to a millisecond: the JS SDK takes a span's start from
 * `Date.now()` and its end from the performance clock. A sibling that starts within this of
 * another's end is taken to have started after it.
 */
const SIBLING_SLACK_US = 2000;

function compareTimes(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

function seqOf(span: RemoteSpan): number | undefined {
  const seq = span.attributes[R.stageSeq];
  return typeof seq === "number" && Number.isFinite(seq) ? seq : undefined;
}

function byId(a: RemoteSpan, b: RemoteSpan): number {
  return a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0;
}

/**
 * Siblings in the order they started. Stages the helpers numbered keep their numbers' order:
 * each starts no earlier than the one numbered before it. One key per span, so the order is
 * the same whatever order the spans arrived in.
 */
function sortByStart(siblings: RemoteSpan[]): void {
  const start = new Map<RemoteSpan, number>();
  const numbered = siblings.filter((s) => seqOf(s) !== undefined);
  numbered.sort((a, b) => (seqOf(a) as number) - (seqOf(b) as number) || byId(a, b));
  let last = Number.NEGATIVE_INFINITY;
  for (const span of numbered) {
    last = Math.max(last, hrTimeToMicros(span.startTime));
    start.set(span, last);
  }
  const key = (span: RemoteSpan) => start.get(span) ?? hrTimeToMicros(span.startTime);
  siblings.sort(
    (a, b) =>
      key(a) - key(b) ||
      (seqOf(a) ?? -1) - (seqOf(b) ?? -1) ||
      compareTimes(a.endTime, b.endTime) ||
      byId(a, b),
  );
}

function byEnd(a: RemoteSpan, b: RemoteSpan): number {
  return compareTimes(a.endTime, b.endTime) || compareTimes(a.startTime, b.startTime) || byId(a, b);
}

/** A span being replayed: its children, the next one to start, and those started, not ended. */
interface Frame {
  span: RemoteSpan;
  children: RemoteSpan[];
  next: number;
  open: RemoteSpan[];
}

/**
 * Replays a trace's spans into a recorder as they would have started and ended in process:
 * a span starts before its children and ends after them, siblings in the order they started,
 * each ended before the next starts unless they overlapped. The order comes from the tree,
 * not from comparing times across spans, which clocks skew. Spans not under a root (their
 * parent has not arrived) are not replayed. Iterative: a trace may be deep.
 */
function replay(
  recorder: RunRecorder,
  spans: ReadonlyMap<string, RemoteSpan>,
  standIn: RemoteSpan | undefined,
): void {
  const children = new Map<string, RemoteSpan[]>();
  const roots: RemoteSpan[] = [];
  for (const span of spans.values()) {
    const parent = span.parentSpanId;
    if (parent === undefined || (!spans.has(parent) && standsAlone(span))) roots.push(span);
    else if (parent !== span.spanId) {
      const list = children.get(parent);
      if (list === undefined) children.set(parent, [span]);
      else list.push(span);
    }
  }
  sortByStart(roots);
  const begin = (span: RemoteSpan, parent: RemoteSpan | undefined): Frame => {
    recorder.start(span, parent);
    const list = children.get(span.spanId) ?? [];
    sortByStart(list);
    return { span, children: list, next: 0, open: [] };
  };
  const closeOpen = (frame: Frame, before: RemoteSpan | undefined) => {
    frame.open.sort(byEnd);
    const limit =
      before === undefined ? undefined : hrTimeToMicros(before.startTime) + SIBLING_SLACK_US;
    while (frame.open.length > 0) {
      const first = frame.open[0] as RemoteSpan;
      if (limit !== undefined && hrTimeToMicros(first.endTime) > limit) break;
      frame.open.shift();
      recorder.end(first);
    }
  };
  for (const root of roots) {
    const stack: Frame[] = [begin(root, undefined)];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as Frame;
      const child = frame.children[frame.next];
      if (child !== undefined) {
        frame.next += 1;
        closeOpen(frame, child);
        frame.open.push(child);
        stack.push(begin(child, frame.span));
        continue;
      }
      closeOpen(frame, undefined);
      stack.pop();
      // A span ends when its parent's next child starts, or as its parent ends; a root now.
      if (stack.length === 0 && frame.span !== standIn) recorder.end(frame.span);
    }
  }
}

/**
 * A span whose parent has not arrived that is replayed all the same, as the in-process
 * recorder sees it: a span whose parent is in another process is a root there, and a span
 * marked as a run is a run wherever it hangs. Its parent may never come.
 */
function standsAlone(span: RemoteSpan): boolean {
  return span.parentIsRemote || span.attributes[R.kind] === "run";
}

/** A span whose parent has not arrived and that cannot be replayed without it. */
function waitsForParent(span: RemoteSpan, spans: ReadonlyMap<string, RemoteSpan>): boolean {
  const parent = span.parentSpanId;
  return parent !== undefined && parent !== span.spanId && !spans.has(parent) && !standsAlone(span);
}

/**
 * The span that stands in for a root that has not arrived: under the parent of the earliest
 * span waiting for its parent, named and attributed from that span's run's start marker if it
 * came (a trace may hold the markers of several runs, under a parent span of them all).
 * It has not ended, so the run is `running`.
 */
function standInRoot(spans: ReadonlyMap<string, RemoteSpan>): RemoteSpan | undefined {
  let first: RemoteSpan | undefined;
  let start: [number, number] | undefined;
  const markers: RemoteSpan[] = [];
  for (const span of spans.values()) {
    if (start === undefined || compareTimes(span.startTime, start) < 0) {
      start = [span.startTime[0], span.startTime[1]];
    }
    if (span.attributes[R.kind] === START_MARKER_KIND) markers.push(span);
    const waiting = waitsForParent(span, spans);
    if (waiting && (first === undefined || compareTimes(span.startTime, first.startTime) < 0)) {
      first = span;
    }
  }
  if (first === undefined || start === undefined) return undefined;
  const standInId = first.parentSpanId;
  const marker = markers.find((m) => m.parentSpanId === standInId);
  const attributes = { ...(marker?.attributes ?? {}) };
  delete attributes[R.kind];
  const pipeline = attributes[R.pipeline];
  const name =
    (typeof pipeline === "string" ? pipeline : undefined) ?? first.serviceName ?? "unknown";
  return new RemoteSpan(
    first.traceId,
    standInId as string,
    undefined,
    name,
    start,
    // Never ended: the end event is not replayed.
    start,
    { code: 0 },
    attributes,
    [],
    first.serviceName,
  );
}

/**
 * Whether a trace's spans include its root, a span without a parent: then its rows are final,
 * and spans whose parents have not arrived wait for them. Without one, the rows are
 * provisional: spans waiting for a parent hang from a stand-in root, and spans that are roots
 * of other processes (whose parent is remote) are runs of their own either way.
 */
export function hasRoot(spans: ReadonlyMap<string, RemoteSpan>): boolean {
  for (const span of spans.values()) if (span.parentSpanId === undefined) return true;
  return false;
}

/**
 * The run and stage rows of one trace's spans, as the in-process processor records them: the
 * spans are replayed through the same recorder, each start and end in the order they happened.
 * A trace whose root has not arrived gets a stand-in root that has not ended, and its spans
 * whose parents have not arrived hang from it: the run shows as `running` from its first span.
 */
export function traceRows(
  received: ReadonlyMap<string, RemoteSpan>,
  options: { tenant: string | null; heartbeat: number },
): TraceRows {
  let spans = received;
  let standIn: RemoteSpan | undefined;
  if (!hasRoot(received)) {
    standIn = standInRoot(received);
    if (standIn !== undefined) {
      const adopted = new Map<string, RemoteSpan>([[standIn.spanId, standIn]]);
      for (const span of received.values()) {
        const waiting = waitsForParent(span, received) && span.parentSpanId !== standIn.spanId;
        adopted.set(span.spanId, waiting ? span.withParent(standIn.spanId) : span);
      }
      spans = adopted;
    }
  }

  const runs = new Set<RunState>();
  const stages = new Map<string, StageRow>();
  const recorder = new RunRecorder(
    {
      runChanged: (run) => runs.add(run),
      stageEnded: (row) => stages.set(row.span_id, row),
    },
    {
      rootSpansAreRuns: true,
      isRun: undefined,
      isStage: undefined,
      tenant: null,
      owner: null,
      maxOpenRuns: Number.MAX_SAFE_INTEGER,
      maxOpenSpans: Number.MAX_SAFE_INTEGER,
      onDrop: () => undefined,
      parentSpanOf: (parent) => parent as SpanView | undefined,
    },
  );
  replay(recorder, spans, standIn);

  const rows: RunRow[] = [];
  const runIds = new Set<string>();
  for (const run of runs) {
    if (runIds.has(run.runId)) continue; // a second root of one trace: the first one is the run
    runIds.add(run.runId);
    const row = run.row(options.heartbeat);
    if (options.tenant !== null) row.tenant_id = options.tenant;
    rows.push(row);
  }
  return {
    runs: rows,
    stages: [...stages.values()].filter((s) => runIds.has(s.run_id)),
    rootless: !hasRoot(received),
  };
}
