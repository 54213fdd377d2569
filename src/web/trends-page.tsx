import type { Hono } from "hono";
import type { Child } from "hono/jsx";
import type { Env } from "hono/types";
import {
  type CrashedRun,
  DEFAULT_TREND_WINDOW,
  isTrendWindow,
  type ListedRun,
  type PipelineTrend,
  type StuckRun,
  TREND_WINDOWS,
  type TrendBucket,
  type Trends,
  type TrendWindow,
  trends,
} from "../query/trends.js";
import { ApiError } from "../server/api-error.js";
import { formatSeconds, isoOfMicros } from "../util/duration.js";
import { formatPercent, formatTime } from "../util/format.js";
import { Layout } from "./layout.js";
import { htmlPage, type WebDeps } from "./page.js";
import { type Column, ColumnHeads, Time } from "./run-views.js";

const WINDOW_CHOICES: { value: TrendWindow; text: string }[] = [
  { value: "24h", text: "Last 24 hours, by hour" },
  { value: "7d", text: "Last 7 days, by 6 hours" },
  { value: "30d", text: "Last 30 days, by day" },
];

/** Heading of a table's bucket column, by window. */
const BUCKET_HEADINGS: Record<TrendWindow, string> = {
  "24h": "Hour from (UTC)",
  "7d": "6 hours from (UTC)",
  "30d": "Day (UTC)",
};

/** What `/ui/charts.js` draws: per pipeline, columns of numbers by bucket, times in seconds. */
export interface TrendsChartData {
  window: TrendWindow;
  bucketSeconds: number;
  since: string;
  until: string;
  pipelines: {
    name: string;
    x: number[];
    runs: number[];
    failed: number[];
    /** Failures over finished runs, 0 to 1; null where no run finished. */
    failureRate: (number | null)[];
    p50: (number | null)[];
    p95: (number | null)[];
  }[];
}

/**
 * `GET /trends`: runs, failure rate and durations over time, per pipeline, as charts drawn by
 * `/ui/charts.js` and as tables of the same numbers; then the runs stuck now and the runs that
 * crashed in the window. `?window=24h|7d|30d` (default 7d) and `?pipeline=`; a tenant's token
 * sees its tenant's runs only.
 */
export function registerTrendsPage<E extends Env>(app: Hono<E>, deps: WebDeps<E>): void {
  app.get("/trends", async (c) => {
    const grant = deps.readGrant(c);
    const windowText = c.req.query("window") || DEFAULT_TREND_WINDOW;
    if (!isTrendWindow(windowText)) {
      throw new ApiError(
        400,
        "invalid_parameter",
        `window: "${windowText}" is not one of ${Object.keys(TREND_WINDOWS).join(", ")}`,
      );
    }
    const pipeline = c.req.query("pipeline") || undefined;
    const result = await deps.store().read((s) =>
      trends(s, {
        window: windowText,
        stuckAfterMs: deps.stuckAfterMs,
        tenant: grant.tenant ?? undefined,
        pipeline,
      }),
    );
    return htmlPage(
      c,
      200,
      <Layout
        title="Trends"
        section="trends"
        styles={["/ui/uplot.css"]}
        scripts={["/ui/uplot.js", "/ui/charts.js"]}
      >
        <TrendsView trends={result} pipeline={pipeline} stuckAfterMs={deps.stuckAfterMs} />
      </Layout>,
    );
  });
}

/** The numbers the charts draw, as the page embeds them. */
export function chartData(t: Trends): TrendsChartData {
  return {
    window: t.window,
    bucketSeconds: t.bucketMicros / 1e6,
    since: isoOfMicros(t.since),
    until: isoOfMicros(t.until),
    pipelines: t.pipelines.map((p) => ({
      name: p.pipeline,
      x: p.buckets.map((b) => b.start / 1e6),
      runs: p.buckets.map((b) => b.runs),
      failed: p.buckets.map((b) => b.failed),
      failureRate: p.buckets.map((b) => b.failureRate),
      p50: p.buckets.map((b) => b.p50Seconds),
      p95: p.buckets.map((b) => b.p95Seconds),
    })),
  };
}

/**
 * JSON to put inside a `<script>` element: `<`, `>` and `&` escaped so that no text in it can
 * close the element or open a comment; line and paragraph separators escaped for old parsers.
 */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

interface ViewProps {
  trends: Trends;
  pipeline: string | undefined;
  stuckAfterMs: number;
}

