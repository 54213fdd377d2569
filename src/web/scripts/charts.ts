/**
 * `/ui/charts.js`: draws the trends page's charts with uPlot (loaded before it, from
 * `/ui/uplot.js`). It reads the numbers from the page's `<script type="application/json"
 * id="trends-data">` block, draws into each `.chart[data-chart]` placeholder, takes its colours
 * from the style sheet's variables (so the light and dark schemes both apply, and a change of
 * scheme redraws), then shows the charts and folds the tables of numbers away. Without it, the
 * page shows the same numbers as tables.
 */
export const CHARTS_JS = `(function () {
  "use strict";
  var source = document.getElementById("trends-data");
  if (!source || typeof uPlot === "undefined") return;
  var data;
  try {
    data = JSON.parse(source.textContent || "null");
  } catch (error) {
    return;
  }
  if (!data || !Array.isArray(data.pipelines)) return;

  var targets = Array.prototype.slice.call(document.querySelectorAll(".chart[data-chart]"));
  if (targets.length === 0) return;
  var plots = [];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function palette() {
    return {
      muted: cssVar("--muted", "#57606a"),
      line: cssVar("--line", "#d0d7de"),
      runs: cssVar("--chart-runs", "#0550ae"),
      runsFill: cssVar("--chart-runs-fill", "#9ec5f0"),
      rate: cssVar("--chart-rate", "#a40e26"),
      p50: cssVar("--chart-p50", "#116329"),
      p95: cssVar("--chart-p95", "#6e2fb5")
    };
  }

  function seconds(value) {
    if (value === null || value === undefined) return "\\u2013";
    if (value < 1) return Math.round(value * 1000) + "ms";
    if (value < 60) return value.toFixed(2) + "s";
    var minutes = Math.floor(value / 60);
    if (minutes < 60) return minutes + "m " + Math.round(value - minutes * 60) + "s";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + "h " + (minutes - hours * 60) + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  function axisSeconds(value) {
    if (value === 0) return "0";
    if (value < 1) return Math.round(value * 1000) + "ms";
    if (value < 60) return +value.toFixed(2) + "s";
    if (value < 3600) return +(value / 60).toFixed(1) + "m";
    return +(value / 3600).toFixed(1) + "h";
  }

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  }

  function axis(colors, extra) {
    var result = {
      stroke: colors.muted,
      grid: { stroke: colors.line, width: 1 },
      ticks: { stroke: colors.line, width: 1 }
    };
    for (var key in extra) result[key] = extra[key];
    return result;
  }

  function upFromZero(u, min, max) {
    return [0, max > 0 ? max * 1.1 : 1];
  }

  // Half a bucket either side, so that the first and last bars are whole.
  var halfBucket = (data.bucketSeconds || 3600) / 2;
  function wholeBuckets(u, min, max) {
    return [min - halfBucket, max + halfBucket];
  }

  function runsChart(pipeline, colors) {
    var rate = pipeline.failureRate.map(function (r) {
      return r === null ? null : Math.round(r * 1000) / 10;
    });
    return {
      data: [pipeline.x, pipeline.runs, rate],
      options: {
        scales: { x: { time: true, range: wholeBuckets }, runs: { range: upFromZero }, rate: { range: [0, 100] } },
        series: [
          { label: "Bucket start (UTC)" },
          {
            label: "Runs",
            scale: "runs",
            stroke: colors.runs,
            fill: colors.runsFill,
            width: 1,
            paths: uPlot.paths.bars({ size: [0.7, 48] }),
            points: { show: false }
          },
          {
            label: "Failure rate",
            scale: "rate",
            stroke: colors.rate,
            width: 2,
            dash: [6, 3],
            points: { show: true, size: 6, stroke: colors.rate, fill: colors.rate },
            value: function (u, v) { return v === null || v === undefined ? "\\u2013" : v.toFixed(1) + "%"; }
          }
        ],
        axes: [
          axis(colors, {}),
          axis(colors, {
            scale: "runs",
            label: "Runs",
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000]
          }),
          axis(colors, {
            scale: "rate",
            side: 1,
            label: "Failure rate",
            grid: { show: false },
            values: function (u, values) { return values.map(function (v) { return v + "%"; }); }
          })
        ]
      }
    };
  }

  function durationChart(pipeline, colors) {
    return {
      data: [pipeline.x, pipeline.p50, pipeline.p95],
      options: {
        scales: { x: { time: true, range: wholeBuckets }, y: { range: upFromZero } },
        series: [
          { label: "Bucket start (UTC)" },
          {
            label: "p50",
            stroke: colors.p50,
            width: 2,
            points: { show: true, size: 6, stroke: colors.p50, fill: colors.p50 },
            value: function (u, v) { return seconds(v); }
          },
          {
            label: "p95",
            stroke: colors.p95,
            width: 2,
            dash: [8, 4],
            points: { show: true, size: 6, stroke: colors.p95, fill: colors.p95 },
            value: function (u, v) { return seconds(v); }
          }
        ],
        axes: [
          axis(colors, {}),
          axis(colors, {
            label: "Duration",
            size: 60,
            values: function (u, values) { return values.map(axisSeconds); }
          })
        ]
      }
    };
  }

  function widthOf(target) {
    return Math.max(240, Math.floor(target.clientWidth));
  }

  function draw() {
    plots.forEach(function (plot) { plot.destroy(); });
    plots = [];
    var colors = palette();
    targets.forEach(function (target) {
      var pipeline = data.pipelines[Number(target.getAttribute("data-index"))];
      if (!pipeline) return;
      var chart = target.getAttribute("data-chart") === "runs"
        ? runsChart(pipeline, colors)
        : durationChart(pipeline, colors);
      chart.options.width = widthOf(target);
      chart.options.height = 220;
      chart.options.tzDate = utc;
      chart.options.legend = { live: true };
      var plot = new uPlot(chart.options, chart.data, target);
      plot.target = target;
      plots.push(plot);
    });
  }

  document.body.classList.add("charts-on");
  draw();
  Array.prototype.forEach.call(document.querySelectorAll("details.numbers"), function (details) {
    details.open = false;
  });

  if (typeof ResizeObserver !== "undefined") {
    var observer = new ResizeObserver(function () {
      plots.forEach(function (plot) {
        var width = widthOf(plot.target);
        if (width !== plot.width) plot.setSize({ width: width, height: plot.height });
      });
    });
    targets.forEach(function (target) { observer.observe(target); });
  }
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", draw);
  }
})();
`;
