import { FETCH_FRAGMENT_JS } from "./fragment.js";

/**
 * `/ui/run-live.js`: follows a running run on `/runs/<id>`. While the page's content says the
 * run is running, it listens to the run's events (`/api/runs/<id>/events`) and, on each
 * `stage` or `status` event (and every 10 s, for the times so far), asks for the content again
 * and swaps it in. It stops at `end`, once the content shows the run finished, and while the
 * tab is hidden. A stream the server closed (a restart) is opened again 5 s later.
 */
export const RUN_LIVE_JS = `(function () {
  "use strict";
  ${FETCH_FRAGMENT_JS}
  var source = null;
  var pending = null;
  var ticker = null;
  var retry = null;
  var busy = false;
  var again = false;

  function content() {
    return document.getElementById("run-content");
  }

  function running() {
    var el = content();
    return el !== null && el.getAttribute("data-live") === "running";
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var next = doc.getElementById("run-content");
    var el = content();
    if (!next || !el) return;
    var details = el.querySelectorAll("details[id]");
    for (var i = 0; i < details.length; i++) {
      var same = doc.getElementById(details[i].id);
      if (same) same.open = details[i].open;
    }
    var focused = document.activeElement;
    var focusedId = focused && el.contains(focused) ? focused.id : "";
    el.replaceWith(document.adoptNode(next));
    if (focusedId) {
      var target = document.getElementById(focusedId);
      if (target) target.focus();
    }
  }

  function refresh() {
    var el = content();
    var url = el && el.getAttribute("data-fragment");
    if (!url) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetchFragment(url, "main")
      .then(function (html) {
        if (html !== null) swap(html);
      })
      .catch(function () {
        // The server is away for a moment: the next event or tick tries again.
      })
      .then(function () {
        busy = false;
        if (!running()) stop();
        if (again) {
          again = false;
          soon();
        }
      });
  }

  function soon() {
    if (pending !== null) return;
    pending = setTimeout(function () {
      pending = null;
      refresh();
    }, 250);
  }

  function stop() {
    if (source !== null) source.close();
    source = null;
    if (ticker !== null) clearInterval(ticker);
    ticker = null;
    if (retry !== null) clearTimeout(retry);
    retry = null;
  }

  function start() {
    var el = content();
    var url = el && el.getAttribute("data-events");
    if (!url || !running() || document.hidden || source !== null) return;
    source = new EventSource(url);
    source.addEventListener("stage", soon);
    source.addEventListener("status", soon);
    source.addEventListener("end", function () {
      stop();
      refresh();
    });
    source.onerror = function () {
      // While the stream reconnects by itself its state is CONNECTING; CLOSED means it gave up.
      if (source === null || source.readyState !== 2) return;
      stop();
      retry = setTimeout(function () {
        retry = null;
        refresh();
        start();
      }, 5000);
    };
    ticker = setInterval(soon, 10000);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else if (running()) {
      refresh();
      start();
    }
  });
  start();
})();
`;
