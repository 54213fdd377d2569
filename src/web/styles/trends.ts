/**
 * The trends page's rules: chart colours for the light and dark schemes (each at least 7:1 on
 * the page background; the bars' pale fill is outlined in the bars' colour), the charts' grid,
 * and the charts shown only once `/ui/charts.js` has drawn them (it adds `charts-on`), so that
 * without JavaScript the tables of numbers are what the page shows.
 */
export const TRENDS_CSS = `
:root {
  --chart-runs: #0550ae; --chart-runs-fill: #9ec5f0; --chart-rate: #a40e26;
  --chart-p50: #116329; --chart-p95: #6e2fb5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --chart-runs: #79c0ff; --chart-runs-fill: #1c4a80; --chart-rate: #ffa198;
    --chart-p50: #7ee787; --chart-p95: #d2a8ff;
  }
}
.trends-note { max-width: 60rem; }
section.trend { border-top: 1px solid var(--line); margin-top: 1.5rem; }
section.trend h2 { overflow-wrap: anywhere; }
.trend-charts { display: none; }
.charts-on .trend-charts { display: grid; gap: 1rem 2rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 26rem), 1fr)); margin: .5rem 0; }
.trend-charts figure { margin: 0; min-width: 0; }
.trend-charts figcaption { font-weight: 600; margin-bottom: .3rem; }
.trend-charts .chart { min-height: 260px; overflow: hidden; }
.trend-charts .u-legend { font-size: .85em; }
.trend-table tbody th { font-weight: 400; background: transparent; white-space: nowrap; }
details.numbers { margin: .5rem 0 1rem; }
details.numbers > summary { cursor: pointer; color: var(--link); }
.trends-lists h2 { margin-top: 2rem; }
`;
