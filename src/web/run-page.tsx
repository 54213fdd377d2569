import type { Hono } from "hono";
import type { Child } from "hono/jsx";
import type { Env } from "hono/types";
import { RESUMABLE_STATUSES } from "../pipeline/define-pipeline.js";
import type { ArtifactRow, RunRow, StageRow } from "../record/rows.js";
import type { StageStatus } from "../record/run-status.js";
import { ApiError } from "../server/api-error.js";
import { artifactUrlOf, readArtifactStart } from "../server/artifact-routes.js";
import { formatSeconds } from "../util/duration.js";
import {
  formatBytes,
  formatCount,
  formatProgress,
  formatRunDuration,
  shortId,
} from "../util/format.js";
import { mediaEssence } from "../util/media-type.js";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";
import { ColumnHeads, htmlFragment, StatusBadge, Time, truncate } from "./run-views.js";

/** Bytes of a text or JSON artifact shown on the page; the whole file is a link away. */
const ARTIFACT_INLINE_BYTES = 64 * 1024;
/** Bytes of artifacts shown on one page, all together. */
const PAGE_INLINE_BYTES = 1024 * 1024;

// The stage timeline, in percent of the drawing's width: names, then bars, then room for labels.
const BARS_START = 23;
const BARS_END = 97;
const AXIS_HEIGHT = 24;
const ROW_HEIGHT = 24;
const BAR_HEIGHT = 14;
/** Room (percent) a bar's label needs beside the bar. */
const LABEL_ROOM = 14;

function RunLink(props: { id: string }) {
  return (
    <a href={`/runs/${props.id}`} class="mono" title={props.id}>
      {shortId(props.id)}
    </a>
  );
}

/**
 * A stage execution's place on the timeline, epoch microseconds. The stage a running run is in
 * has no row until it ends (`row` null): its bar starts where the last ended stage ended.
 */
interface Bar {
  name: string;
  status: StageStatus;
  start: number;
  end: number;
  row: StageRow | null;
}

interface Timeline {
  start: number;
  end: number;
  bars: Bar[];
}

/**
 * The stages against time: the run's span (from its start, or an earlier stage's by another
 * clock, to its end, or now while it runs) and each stage's start and end in it. A stage
 * still open ends now while the run runs, else where the run ended.
 */
function timelineOf(run: RunRow, stages: StageRow[], nowMs: number): Timeline {
  const now = nowMs * 1000;
  const ended = (s: StageRow): number | null =>
    s.finished_at ?? (s.duration_seconds === null ? null : s.started_at + s.duration_seconds * 1e6);
  const closed = stages.map(ended).filter((t): t is number => t !== null);
  const running = run.status === "running";
  const openEnd = running
    ? now
    : (run.finished_at ?? Math.max(run.last_heartbeat ?? run.started_at, ...closed));
  const start = Math.min(run.started_at, ...stages.map((s) => s.started_at));
  const bars: Bar[] = stages.map((row) => ({
    name: row.name,
    status: row.status,
    start: row.started_at,
    end: Math.max(row.started_at, ended(row) ?? openEnd),
    row,
  }));
  const current = run.current_stage;
  if (running && current !== null && !stages.some((s) => s.name === current && ended(s) === null)) {
    const after = Math.max(run.started_at, ...closed);
    bars.push({
      name: current,
      status: "running",
      start: after,
      end: Math.max(after, now),
      row: null,
    });
  }
  const end = Math.max(
    run.finished_at ?? openEnd,
    ...bars.map((b) => b.end),
    start + 1000, // a millisecond at least
  );
  return { start, end, bars };
}

/** Tick marks for a span of seconds: 1, 2 or 5 times a power of ten, at most 5 after 0. */
function ticksOf(seconds: number): number[] {
  let step = 0.001;
  for (let power = 0.001; ; power *= 10) {
    const found = [1, 2, 5].map((m) => m * power).find((s) => seconds / s <= 5);
    if (found !== undefined) {
      step = found;
      break;
    }
  }
  const ticks: number[] = [];
  for (let t = 0; t <= seconds + 1e-9; t += step) ticks.push(Number(t.toFixed(6)));
  return ticks;
}

