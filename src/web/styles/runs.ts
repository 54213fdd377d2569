/**
 * Style rules of the runs page (`/`) and of a run's page (`/runs/<id>`), on the colours of
 * `base.ts`: text keeps at least 4.5:1 on its background, bars of the stage timeline at least
 * 3:1, and cached stages are dashed and failed ones named, so colour is never the only sign.
 */

/** The runs page: filters, the table of runs, paging. */
export const RUNS_CSS = `
form.filters { display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: end; margin: 0 0 1rem;
  padding: .75rem 1rem; border: 1px solid var(--line); background: var(--panel); }
form.filters fieldset { border: 0; margin: 0; padding: 0; min-width: 0; }
form.filters legend { font-size: .9em; padding: 0; margin-bottom: .2rem; }
form.filters .checks { display: flex; flex-wrap: wrap; gap: .2rem .9rem; }
label.check { flex-direction: row; align-items: center; gap: .35rem; font-size: .9em; }
label.check input { margin: 0; }
form.filters input[readonly] { background: var(--panel); }
form.filters .hint { font-size: .85em; color: var(--muted); }
form.filters .actions { display: flex; gap: 1rem; align-items: center; }
table.runs td.error { color: var(--failed); max-width: 22rem; overflow-wrap: anywhere; }
table.runs td.id a { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table.runs td.empty { padding: 1.5rem .6rem; color: var(--fg); }
table.runs tbody tr:hover { background: var(--panel); }
table.runs td.status-cell { white-space: nowrap; }
.status-stuck { color: var(--degraded); background: var(--degraded-bg); margin-left: .25rem; }
nav.pager { display: flex; gap: 1.5rem; margin: 1rem 0; }
`;

/** A run's page: the header, its fields, the error, the stage timeline, the artifacts. */
export const RUN_CSS = `
.crumbs { margin: 0; font-size: .9em; }
.run-head h1 { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem; margin-bottom: .25rem;
  overflow-wrap: anywhere; }
.run-head .ids { margin: 0 0 .5rem; color: var(--muted); overflow-wrap: anywhere; }
.run-head .ids code { color: var(--fg); }
.run-head .links { display: flex; flex-wrap: wrap; gap: 1rem; margin: 0 0 .5rem; }
dl.fields { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .4rem 1.5rem;
  margin: 0; }
dl.fields > div { border-bottom: 1px solid var(--line); padding: .25rem 0; min-width: 0; }
dl.fields > div.wide { grid-column: 1 / -1; }
dl.fields dt { color: var(--muted); font-size: .85em; }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
dl.fields dd pre { margin: .25rem 0 0; }
section.error-box { border: 1px solid var(--failed); border-left-width: 4px; background: var(--failed-bg);
  padding: .25rem 1rem .75rem; margin: 1rem 0; }
section.error-box h2 { margin-top: .5rem; }
section.error-box .message { overflow-wrap: anywhere; }
section.error-box pre { max-height: 28rem; }
.command { display: inline-block; padding: .3rem .6rem; background: var(--panel); border: 1px solid var(--line);
  user-select: all; }
.timeline-wrap { overflow-x: auto; margin: .5rem 0; }
svg.waterfall { display: block; width: 100%; min-width: 40rem; font-size: .8rem; }
svg.waterfall text { fill: var(--fg); }
svg.waterfall text.tick-label, svg.waterfall text.bar-label { fill: var(--muted); }
svg.waterfall text.bar-label.inside { fill: var(--bg); }
svg.waterfall g.row-cached text.bar-label.inside { fill: var(--fg); }
svg.waterfall line.tick { stroke: var(--line); }
svg.waterfall rect.lane { fill: var(--panel); }
rect.stage-bar { stroke-width: 1.5; }
rect.stage-completed { fill: var(--completed); stroke: var(--completed); }
rect.stage-running { fill: var(--running); stroke: var(--running); }
rect.stage-failed { fill: var(--failed); stroke: var(--failed); }
rect.stage-cached { fill: var(--cached-bg); stroke: var(--cached); stroke-dasharray: 4 2; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; padding: 0; margin: .25rem 0;
  font-size: .9em; }
.swatch { display: inline-block; width: 1.5em; height: .85em; margin-right: .4em; vertical-align: -.05em;
  border: 1.5px solid transparent; border-radius: 2px; }
.swatch.stage-completed { background: var(--completed); border-color: var(--completed); }
.swatch.stage-running { background: var(--running); border-color: var(--running); }
.swatch.stage-failed { background: var(--failed); border-color: var(--failed); }
.swatch.stage-cached { background: var(--cached-bg); border: 1.5px dashed var(--cached); }
table.stages td.error { color: var(--failed); overflow-wrap: anywhere; }
ol.artifacts { list-style: none; padding: 0; margin: 0; display: grid; gap: 1rem; }
ol.artifacts > li { border: 1px solid var(--line); padding: .5rem .9rem; min-width: 0; }
ol.artifacts h3 { font-size: 1rem; margin: .25rem 0; overflow-wrap: anywhere; }
ol.artifacts .meta { margin: 0 0 .5rem; color: var(--muted); font-size: .9em; }
ol.artifacts pre { max-height: 24rem; margin: .25rem 0; }
ol.artifacts img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
@media (forced-colors: active) {
  rect.stage-bar { fill: CanvasText; stroke: CanvasText; }
  rect.stage-cached { fill: Canvas; }
  .swatch { forced-color-adjust: none; }
}
`;
