import { FETCH_FRAGMENT_JS } from "./fragment.js";

/**
 * `/ui/runs-live.js`: keeps the runs table of `/` current. When the table names a live URL (the
 * first page, or a page with running runs), it asks for the table's rows every 2 s and swaps
 * them in; not while the tab is hidden, nor while the keyboard is on a row. A failed request
 * (the server restarting) is skipped quietly and tried again later, waiting twice as long after
 * each failure in a row (up to 30 s).
 */
export const RUNS_LIVE_JS = `(function () {
  "use strict";
  ${FETCH_FRAGMENT_JS}
  var table = document.getElementById("runs");
  var url = table && table.getAttribute("data-live");
  if (!table || !url) return;
  var timer = null;
  var busy = false;
  var stopped = false;
  var failures = 0;

  function schedule() {
    if (stopped || timer !== null || busy || document.hidden) return;
    timer = setTimeout(tick, Math.min(30000, 2000 * Math.pow(2, failures)));
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
    var next = doc.querySelector("tbody");
    var body = table.querySelector("tbody");
    if (!next || !body) return;
    if (next.getAttribute("data-live") === "no") stopped = true;
    if (document.activeElement && body.contains(document.activeElement)) return;
    body.replaceWith(document.adoptNode(next));
    var total = document.getElementById("runs-total");
    var text = next.getAttribute("data-total-text");
    if (total && text !== null) total.textContent = text;
  }

  function tick() {
    timer = null;
    if (document.hidden) return;
    busy = true;
    fetchFragment(url, "rows")
      .then(function (html) {
        failures = 0;
        if (html !== null) swap(html);
      })
      .catch(function () {
        // The server is away for a moment: try again, a little later each time.
        failures = Math.min(failures + 1, 4);
      })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else if (!busy && !stopped) {
      tick();
    }
  });
  schedule();
})();
`;