function tickLabel(seconds: number): string {
  if (seconds === 0) return "0s";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${Number(seconds.toFixed(2))}s`;
  return formatSeconds(seconds);
}

/** A stage's duration: as recorded, or so far (with "…") while it runs; unknown for the current stage. */
function stageDuration(bar: Bar): string | null {
  if (bar.row === null) return null;
  if (bar.row.duration_seconds !== null) return formatSeconds(bar.row.duration_seconds);
  return `${formatSeconds((bar.end - bar.start) / 1e6)}…`;
}

function stageName(bar: Bar): string {
  return bar.row !== null && bar.row.attempt > 1
    ? `${bar.name} (try ${bar.row.attempt})`
    : bar.name;
}

function pct(value: number): string {
  return `${Number(value.toFixed(3))}%`;
}

function counted(bars: readonly Bar[]): string {
  const by = new Map<string, number>();
  for (const b of bars) by.set(b.status, (by.get(b.status) ?? 0) + 1);
  return [...by].map(([status, n]) => `${n} ${status}`).join(", ");
}

function Waterfall(props: { timeline: Timeline }) {
  const { start, end, bars } = props.timeline;
  const span = end - start;
  const x = (t: number) => BARS_START + ((t - start) / span) * (BARS_END - BARS_START);
  const height = AXIS_HEIGHT + bars.length * ROW_HEIGHT + 4;
  const label = `Timeline of ${bars.length} stage execution${bars.length === 1 ? "" : "s"} over ${tickLabel(span / 1e6)}: ${counted(bars)}. The table below lists them.`;
  return (
    <svg
      class="waterfall"
      role="img"
      aria-label={label}
      width="100%"
      height={height}
      xmlns="http://www.w3.org/2000/svg"
    >
      {ticksOf(span / 1e6).map((t) => {
        const at = pct(x(start + t * 1e6));
        return (
          <g>
            <line class="tick" x1={at} x2={at} y1={AXIS_HEIGHT - 6} y2={height} />
            <text class="tick-label" x={at} y={AXIS_HEIGHT - 10} text-anchor="middle">
              {tickLabel(t)}
            </text>
          </g>
        );
      })}
      {bars.map((bar, i) => {
        const top = AXIS_HEIGHT + i * ROW_HEIGHT;
        const left = x(bar.start);
        const right = Math.max(x(bar.end), left + 0.25);
        const status = bar.status;
        const duration = stageDuration(bar);
        const text =
          duration === null ? status : `${status === "completed" ? "" : `${status} · `}${duration}`;
        const title =
          bar.row === null
            ? `${bar.name}: running; its start is recorded when it ends`
            : `${stageName(bar)}: ${status}, ${duration}`;
        let labelAt = right + 0.4;
        let anchor: "start" | "end" = "start";
        if (100 - right < LABEL_ROOM) {
          if (left - BARS_START >= LABEL_ROOM) {
            labelAt = left - 0.4;
            anchor = "end";
          } else {
            labelAt = left + 0.4;
          }
        }
        return (
          <g class={`row-${status}`}>
            {i % 2 === 0 ? (
              <rect class="lane" x="0" y={top} width="100%" height={ROW_HEIGHT} />
            ) : null}
            <text x="0.5%" y={top + 16}>
              {truncate(stageName(bar), 32)}
            </text>
            <rect
              class={`stage-bar stage-${status}`}
              x={pct(left)}
              y={top + (ROW_HEIGHT - BAR_HEIGHT) / 2}
              width={pct(right - left)}
              height={BAR_HEIGHT}
              rx="2"
            >
              <title>{title}</title>
            </rect>
            <text
              class={labelAt < right && anchor === "start" ? "bar-label inside" : "bar-label"}
              x={pct(labelAt)}
              y={top + 16}
              text-anchor={anchor}
            >
              {text}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

function offsetText(micros: number): string {
  const seconds = micros / 1e6;
  return `${seconds < 0 ? "−" : "+"}${tickLabel(Math.abs(seconds))}`;
}

function StageTable(props: { run: RunRow; timeline: Timeline }) {
  return (
    <div class="table-wrap">
      <table class="stages">
        <caption>
          Stage executions in the order they started; start is from the run's start.
        </caption>
        <ColumnHeads
          columns={[
            ["#", "num"],
            "Stage",
            ["Try", "num"],
            "Status",
            ["Start", "num"],
            ["Duration", "num"],
            ["Rows in", "num"],
            ["Rows out", "num"],
            ["LLM calls", "num"],
            ["Tokens", "num"],
            "Error",
          ]}
        />
        <tbody>
          {props.timeline.bars.map((bar) => {
            const s = bar.row;
            if (s === null) {
              return (
                <tr>
                  <td class="num">-</td>
                  <td>{bar.name}</td>
                  <td class="num">-</td>
                  <td>
                    <StatusBadge status="running" />
                  </td>
                  <td class="num">-</td>
                  <td class="num">-</td>
                  <td class="num">-</td>
                  <td class="num">-</td>
                  <td class="num">-</td>
                  <td class="num">-</td>
                  <td class="muted">its figures are recorded when it ends</td>
                </tr>
              );
            }
            const error =
              s.error_message === null && s.error_type === null
                ? null
                : [s.error_type, s.error_message].filter(Boolean).join(": ");
            return (
              <tr>
                <td class="num">{s.seq + 1}</td>
                <td>{s.name}</td>
                <td class="num">{s.attempt}</td>
                <td>
                  <StatusBadge status={s.status} />
                  {s.cached_from !== null ? (
                    <>
                      {" "}
                      from <RunLink id={s.cached_from} />
                    </>
                  ) : null}
                </td>
                <td class="num">{offsetText(s.started_at - props.run.started_at)}</td>
                <td class="num">{stageDuration(bar)}</td>
                <td class="num">{formatCount(s.rows_in)}</td>
                <td class="num">{formatCount(s.rows_out)}</td>
                <td class="num">{formatCount(s.llm_calls)}</td>
                <td class="num">
                  {formatCount(s.tokens)}
                  {s.tokens > 0 ? (
                    <span class="muted">
                      {" "}
                      ({formatCount(s.input_tokens)} in, {formatCount(s.output_tokens)} out)
                    </span>
                  ) : null}
                </td>
                {error === null ? (
                  <td></td>
                ) : (
                  <td class="error" title={error}>
                    {truncate(error, 160)}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Stages(props: { run: RunRow; stages: StageRow[]; nowMs: number }) {
  const timeline = timelineOf(props.run, props.stages, props.nowMs);
  if (timeline.bars.length === 0) {
    return (
      <section aria-labelledby="h-stages">
        <h2 id="h-stages">Stages</h2>
        <p class="muted">
          {props.run.status === "running" ? "No stage has started yet." : "This run has no stages."}
        </p>
      </section>
    );
  }
  const present = new Set(timeline.bars.map((b) => b.status));
  return (
    <section aria-labelledby="h-stages">
      <h2 id="h-stages">Stages</h2>
      <figure class="timeline">
        <div class="timeline-wrap">
          <Waterfall timeline={timeline} />
        </div>
        <figcaption>
          <ul class="legend" aria-label="Legend">
            {(["completed", "running", "failed", "cached"] as const)
              .filter((s) => s === "completed" || present.has(s))
              .map((s) => (
                <li>
                  <span class={`swatch stage-${s}`} aria-hidden="true"></span>
                  {s === "cached" ? "cached (reused, not run)" : s}
                </li>
              ))}
          </ul>
        </figcaption>
      </figure>
      <StageTable run={props.run} timeline={timeline} />
    </section>
  );
}

/** What the page shows of an artifact's file. */
type ArtifactView =
  | { as: "text"; text: string; shown: number; truncated: boolean }
  | { as: "image" }
  | { as: "link" }
  | { as: "missing"; why: string };

function isTextual(mediaType: string): boolean {
  return mediaEssence(mediaType).startsWith("text/") || isJson(mediaType);
}

/**
 * The views of a run's artifacts: the start of text and JSON files (read as the file endpoint
 * reads them), images by their URL, the rest as links. A file that is gone says so.
 */
async function artifactViews(
  storePath: string,
  run: RunRow,
  artifacts: readonly ArtifactRow[],
): Promise<ArtifactView[]> {
  let budget = PAGE_INLINE_BYTES;
  const views: ArtifactView[] = [];
  for (const artifact of artifacts) {
    if (mediaEssence(artifact.media_type).startsWith("image/")) {
      views.push({ as: "image" });
      continue;
    }
    if (!isTextual(artifact.media_type) || budget <= 0) {
      views.push({ as: "link" });
      continue;
    }
    try {
      const max = Math.min(ARTIFACT_INLINE_BYTES, budget);
      const { bytes, size } = await readArtifactStart(storePath, run.run_id, artifact, max);
      budget -= bytes.length;
      const truncated = size > bytes.length;
      let text = new TextDecoder("utf-8").decode(bytes, { stream: truncated });
      if (!truncated && isJson(artifact.media_type)) text = prettyJson(text);
      views.push({ as: "text", text, shown: bytes.length, truncated });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      views.push({ as: "missing", why: error.detail });
    }
  }
  return views;
}

function isJson(mediaType: string): boolean {
  const essence = mediaEssence(mediaType);
  return essence === "application/json" || essence.endsWith("+json");
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function Artifacts(props: { run: RunRow; artifacts: ArtifactRow[]; views: ArtifactView[] }) {
  const { run } = props;
  if (props.artifacts.length === 0) return null;
  return (
    <section aria-labelledby="h-artifacts">
      <h2 id="h-artifacts">Artifacts</h2>
      <ol class="artifacts">
        {props.artifacts.map((a, i) => {
          const url = artifactUrlOf(run.run_id, a.seq);
          const view = props.views[i] ?? { as: "link" };
          return (
            <li id={`artifact-${a.seq}`}>
              <h3>
                {a.seq}. {a.kind} <span class="muted mono">{a.file}</span>
              </h3>
              <p class="meta">
                {a.media_type} · {formatBytes(a.size)}
                {a.stage !== null ? <> · stage {a.stage}</> : " · the run"}
                {" · "}
                <a href={url}>Open the file</a>
              </p>
              {view.as === "text" ? (
                <>
                  <pre>{view.text}</pre>
                  {view.truncated ? (
                    <p class="muted">
                      Showing the first {formatBytes(view.shown)} of {formatBytes(a.size)}.{" "}
                      <a href={url}>The whole file</a>
                    </p>
                  ) : null}
                </>
              ) : view.as === "image" ? (
                <img src={url} alt={`${a.kind} (${a.file})`} loading="lazy" />
              ) : view.as === "missing" ? (
                <p class="notice">{view.why}</p>
              ) : (
                <p>
                  <a href={url} download={a.file}>
                    Download {a.file}
                  </a>
                </p>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function Field(props: { term: string; children?: Child; wide?: boolean }) {
  return (
    <div class={props.wide ? "wide" : undefined}>
      <dt>{props.term}</dt>
      <dd>{props.children ?? <span class="muted">-</span>}</dd>
    </div>
  );
}

function orDash(value: string | number | null): string | null {
  return value === null ? null : String(value);
}

function Fields(props: { run: RunRow; nowMs: number }) {
  const { run, nowMs } = props;
  const heartbeatAgo =
    run.last_heartbeat === null ? null : Math.max(0, nowMs * 1000 - run.last_heartbeat) / 1e6;
  const hasMetadata = run.metadata !== null && Object.keys(run.metadata).length > 0;
  return (
    <section aria-labelledby="h-run">
      <h2 id="h-run">Run</h2>
      <dl class="fields">
        <Field term="Started (UTC)">
          <Time micros={run.started_at} />
        </Field>
        <Field term="Finished (UTC)">
          {run.finished_at === null ? null : <Time micros={run.finished_at} />}
        </Field>
        <Field term="Duration">{formatRunDuration(run, nowMs)}</Field>
        {run.deadline_at !== null ? (
          <Field term="Deadline (UTC)">
            <Time micros={run.deadline_at} />
          </Field>
        ) : null}
        <Field term="Stages completed">{formatProgress(run)}</Field>
        <Field term="Current stage">{orDash(run.current_stage)}</Field>
        {run.stages_failed.length > 0 ? (
          <Field term="Failed stages">{run.stages_failed.join(", ")}</Field>
        ) : null}
        <Field term="Rows in / out">
          {formatCount(run.rows_in)} / {formatCount(run.rows_out)}
        </Field>
        <Field term="LLM calls">{formatCount(run.llm_calls)}</Field>
        <Field term="Tokens">
          {formatCount(run.tokens)}{" "}
          <span class="muted">
            (input {formatCount(run.input_tokens)}, output {formatCount(run.output_tokens)})
          </span>
        </Field>
        <Field term="Retries">{run.retry_count}</Field>
        <Field term="Tenant">{orDash(run.tenant_id)}</Field>
        <Field term="Service">{orDash(run.service_name)}</Field>
        <Field term="Code ref">{run.code_ref === null ? null : <code>{run.code_ref}</code>}</Field>
        <Field term="Config hash">
          {run.config_hash === null ? null : <code>{run.config_hash}</code>}
        </Field>
        <Field term="Input fingerprint">
          {run.input_fingerprint === null ? null : <code>{run.input_fingerprint}</code>}
        </Field>
        <Field term="Owner">
          {run.owner_pid === null ? null : `pid ${run.owner_pid} on ${run.owner_host ?? "?"}`}
        </Field>
        <Field term="Last heartbeat (UTC)">
          {run.last_heartbeat === null ? null : (
            <>
              <Time micros={run.last_heartbeat} />
              {heartbeatAgo !== null && run.status === "running" ? (
                <span class="muted"> ({formatSeconds(heartbeatAgo)} ago)</span>
              ) : null}
            </>
          )}
        </Field>
        {run.resumed_from !== null ? (
          <Field term="Resumed from">
            <RunLink id={run.resumed_from} />
          </Field>
        ) : null}
        {run.cached_from !== null ? (
          <Field term="Reused whole from">
            <RunLink id={run.cached_from} />
          </Field>
        ) : null}
        {run.entry_point !== null ? (
          <Field term="Entry point" wide>
            <code>{run.entry_point}</code>
          </Field>
        ) : null}
        {hasMetadata ? (
          <Field term="Metadata" wide>
            <pre>{JSON.stringify(run.metadata, null, 2)}</pre>
          </Field>
        ) : null}
      </dl>
    </section>
  );
}

function ErrorBox(props: { run: RunRow }) {
  const { run } = props;
  if (run.error === null && run.error_message === null && run.error_stack === null) return null;
  const message = run.error_message ?? run.error;
  return (
    <section class="error-box" aria-labelledby="h-error">
      <h2 id="h-error">Error</h2>
      <p class="message">
        {run.error_type !== null ? <strong>{run.error_type}</strong> : null}
        {run.error_type !== null && message !== null ? ": " : null}
        {message}
      </p>
      {run.failed_stage !== null ? (
        <p>
          In stage <strong>{run.failed_stage}</strong>.
        </p>
      ) : null}
      {run.error_stack !== null ? (
        <details open id="error-stack">
          <summary>Stack</summary>
          <pre>{run.error_stack}</pre>
        </details>
      ) : null}
    </section>
  );
}

function Resume(props: { run: RunRow }) {
  const { run } = props;
  if (!RESUMABLE_STATUSES.includes(run.status)) return null;
  return (
    <section aria-labelledby="h-resume">
      <h2 id="h-resume">Resume</h2>
      {run.entry_point !== null ? (
        <p>
          Run it again from the stage that failed, reusing the stages that completed, on the machine
          that holds this store: <code class="command">runtrail resume {run.run_id}</code>
        </p>
      ) : (
        <p>
          This run has no recorded entry point (its pipeline was defined without{" "}
          <code>module: import.meta.url</code>), so the command line cannot load it. Resume it from
          its program with <code>pipeline.resume("{run.run_id}")</code>.
        </p>
      )}
    </section>
  );
}

/** The page's content: what the live script asks for again and swaps in. */
function RunContent(props: {
  run: RunRow;
  stages: StageRow[];
  artifacts: ArtifactRow[];
  views: ArtifactView[];
  jaegerUrl: string | undefined;
  nowMs: number;
}) {
  const { run } = props;
  const running = run.status === "running";
  return (
    <div
      id="run-content"
      data-live={running ? "running" : "finished"}
      data-events={running ? `/api/runs/${run.run_id}/events` : undefined}
      data-fragment={running ? `/runs/${run.run_id}?fragment=main` : undefined}
    >
      <p class="crumbs">
        <a href="/">Runs</a> › run {shortId(run.run_id, run.trace_id)}
      </p>
      <header class="run-head">
        <h1>
          <span>{run.pipeline}</span> <StatusBadge status={run.status} />
        </h1>
        <p class="ids">
          Run <code>{run.run_id}</code> · trace <code>{run.trace_id}</code>
        </p>
        {run.status_reason !== null ? <p>Reason: {run.status_reason}</p> : null}
        <p class="links">
          {props.jaegerUrl !== undefined ? (
            <a href={`${props.jaegerUrl}/trace/${run.trace_id}`} rel="noopener noreferrer">
              Trace in Jaeger
            </a>
          ) : null}
          <a href={`/api/runs/${run.run_id}`}>The run as JSON</a>
        </p>
        {running ? (
          <p class="notice">
            This run is running. With scripts on, this page follows it as its stages end; else
            reload the page to see how far it got.
          </p>
        ) : null}
      </header>
      <ErrorBox run={run} />
      <Resume run={run} />
      <Fields run={run} nowMs={props.nowMs} />
      <Stages run={run} stages={props.stages} nowMs={props.nowMs} />
      <Artifacts run={run} artifacts={props.artifacts} views={props.views} />
    </div>
  );
}

/** `GET /runs/:id`: one run, by run id or trace id or a prefix; `?fragment=main` for its content. */
export function registerRunPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/runs/:id", async (c) => {
    const { run, stages } = await deps.findWithStages(c, c.req.param("id"));
    const store = deps.store();
    // In order of their sequence numbers, as the run row keeps them.
    const artifacts = run.artifacts ?? [];
    const views = await artifactViews(store.path, run, artifacts);
    const content = (
      <RunContent
        run={run}
        stages={stages}
        artifacts={artifacts}
        views={views}
        jaegerUrl={deps.jaegerUrl}
        nowMs={Date.now()}
      />
    );
    if (c.req.query("fragment") === "main") return htmlFragment(c, "main", content);
    return htmlPage(
      c,
      200,
      <Layout
        title={`${run.pipeline} run ${shortId(run.run_id, run.trace_id)}`}
        section="runs"
        scripts={["/ui/run-live.js"]}
      >
        {content}
      </Layout>,
    );
  });
}
