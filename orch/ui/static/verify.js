// orch ui: the page of a verification of the whole store (/verify/jobs/N), while it runs.
// It asks /verify/jobs/N.json how far the verification got and shows each phase's count
// (text only, never HTML); once it ended, it loads the page again, which the server renders
// with the report (every value escaped). Only this page includes this script.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.page !== "verify-job" || body.dataset.running !== "1") return;
  var job = body.dataset.job;
  var every = Math.max(Number(body.dataset.pollMs) || 1500, 200);
  var phases = ["artifacts", "ledger", "runs"];

  function counted(c) {
    if (!c) return "not yet";
    if (c.total === null) return String(c.done) + " so far";
    return String(c.done) + " of " + String(c.total);
  }

  function show(state) {
    phases.forEach(function (name) {
      var item = document.getElementById("phase-" + name);
      var count = document.getElementById("phase-" + name + "-count");
      var c = state.phases[name];
      if (count) count.textContent = counted(c);
      if (item) {
        var now = !c ? "waiting" : (name === state.phase ? "running" : "done");
        item.dataset.state = now;
        item.className = "phase phase-" + now;
      }
    });
    var current = state.phases[state.phase];
    var bar = document.getElementById("verify-bar");
    if (bar) {
      bar.max = current && current.total ? current.total : 1;
      bar.value = current && current.total ? current.done : 0;
    }
    var label = document.getElementById("verify-state");
    if (label) label.textContent = String(state.phase);
  }

  function poll() {
    fetch("/verify/jobs/" + encodeURIComponent(job) + ".json", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) {
        if (state.finished) { window.location.reload(); return; }
        show(state);
        body.dataset.polled = String(Number(body.dataset.polled || "0") + 1);
        window.setTimeout(poll, every);
      })
      .catch(function (status) {
        // A job the server forgot (it restarted): the page says so, with the fix.
        if (status === 404) { window.location.reload(); return; }
        window.setTimeout(poll, every * 4);
      });
  }

  window.setTimeout(poll, Math.min(every, 500));
})();
