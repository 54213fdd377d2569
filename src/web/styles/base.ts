import { RUN_STATUSES } from "../../record/run-status.js";

/**
 * runtrail's own style sheet: system fonts, a light and a dark scheme, status colours with at
 * least 4.5:1 contrast on their background, focus rings, and tables that scroll on narrow
 * screens. Pages add their own rules in `styles/`.
 */
export const BASE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --panel: #f6f8fa;
  --link: #0550ae; --focus: #0969da;
  --completed: #116329; --failed: #a40e26; --running: #7d4e00; --degraded: #8a4600;
  --crashed: #6e2fb5; --timed_out: #a40e26; --rejected: #57606a; --cancelled: #57606a;
  --cached: #0a5d76;
  --completed-bg: #dafbe1; --failed-bg: #ffebe9; --running-bg: #fff8c5; --degraded-bg: #fff1e5;
  --crashed-bg: #fbefff; --timed_out-bg: #ffebe9; --rejected-bg: #eaeef2; --cancelled-bg: #eaeef2;
  --cached-bg: #ddf4ff;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --panel: #161b22;
    --link: #79c0ff; --focus: #58a6ff;
    --completed: #7ee787; --failed: #ffa198; --running: #f2cc60; --degraded: #ffb77c;
    --crashed: #d2a8ff; --timed_out: #ffa198; --rejected: #b1bac4; --cancelled: #b1bac4;
    --cached: #79c0ff;
    --completed-bg: #0f2d19; --failed-bg: #3c1618; --running-bg: #2e2608; --degraded-bg: #3a2410;
    --crashed-bg: #2b1a40; --timed_out-bg: #3c1618; --rejected-bg: #21262d; --cancelled-bg: #21262d;
    --cached-bg: #0c2d3f;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--link); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; padding: .5rem 1rem; background: var(--panel); }
.skip:focus { left: 0; z-index: 10; }
header.top { border-bottom: 1px solid var(--line); background: var(--panel); }
header.top nav { display: flex; gap: 2rem; align-items: center; max-width: 80rem; margin: 0 auto;
  padding: .6rem 1rem; }
header.top .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
header.top ul { display: flex; gap: 1rem; list-style: none; margin: 0; padding: 0; }
header.top a[aria-current="page"] { font-weight: 600; text-decoration-thickness: 2px; }
main { max-width: 80rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
pre { background: var(--panel); border: 1px solid var(--line); padding: .75rem; overflow: auto; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--panel); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: .3rem 0; }
.status { display: inline-block; padding: 0 .45rem; border-radius: 1rem; font-size: .85em; font-weight: 600;
  white-space: nowrap; }
${[...RUN_STATUSES, "cached"]
  .map((s) => `.status-${s} { color: var(--${s}); background: var(--${s}-bg); }`)
  .join("\n")}
.muted { color: var(--muted); }
.notice { padding: .6rem .8rem; border: 1px solid var(--line); background: var(--panel); }
form.inline { display: flex; flex-wrap: wrap; gap: .75rem; align-items: end; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; gap: .2rem; font-size: .9em; }
input, select, button { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line);
  border-radius: 4px; padding: .3rem .5rem; }
button { cursor: pointer; background: var(--panel); }
`;
