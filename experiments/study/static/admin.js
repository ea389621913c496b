// The admin page: live progress from /api/admin/status (admin token in the address), text only via textContent.
"use strict";
var admin = (function () {
  var token = new URLSearchParams(window.location.search).get("token") || "";
  var $ = function (id) { return document.getElementById(id); };
  function cell(tr, text, cls) { var td = document.createElement("td"); td.textContent = text; if (cls) { td.className = cls; } tr.appendChild(td); return td; }
  function fill(id, rows, cells) {
    var body = $(id).querySelector("tbody"); body.textContent = "";
    rows.forEach(function (r) { var tr = document.createElement("tr"); cells(tr, r); body.appendChild(tr); });
  }
  function bar(tr, done, total) {
    var td = cell(tr, ""), b = document.createElement("div"), f = document.createElement("div"), s = document.createElement("span");
    b.className = "bar small"; f.style.width = (total ? 100 * done / total : 0) + "%"; b.appendChild(f);
    s.textContent = done + " / " + total; td.appendChild(b); td.appendChild(s);
  }
  function render(s) {
    $("name").textContent = s.name + " (reference: " + s.reference + ")";
    var t = s.totals;
    $("totals").textContent = t.votes + " votes from " + t.raters_started + " raters (" + t.raters + " registered, " +
      t.slots + " slots); " +
      t.pairs_complete + " of " + t.pairs + " pairs have all their votes; " + t.check_failures +
      " attention-check failures; " + t.dropped + " trials dropped";
    var notes = $("notes"); notes.textContent = "";
    s.notes.forEach(function (n) { var li = document.createElement("li"); li.textContent = n; notes.appendChild(li); });
    fill("raters", s.raters, function (tr, r) {
      cell(tr, r.rater_id); cell(tr, r.source);
      if (r.slot === null && r.source !== "import") { cell(tr, "not started", "muted"); } else { bar(tr, r.done, r.total); }
      cell(tr, r.checks_failed + " of " + r.checks, r.checks_failed ? "bad" : "");
      cell(tr, r.last_vote ? r.last_vote.replace("T", " ").slice(0, 19) + " UTC" : "-");
    });
    fill("failures", s.check_failures, function (tr, f) { cell(tr, f.rater_id); cell(tr, f.trial_id); cell(tr, f.check); cell(tr, f.answer); });
    if (!s.check_failures.length) { fill("failures", [0], function (tr) { cell(tr, "none", "muted"); }); }
    fill("pairs", s.pairs, function (tr, p) {
      cell(tr, p.trial_id + (p.dropped ? " (dropped)" : "")); cell(tr, p.question); cell(tr, p.baseline); cell(tr, p.sample_id);
      cell(tr, p.votes + " / " + p.target, p.votes >= p.target ? "ok" : "");
    });
  }
  function refresh() {
    return fetch("/api/admin/status?token=" + encodeURIComponent(token)).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status + ": admin token required"); }
      return r.json();
    }).then(render).catch(function (e) { $("totals").textContent = e.message; });
  }
  $("export").href = "/api/admin/votes.csv?token=" + encodeURIComponent(token);
  refresh(); setInterval(refresh, 5000);
  return {refresh: refresh};
})();
