// The rater page: one trial at a time from /api/next, answers posted to /api/vote. Every text from the study
// (instructions, questions, prompts) is set with textContent, never parsed as HTML.
"use strict";
var study = (function () {
  var token = null, trial = null, shownAt = 0, busy = false, allowTie = true;
  var $ = function (id) { return document.getElementById(id); };

  function show(id) {
    ["intro", "trial", "done", "error"].forEach(function (s) { $(s).hidden = (s !== id); });
  }
  function fail(text) { $("errorText").textContent = text; show("error"); }
  function api(path, opts) {
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { throw new Error(body.detail || ("HTTP " + r.status)); }
        return body;
      });
    });
  }
  function progress(p) {
    $("progressFill").style.width = (p.total ? 100 * p.done / p.total : 0) + "%";
    $("progressText").textContent = p.done + " / " + p.total;
  }
  function syncVideos() {  // the three videos play in step: the left output leads
    var lead = $("vLeft");
    ["vRight", "vSource"].forEach(function (id) {
      var v = $(id);
      if (v.readyState >= 2 && Math.abs(v.currentTime - lead.currentTime) > 0.08) { v.currentTime = lead.currentTime; }
    });
  }
  function play() {
    var vids = ["vSource", "vLeft", "vRight"].map($);
    var ready = 0;
    vids.forEach(function (v) {
      v.oncanplay = function () { ready += 1; if (ready === vids.length) { vids.forEach(function (w) { w.currentTime = 0; w.play().catch(function () {}); }); } };
    });
  }
  function render(t) {
    trial = t;
    $("qTitle").textContent = t.question_title;
    $("question").textContent = t.question;
    $("sampleInstruction").textContent = t.instruction ? "Edit: " + t.instruction : "";
    $("vSource").src = t.source; $("iFirst").src = t.first_frame;
    $("vLeft").src = t.left; $("vRight").src = t.right;
    play();
    shownAt = performance.now(); busy = false;
    show("trial");
  }
  function next() {
    return api("/api/next?token=" + encodeURIComponent(token)).then(function (r) {
      progress(r.progress);
      if (r.done) {
        show("done");
        if (r.completion_url) {
          var a = $("completion"); a.href = r.completion_url; a.hidden = false;
          setTimeout(function () { window.location.assign(r.completion_url); }, 3000);
        }
      } else { render(r.trial); }
    }).catch(function (e) { fail(e.message); });
  }
  function answer(choice) {
    if (busy || !trial || $("trial").hidden || (choice === "tie" && !allowTie)) { return; }
    busy = true;
    var body = {token: token, trial_id: trial.id, choice: choice, response_ms: performance.now() - shownAt};
    api("/api/vote", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(next).catch(function (e) { busy = false; fail(e.message); });
  }
  function start() {
    var q = new URLSearchParams(window.location.search);
    api("/api/session?" + q.toString()).then(function (s) {
      token = s.token; allowTie = s.allow_tie;
      if (!q.get("token")) {  // crowd id: keep its token in the address so a reload resumes directly
        q.set("token", token); window.history.replaceState(null, "", "?" + q.toString());
      }
      $("bTie").hidden = !allowTie;
      document.querySelectorAll(".tiekey").forEach(function (e) { e.hidden = !allowTie; });
      $("instructions").textContent = s.instructions || "";
      if (sessionStorage.getItem("started:" + token)) { next(); } else { show("intro"); }
    }).catch(function (e) { fail(e.message); });
  }
  $("start").onclick = function () { sessionStorage.setItem("started:" + token, "1"); next(); };
  $("bLeft").onclick = function () { answer("left"); };
  $("bRight").onclick = function () { answer("right"); };
  $("bTie").onclick = function () { answer("tie"); };
  document.addEventListener("keydown", function (e) {
    var k = e.key.toLowerCase();
    if (k === "arrowleft" || k === "1") { answer("left"); }
    else if (k === "arrowright" || k === "2") { answer("right"); }
    else if (k === "t" || k === "3") { answer("tie"); }
  });
  setInterval(syncVideos, 250);
  start();
  return {answer: answer, current: function () { return trial; }, token: function () { return token; }};
})();
