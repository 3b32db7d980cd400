// matbench two-alternative forced-choice page. Static: reads window.MATBENCH_STUDY (trials.js), keeps the
// answers in localStorage (resumable after a reload) and exports them as a JSON file. Nothing is sent anywhere.
(function () {
  "use strict";
  const S = window.MATBENCH_STUDY;
  const $ = (id) => document.getElementById(id);
  const store = {
    get(k) { try { return JSON.parse(localStorage.getItem(k)); } catch (e) { return null; } },
    set(k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* private mode: memory only */ } },
  };
  let state = null;     // {participant, started, finished, responses: [...]}
  let shownAt = 0;      // performance.now() when the current trial's images were on screen
  let ready = false;    // choices are ignored until the images have loaded

  function key(pid) { return "matbench-study-" + S.study_id + "-" + pid; }
  function save() { store.set(key(state.participant), state); }

  function show(section) {
    for (const id of ["start", "trial", "done"]) $(id).hidden = id !== section;
  }

  function begin() {
    const pid = $("pid").value.trim();
    if (!pid) { $("pid").focus(); $("pid").placeholder = "please enter your participant id"; return; }
    state = store.get(key(pid)) || {participant: pid, started: new Date().toISOString(), finished: null,
                                    responses: []};
    store.set("matbench-study-last-pid", pid);
    save();
    next();
  }

  function next() {
    const i = state.responses.length;
    if (i >= S.trials.length) { finish(); return; }
    const t = S.trials[i];
    ready = false;
    document.body.dataset.ready = "0";
    show("trial");
    $("progress-text").textContent = "Trial " + (i + 1) + " of " + S.trials.length;
    $("progress").value = i; $("progress").max = S.trials.length;
    const imgs = [["img-masked", t.masked], ["img-left", t.left], ["img-right", t.right]];
    const loads = imgs.map(([id, src]) => {
      const el = $(id);
      el.src = src;
      return el.decode().catch(() => undefined);
    });
    $("full-masked").src = t.masked; $("full-left").src = t.left; $("full-right").src = t.right;
    Promise.all(loads).then(() => {
      ready = true;
      document.body.dataset.ready = "1";  // also a hook for automated tests
      shownAt = performance.now();
    });
  }

  function choose(side) {
    if (!state || !ready || state.finished) return;
    $("full").hidden = true;  // a choice made in the full-size view closes it
    const t = S.trials[state.responses.length];
    state.responses.push({trial: t.id, choice: side, rt_ms: Math.round(performance.now() - shownAt),
                          at: new Date().toISOString()});
    save();
    next();
  }

  function finish() {
    if (!state.finished) { state.finished = new Date().toISOString(); save(); }
    show("done");
    $("done-text").textContent = "You answered all " + state.responses.length +
      " trials. Please export your choices and send the file to the person running the study.";
  }

  function exportChoices() {
    const data = {schema: "matbench.study-choices/1", study_id: S.study_id, participant: state.participant,
                  started: state.started, finished: state.finished, user_agent: navigator.userAgent,
                  n_trials: S.trials.length, responses: state.responses};
    const blob = new Blob([JSON.stringify(data, null, 1)], {type: "application/json"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "choices-" + state.participant.replace(/[^A-Za-z0-9_-]+/g, "_") + "-" + S.study_id + ".json";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function toggleFull(open) {
    if ($("trial").hidden) return;
    $("full").hidden = open === undefined ? !$("full").hidden : !open;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("title").textContent = S.title;
    document.title = S.title;
    const params = new URLSearchParams(location.search);
    $("pid").value = params.get("pid") || store.get("matbench-study-last-pid") || "";
    const prev = $("pid").value && store.get(key($("pid").value));
    if (prev && prev.responses.length) {
      $("resume-note").hidden = false;
      $("resume-note").textContent = "Saved answers found for " + prev.participant + " (" +
        prev.responses.length + " of " + S.trials.length + "): Start continues where you stopped.";
    }
    $("begin").addEventListener("click", begin);
    $("choose-left").addEventListener("click", () => choose("left"));
    $("choose-right").addEventListener("click", () => choose("right"));
    $("export").addEventListener("click", exportChoices);
    $("export-partial").addEventListener("click", exportChoices);  // for a participant who has to stop early
    for (const id of ["img-masked", "img-left", "img-right"]) $(id).addEventListener("click", () => toggleFull(true));
    $("full").addEventListener("click", () => toggleFull(false));
    document.addEventListener("keydown", (ev) => {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      if (!$("start").hidden) { if (ev.key === "Enter") begin(); return; }
      if (!$("done").hidden) { if (ev.key === "e" || ev.key === "E") exportChoices(); return; }
      if (ev.key === "Escape") toggleFull(false);
      else if (ev.key === "f" || ev.key === "F") toggleFull();
      else if (ev.key === "ArrowLeft" || ev.key === "1") choose("left");
      else if (ev.key === "ArrowRight" || ev.key === "2") choose("right");
      else return;
      ev.preventDefault();
    });
    show("start");
    $("pid").focus();
  });
})();
