// Live calls: the console relays the agent's /live status as server-sent events.
// Everything is written with textContent: no markup from the feed is ever interpreted.
"use strict";
(function () {
  const body = document.querySelector("#live-calls tbody");
  const status = document.getElementById("agent-status");
  const none = document.getElementById("no-calls");

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function render(snapshot) {
    if (!snapshot.ok) {
      status.textContent = snapshot.error || "agent not reachable";
    } else {
      const a = snapshot.agent || {};
      status.textContent = "agent: " + (a.calls ?? 0) + " call(s), " + (a.pending ?? 0) + " pending; AMI " +
        (a.ami ?? "?") + "; records " + (a.records ?? "?");
    }
    const calls = snapshot.calls || [];
    body.replaceChildren();
    for (const c of calls) {
      const row = document.createElement("tr");
      row.dataset.callId = c.call_id;
      cell(row, String(c.call_id).slice(0, 8));
      cell(row, (c.started_at || "").replace("T", " ").slice(0, 19));
      cell(row, Math.round(c.duration_s || 0) + " s");
      cell(row, c.state || "", "state");
      cell(row, c.task || "–");
      const slots = Object.entries(c.slots || {}).map(([k, v]) => k + ": " + v).join(", ");
      cell(row, slots || "–");
      cell(row, c.last_reply_ms == null ? "–" : c.last_reply_ms + " ms");
      cell(row, String(c.turns ?? 0));
      body.appendChild(row);
    }
    none.hidden = calls.length > 0;
  }

  const source = new EventSource("/live/events");
  source.addEventListener("live", (event) => render(JSON.parse(event.data)));
  source.onerror = () => { status.textContent = "console connection lost; retrying…"; };
})();