function TrendsView({ trends: t, pipeline, stuckAfterMs }: ViewProps) {
  const span = TREND_WINDOWS[t.window];
  const names =
    pipeline !== undefined && !t.pipelineNames.includes(pipeline)
      ? [...t.pipelineNames, pipeline].sort()
      : t.pipelineNames;
  return (
    <>
      <h1>Trends</h1>
      <form method="get" action="/trends" class="inline">
        <label>
          Window
          <select name="window">
            {WINDOW_CHOICES.map((choice) => (
              <option value={choice.value} selected={choice.value === t.window}>
                {choice.text}
              </option>
            ))}
          </select>
        </label>
        <label>
          Pipeline
          <select name="pipeline">
            <option value="" selected={pipeline === undefined}>
              All pipelines
            </option>
            {names.map((name) => (
              <option value={name} selected={name === pipeline}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
      <p class="trends-note">
        Runs that started in {span.label} (from <Time micros={t.since} /> UTC), per{" "}
        {span.bucketLabel}. Failed, crashed and timed-out runs count as failures; the failure rate
        is failures over finished runs, so runs still running are left out. Durations (p50, p95) are
        of finished runs.
      </p>
      {t.pipelines.length === 0 ? (
        <p class="notice">
          {pipeline === undefined
            ? `No runs started in ${span.label}.`
            : `No runs of ${pipeline} started in ${span.label}.`}
        </p>
      ) : (
        t.pipelines.map((p, index) => <PipelineSection trend={p} index={index} window={t.window} />)
      )}
      <div class="trends-lists">
        <StuckRuns runs={t.stuck} total={t.stuckTotal} stuckAfterMs={stuckAfterMs} now={t.until} />
        <CrashedRuns runs={t.crashed} total={t.crashedTotal} window={t.window} />
      </div>
      <script
        type="application/json"
        id="trends-data"
        dangerouslySetInnerHTML={{ __html: scriptJson(chartData(t)) }}
      />
    </>
  );
}

function PipelineSection(props: { trend: PipelineTrend; index: number; window: TrendWindow }) {
  const { trend: p, index } = props;
  const span = TREND_WINDOWS[props.window];
  const heading = `pipeline-${index}`;
  const totals = p.totals;
  const rates = p.buckets.filter((b) => b.failureRate !== null);
  const worst = rates.reduce<TrendBucket | undefined>(
    (top, b) => (top === undefined || (b.failureRate ?? 0) > (top.failureRate ?? 0) ? b : top),
    undefined,
  );
  const busiest = p.buckets.reduce<TrendBucket | undefined>(
    (top, b) => (top === undefined || b.runs > top.runs ? b : top),
    undefined,
  );
  const runsLabel =
    `Bar chart of runs per ${span.bucketLabel}, with a line of the failure rate in percent ` +
    `on a second axis, for pipeline ${p.pipeline} over ${span.label}: ${totals.runs} runs` +
    (busiest !== undefined && busiest.runs > 0
      ? `, at most ${busiest.runs} from ${bucketText(busiest.start, props.window)} UTC`
      : "") +
    (worst !== undefined && worst.failureRate !== null
      ? `; highest failure rate ${formatPercent(worst.failureRate)} from ${bucketText(worst.start, props.window)} UTC`
      : "") +
    ". The numbers are in the table below.";
  const p95s = p.buckets.flatMap((b) => (b.p95Seconds === null ? [] : [b.p95Seconds]));
  const durationLabel =
    `Line chart of the p50 and p95 duration of finished runs per ${span.bucketLabel} for ` +
    `pipeline ${p.pipeline} over ${span.label}` +
    (p95s.length > 0
      ? `: p95 from ${formatSeconds(Math.min(...p95s))} to ${formatSeconds(Math.max(...p95s))}`
      : ": no finished runs") +
    ". The numbers are in the table below.";
  return (
    <section class="trend" aria-labelledby={heading}>
      <h2 id={heading}>{p.pipeline}</h2>
      <p>
        {totals.runs} {totals.runs === 1 ? "run" : "runs"}, {totals.failed} failed
        {totals.failureRate === null
          ? ""
          : ` (${formatPercent(totals.failureRate)} of ${totals.finished} finished)`}
        , p50 {seconds(totals.p50Seconds)}, p95 {seconds(totals.p95Seconds)}.
      </p>
      <div class="trend-charts">
        <Chart caption="Runs and failure rate" chart="runs" index={index} label={runsLabel} />
        <Chart caption="Duration p50 / p95" chart="duration" index={index} label={durationLabel} />
      </div>
      <details class="numbers" open>
        <summary>Numbers per {span.bucketLabel}</summary>
        <div class="table-wrap">
          <table class="trend-table">
            <caption>
              Runs, failures and durations of {p.pipeline} per {span.bucketLabel}, oldest first
            </caption>
            <ColumnHeads
              columns={[
                BUCKET_HEADINGS[props.window],
                ["Runs", "num"],
                ["Failed", "num"],
                ["Failure rate", "num"],
                ["p50", "num"],
                ["p95", "num"],
              ]}
            />
            <tbody>
              {p.buckets.map((b) => (
                <tr>
                  <th scope="row">
                    <time datetime={isoOfMicros(b.start)}>{bucketText(b.start, props.window)}</time>
                  </th>
                  <td class="num">{b.runs}</td>
                  <td class="num">{b.failed}</td>
                  <td class="num">{b.failureRate === null ? "–" : formatPercent(b.failureRate)}</td>
                  <td class="num">{seconds(b.p50Seconds)}</td>
                  <td class="num">{seconds(b.p95Seconds)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </section>
  );
}

/** A chart the page's script draws into, described in words for those who cannot see it. */
function Chart(props: { caption: string; chart: string; index: number; label: string }) {
  return (
    <figure>
      <figcaption>{props.caption}</figcaption>
      <div
        class="chart"
        data-chart={props.chart}
        data-index={String(props.index)}
        role="img"
        aria-label={props.label}
      />
    </figure>
  );
}

function StuckRuns(props: { runs: StuckRun[]; total: number; stuckAfterMs: number; now: number }) {
  const limit = formatSeconds(props.stuckAfterMs / 1000);
  return (
    <RunList
      id="stuck-runs"
      title="Stuck runs"
      none={<>None: no run has been running for more than {limit}.</>}
      caption={<>Runs still running that started more than {limit} ago, newest first</>}
      columns={[["Running for", "num"], "Last heartbeat (UTC)", "Stage"]}
      runs={props.runs}
      total={props.total}
      cells={(run) => (
        <>
          <td class="num">{formatSeconds((props.now - run.startedAt) / 1e6)}</td>
          <Heartbeat run={run} />
          <td>{run.currentStage ?? "–"}</td>
        </>
      )}
    />
  );
}

function CrashedRuns(props: { runs: CrashedRun[]; total: number; window: TrendWindow }) {
  const label = TREND_WINDOWS[props.window].label;
  return (
    <RunList
      id="crashed-runs"
      title="Crashed runs"
      none={<>None: no run that started in {label} crashed.</>}
      caption={<>Runs that started in {label} and crashed, newest first</>}
      columns={["Last heartbeat (UTC)", "Why it counts as crashed"]}
      runs={props.runs}
      total={props.total}
      cells={(run) => (
        <>
          <Heartbeat run={run} />
          <td>{run.statusReason ?? "–"}</td>
        </>
      )}
    />
  );
}

/**
 * A section listing runs: a table of each run's link, pipeline and start, then the `cells` of
 * the list's own `columns`; `none` when there are none.
 */
function RunList<R extends ListedRun>(props: {
  id: string;
  title: string;
  none: Child;
  caption: Child;
  columns: readonly Column[];
  runs: R[];
  total: number;
  cells: (run: R) => Child;
}) {
  return (
    <section aria-labelledby={props.id}>
      <h2 id={props.id}>{props.title}</h2>
      {props.runs.length === 0 ? (
        <p>{props.none}</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption>
              {props.caption}
              {shownOf(props.runs.length, props.total)}
            </caption>
            <ColumnHeads columns={["Run", "Pipeline", "Started (UTC)", ...props.columns]} />
            <tbody>
              {props.runs.map((run) => (
                <tr>
                  <td>
                    <RunLink runId={run.runId} />
                  </td>
                  <td>{run.pipeline}</td>
                  <td>
                    <Time micros={run.startedAt} />
                  </td>
                  {props.cells(run)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Heartbeat({ run }: { run: ListedRun }) {
  return <td>{run.lastHeartbeat === null ? "none" : <Time micros={run.lastHeartbeat} />}</td>;
}

function RunLink({ runId }: { runId: string }) {
  return (
    <a class="mono" href={`/runs/${encodeURIComponent(runId)}`}>
      {runId}
    </a>
  );
}

function shownOf(shown: number, total: number): string {
  return total > shown ? ` (the newest ${shown} of ${total})` : "";
}

/** A bucket's start as the table shows it (UTC, to the minute): the day alone for daily buckets. */
function bucketText(micros: number, window: TrendWindow): string {
  return formatTime(micros).slice(0, window === "30d" ? 10 : 16);
}

function seconds(value: number | null): string {
  return value === null ? "–" : formatSeconds(value);
}
