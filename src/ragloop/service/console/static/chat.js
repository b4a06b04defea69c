// ragloop chat: asks /v1/query/stream, shows the answer as it streams with numbered sources,
// and rates it through /v1/feedback. Plain JS, no build step.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const keyBox = $("#api-key");
  const status = $("#chat-status");
  let queryId = null;
  if (keyBox) keyBox.value = window.sessionStorage.getItem("ragloop-key") || "";

  function headers() {
    const h = { "Content-Type": "application/json", Accept: "text/event-stream, application/json" };
    if (keyBox && keyBox.value) {
      window.sessionStorage.setItem("ragloop-key", keyBox.value);
      h["X-API-Key"] = keyBox.value;
    }
    return h;
  }
  const say = (text, bad) => { status.textContent = text; status.classList.toggle("error", !!bad); };

  async function errorOf(res) {
    try { const d = await res.json(); return (d.error && d.error.message) || res.statusText; }
    catch (e) { return res.status + " " + res.statusText; }
  }

  function renderSources(sources) {
    const list = $("#sources");
    list.textContent = "";
    sources.forEach((s) => {
      const li = document.createElement("li");
      li.value = s.n;
      li.id = "source-" + s.n;
      const title = document.createElement("strong");
      title.textContent = "[" + s.n + "] " + (s.title || s.source);
      const text = document.createElement("p");
      text.textContent = s.text.length > 400 ? s.text.slice(0, 400) + "…" : s.text;
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "answered";
      // The visible text is the accessible name (WCAG 2.5.3: label in name).
      btn.textContent = "Source " + s.n + " answered it";
      btn.disabled = true;
      btn.addEventListener("click", () => rate("up", [s.chunk_id], btn));
      li.append(title, text, btn);
      list.appendChild(li);
    });
  }

  async function rate(rating, chunks, button) {
    if (!queryId) return;
    const body = { query_id: queryId, rating: rating };
    if (chunks) body.relevant_chunk_ids = chunks;
    try {
      const res = await fetch("/v1/feedback", { method: "POST", headers: headers(), body: JSON.stringify(body) });
      if (!res.ok) throw new Error(await errorOf(res));
      if (button) button.setAttribute("aria-pressed", "true");
      say(chunks ? "Thanks: that source is now a labelled example." : "Thanks for the feedback.");
    } catch (e) { say("Feedback failed: " + e.message, true); }
  }

  $("#thumbs-up").addEventListener("click", (ev) => rate("up", null, ev.currentTarget));
  $("#thumbs-down").addEventListener("click", (ev) => rate("down", null, ev.currentTarget));

  $("#ask-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const question = $("#question").value.trim();
    if (!question) return;
    queryId = null;
    document.querySelectorAll(".rate button, .answered").forEach((b) => { b.disabled = true; b.removeAttribute("aria-pressed"); });
    $("#answer").textContent = "";
    $("#sources").textContent = "";
    $("#turn").hidden = false;
    say("Thinking…");
    try {
      const res = await fetch("/v1/query/stream", { method: "POST", headers: headers(), body: JSON.stringify({ question: question }) });
      if (!res.ok) throw new Error(await errorOf(res));
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message", data = "";
          block.split("\n").forEach((line) => {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          });
          if (!data) continue;
          const payload = JSON.parse(data);
          if (event === "sources") renderSources(payload.sources);
          else if (event === "delta") $("#answer").textContent += payload.text;
          else if (event === "end") {
            queryId = payload.query_id;
            document.querySelectorAll(".rate button, .answered").forEach((b) => { b.disabled = false; });
            say(payload.miss ? "Answered (flagged as a possible miss)." : "Answered.");
          } else if (event === "error") throw new Error(payload.error.message);
        }
      }
    } catch (e) { say("Could not answer: " + e.message, true); }
  });
})();
