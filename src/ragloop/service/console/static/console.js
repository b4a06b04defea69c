// ragloop console: the live parts of server-rendered pages. Plain JS, no build step.
"use strict";
(function () {
  const body = document.body;
  const csrf = body.dataset.csrf || "";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  async function post(form) {
    const res = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    if (!res.ok) {
      const msg = (data.error && data.error.message) || res.status + " " + res.statusText;
      throw new Error(msg);
    }
    return data;
  }

  function typing(ev) {
    const t = ev.target;
    if (!t) return false;
    if (t.tagName === "INPUT") return !["checkbox", "radio", "button", "submit"].includes(t.type);
    return t.isContentEditable || ["TEXTAREA", "SELECT"].includes(t.tagName);
  }

  // Forms that ask first.
  $$("form.confirm").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm || "Are you sure?")) ev.preventDefault();
    });
  });

  // ---- misses inbox ----------------------------------------------------------------------
  const detail = $(".detail");
  if (detail) {
    const status = $("#action-status");
    const say = (text, bad) => { status.textContent = text; status.classList.toggle("error", !!bad); };
    const searchForm = $("#search-form");
    searchForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const q = $("#q").value;
      say("Searching…");
      try {
        const url = "/console/misses/" + encodeURIComponent(detail.dataset.id) + "/search?q=" + encodeURIComponent(q);
        const res = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (!res.ok) throw new Error(res.status + " " + res.statusText);
        $("#results-box").innerHTML = await res.text(); // rendered and escaped by the server
        say("");
      } catch (e) { say("Search failed: " + e.message, true); }
    });
    const act = async (form, done) => {
      say("Saving…");
      try {
        const data = await post(form);
        say(done);
        const badge = $("#label-status");
        badge.textContent = data.status === "labelled" ? "labelled" : "not answerable";
        badge.className = "badge " + data.status;
        const li = $('.misslist li[data-id="' + detail.dataset.id + '"]');
        if (li && !$(".badge", li)) {
          const b = document.createElement("span");
          b.className = "badge " + data.status;
          b.textContent = badge.textContent;
          li.appendChild(b);
        }
        if (detail.dataset.next) window.setTimeout(() => { window.location.href = detail.dataset.next; }, 400);
      } catch (e) { say(e.message, true); }
    };
    $("#label-form").addEventListener("submit", (ev) => { ev.preventDefault(); act(ev.target, "Labelled: a training pair was stored."); });
    $("#na-form").addEventListener("submit", (ev) => { ev.preventDefault(); act(ev.target, "Marked not answerable."); });
    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (typing(ev)) {
        if (ev.key === "Escape") ev.target.blur();
        return;
      }
      if (ev.key === "j" && detail.dataset.next) { window.location.href = detail.dataset.next; }
      else if (ev.key === "k" && detail.dataset.prev) { window.location.href = detail.dataset.prev; }
      else if (ev.key === "/") { ev.preventDefault(); const q = $("#q"); q.focus(); q.select(); }
      else if (/^[1-9]$/.test(ev.key)) {
        const box = $("#mark-" + ev.key);
        if (box) { box.checked = !box.checked; box.focus(); }
      }
      else if (ev.key === "l") { $("#label-form").requestSubmit(); }
      else if (ev.key === "n") { $("#na-form").requestSubmit(); }
      else return;
    });
  }

  // ---- jobs: follow one live, without reloading --------------------------------------------
  const jobBox = $("#job") || $("#ingest-job");
  function show(job) {
    const set = (id, text) => { const el = $(id); if (el) el.textContent = text; };
    set("#job-state", job.state);
    set("#job-message", job.message || "");
    const pct = Math.round(1000 * (job.progress || 0)) / 10;
    set("#job-percent", String(pct));
    const bar = $("#job-progress");
    if (bar) { bar.value = job.progress || 0; bar.textContent = pct + "%"; }
    const cancel = $("#cancel-form");
    if (cancel) cancel.hidden = job.done || job.kind !== "retrain";
    const log = $("#job-log");
    if (log) { log.hidden = !job.log_tail; set("#job-log-text", job.log_tail || ""); }
    if (jobBox) jobBox.dataset.done = job.done ? "true" : "false";
    trackLoss(job);
  }
  // The loss curve: the worker's message says "training step N/M, loss X" while it trains; the
  // page keeps what it has seen of this job (at most LOSS_POINTS) and draws it as inline SVG.
  const LOSS_POINTS = 300;
  let losses = [];
  let lossJob = null;
  function trackLoss(job) {
    const fig = $("#loss-figure");
    if (!fig) return;
    if (job.id !== lossJob) { lossJob = job.id; losses = []; fig.hidden = true; }
    const m = /training step (\d+)\/(\d+), loss ([-+0-9.eE]+|nan|inf)/.exec(job.message || "");
    if (!m) return;
    const step = Number(m[1]), total = Math.max(Number(m[2]), 1), loss = Number(m[3]);
    if (!Number.isFinite(loss)) return;
    const last = losses[losses.length - 1];
    if (last && step === last.step) return;
    if (last && step < last.step) losses = [];  // a new training run of the same job
    losses.push({ step, loss });
    if (losses.length > LOSS_POINTS) losses.shift();
    drawLoss(fig, total);
  }
  function drawLoss(fig, total) {
    const svg = $("#loss-curve", fig);
    const w = 320, h = 90, pad = 6;
    const lo = Math.min(...losses.map((p) => p.loss)), hi = Math.max(...losses.map((p) => p.loss));
    const span = hi - lo || 1;
    const xy = (p) => [
      (pad + (w - 2 * pad) * (p.step / total)).toFixed(1),
      (pad + (h - 2 * pad) * (1 - (hi === lo ? 0.5 : (p.loss - lo) / span))).toFixed(1),
    ];
    const line = $("#loss-line", svg);
    line.setAttribute("points", losses.map((p) => xy(p).join(",")).join(" "));
    const end = xy(losses[losses.length - 1]);
    const dot = $("#loss-last", svg);
    dot.setAttribute("cx", end[0]);
    dot.setAttribute("cy", end[1]);
    const first = losses[0], now = losses[losses.length - 1];
    const text = "Training loss from " + first.loss.toFixed(4) + " at step " + first.step +
      " to " + now.loss.toFixed(4) + " at step " + now.step + " of " + total +
      " (" + losses.length + " points; lowest " + lo.toFixed(4) + ", highest " + hi.toFixed(4) + ")";
    $("#loss-desc", svg).textContent = text;
    $("#loss-caption", fig).textContent = text;
    svg.dataset.points = String(losses.length);
    fig.hidden = false;
  }
  let timer = null;
  function follow(id) {
    if (timer) window.clearTimeout(timer);
    const tick = async () => {
      try {
        const res = await fetch("/console/api/jobs/" + encodeURIComponent(id), { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (res.ok) {
          const job = await res.json();
          show(job);
          if (job.done) {
            if (body.dataset.page === "documents" && job.state === "succeeded") window.location.reload();
            return;
          }
        }
      } catch (e) { /* the server may be busy: try again */ }
      timer = window.setTimeout(tick, 1000);
    };
    tick();
  }
  if (jobBox && jobBox.dataset.job && jobBox.dataset.done !== "true") follow(jobBox.dataset.job);

  const retrain = $("#retrain-form");
  if (retrain) {
    retrain.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = $("#retrain-error");
      err.textContent = "";
      try {
        const job = await post(retrain);
        const box = $("#job");
        box.hidden = false;
        box.dataset.job = job.id;
        $("#job-title").textContent = "retrain job " + job.id.slice(0, 12);
        $("#cancel-form").action = "/console/jobs/" + job.id + "/cancel";
        show(job);
        window.history.replaceState(null, "", "/console/jobs?job=" + job.id);
        box.scrollIntoView();
        follow(job.id);
      } catch (e) { err.textContent = e.message; }
    });
  }
  const cancel = $("#cancel-form");
  if (cancel) {
    cancel.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { show(await post(cancel)); } catch (e) { $("#job-message").textContent = e.message; }
    });
  }
})();
