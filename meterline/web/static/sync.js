// The "sync cloud bills" run on the reconciliation page: while the run shown (#sync-run) is
// running, poll GET /api/sync/{id} (the session cookie is the admin API's too) and show its
// phase and requests; once it is over, load the page again (its outcome, the new rows).
// Without script the page refreshes itself instead (<noscript> meta refresh).
"use strict";
(function () {
  var POLL_MS = 1000;

  function labels() {
    var block = document.getElementById("sync-labels");
    return block ? JSON.parse(block.textContent) : null;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
    });
  }

  // The page's own content again (outcome, rows, balances, history), without a full reload.
  function refresh() {
    fetch(location.pathname + location.search, {credentials: "same-origin",
                                                headers: {"accept": "text/html"}})
      .then(function (answer) {
        if (answer.redirected || !answer.ok) { location.reload(); return null; }
        return answer.text();
      })
      .then(function (html) {
        if (html === null) return;
        var page = new DOMParser().parseFromString(html, "text/html");
        document.querySelector("main").replaceWith(page.querySelector("main"));
        watch();
      })
      .catch(function () { location.reload(); });
  }

  function poll(section, words) {
    var state = section.querySelector(".run-state");
    fetch("/api/sync/" + encodeURIComponent(section.dataset.run),
          {credentials: "same-origin", headers: {"accept": "application/json"}})
      .then(function (answer) {
        if (!answer.ok) throw new Error(String(answer.status));
        return answer.json();
      })
      .then(function (run) {
        if (run.status === "running") {
          var progress = run.progress || {};
          var phase = progress.phase || "starting";
          state.textContent = fill(words.running, {
            phase: words.phases[phase] || phase,
            requests: (progress.requests || 0).toLocaleString(document.documentElement.lang)
          });
          setTimeout(function () { poll(section, words); }, POLL_MS);
        } else {
          section.dataset.status = run.status;
          refresh();
        }
      })
      .catch(function () { state.textContent = words.lost; });
  }

  function watch() {
    var section = document.getElementById("sync-run"), words = labels();
    if (section && words && section.dataset.status === "running") poll(section, words);
  }

  document.addEventListener("DOMContentLoaded", watch);
})();
