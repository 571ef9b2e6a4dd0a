// orch ui: the only script. Three jobs, each on its own page (below). A running run's page asks the server whether the run changed
// (/runs/RUN/live.json) and, when it did, swaps in the changed sections of a fresh copy of the
// page (parsed with DOMParser, which runs no script). Nothing here reads recorded text into
// HTML itself: the server rendered and escaped every section.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.page !== "run" || body.dataset.live !== "1") return;
  var run = body.dataset.run;
  var every = Math.max(Number(body.dataset.pollMs) || 1500, 200);

  function openDetails() {
    var open = [];
    document.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
    return open;
  }

  function refresh() {
    var keep = openDetails();
    return fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        var main = fresh.getElementById("main");
        if (!main) return;
        document.getElementById("main").replaceChildren.apply(
          document.getElementById("main"), Array.prototype.slice.call(main.childNodes).map(
            function (n) { return document.importNode(n, true); }));
        keep.forEach(function (id) {
          var d = document.getElementById(id);
          if (d) d.open = true;
        });
        body.dataset.version = fresh.body.dataset.version || "";
        body.dataset.live = fresh.body.dataset.live || "0";
        body.dataset.refreshed = String(Number(body.dataset.refreshed || "0") + 1);
      });
  }

  function poll() {
    fetch("/runs/" + encodeURIComponent(run) + "/live.json", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) {
        var changed = state.version !== body.dataset.version;
        var next = changed ? refresh() : Promise.resolve();
        return next.then(function () {
          if (state.live || changed) window.setTimeout(poll, every);
        });
      })
      .catch(function () { window.setTimeout(poll, every * 4); });
  }

  window.setTimeout(poll, every);
})();

// A replay's page, while its replay runs: ask /runs/RUN/replay.json how far it got and show
// the count (text only, never HTML); once it ended, load the page again, which the server
// renders with the result (clean, or the divergence field by field), every value escaped.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.page !== "replay" || body.dataset.running !== "1") return;
  var run = body.dataset.run;
  var job = body.dataset.job;
  var every = Math.max(Number(body.dataset.pollMs) || 1500, 200);

  function show(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  function poll() {
    fetch("/runs/" + encodeURIComponent(run) + "/replay.json", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) {
        var j = state.job;
        if (!j || String(j.job) !== job) { window.location.reload(); return; }
        show("replay-done", String(j.done));
        show("replay-total", j.total === null ? "?" : String(j.total));
        show("replay-state", String(j.state));
        var bar = document.getElementById("replay-bar");
        if (bar) { bar.max = j.total || 1; bar.value = j.done; }
        body.dataset.polled = String(Number(body.dataset.polled || "0") + 1);
        if (j.finished) window.location.reload();
        else window.setTimeout(poll, every);
      })
      .catch(function () { window.setTimeout(poll, every * 4); });
  }

  window.setTimeout(poll, Math.min(every, 500));
})();

// An evaluation's cost-quality plot: a tooltip that follows the pointer over a point, with the
// point's own text (data-tip, which the server escaped into the attribute; shown as text).
// Without this script each point's <title> still shows on hover.
(function () {
  "use strict";
  var plot = document.getElementById("cq-plot");
  var tip = document.getElementById("cq-tip");
  if (!plot || !tip) return;
  var figure = tip.parentElement;

  function place(point, event) {
    tip.textContent = point.getAttribute("data-tip") || "";
    tip.dataset.kind = point.getAttribute("data-kind") || "";
    tip.dataset.label = point.getAttribute("data-label") || "";
    tip.hidden = false;
    var box = figure.getBoundingClientRect();
    tip.style.left = Math.round(event.clientX - box.left + 14) + "px";
    tip.style.top = Math.round(event.clientY - box.top + 14) + "px";
  }

  plot.querySelectorAll("g.pt").forEach(function (point) {
    point.addEventListener("mouseenter", function (e) { place(point, e); });
    point.addEventListener("mousemove", function (e) { place(point, e); });
    point.addEventListener("mouseleave", function () { tip.hidden = true; });
  });
})();
