// orch ui: the only script. A running run's page asks the server whether the run changed
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
