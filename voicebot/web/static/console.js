// The staff console's live parts (voicebot/web/staff_queue.py). Plain JS, no build; every page works without it.
// - /konsole: asks GET /konsole/warteschlange every data-poll-ms and replaces the queue list when it changed
//   (keyboard focus stays on the same button, or moves to the heading when that caller is gone); the waiting
//   times count up every second; the live region says how many callers wait when that number changes.
// - /konsole/gespraech/N: asks its status and reloads the page when the call's state changes.
"use strict";

(() => {
  const area = document.getElementById("warteschlange-bereich");
  const list = document.getElementById("warteschlange-liste");
  const status = document.getElementById("warteschlange-status");
  let offset = 0; // server clock − this clock, seconds
  let failures = 0; // polls in a row without an answer
  const STALE = "Die Warteschlange wird gerade nicht aktualisiert (keine Verbindung zum Server). Bitte später neu laden.";

  function clock(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function tick() {
    const now = Date.now() / 1000 + offset;
    for (const span of document.querySelectorAll(".wartezeit[data-seit]")) {
      const text = clock(now - Number(span.dataset.seit));
      if (span.textContent !== text) span.textContent = text;
    }
  }

  async function poll(delay) {
    try {
      const response = await fetch("/konsole/warteschlange", {
        headers: { Accept: "application/json" },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (response.status === 401) {
        window.location.assign("/anmelden");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      const data = await response.json();
      offset = data.now - Date.now() / 1000;
      if (data.signature !== list.dataset.signatur) {
        const focused = document.activeElement && list.contains(document.activeElement)
          ? document.activeElement.id : "";
        list.innerHTML = data.html;
        list.dataset.signatur = data.signature;
        if (focused) {
          const again = document.getElementById(focused);
          (again || document.getElementById("warteschlange")).focus();
        }
      }
      if (status.textContent !== data.status) status.textContent = data.status;
      tick();
    } catch (error) {
      // The server is restarting or the network is gone: try again, and say so after a few misses.
      failures += 1;
      if (failures === 3) status.textContent = STALE;
    }
    window.setTimeout(() => poll(delay), delay);
  }

  if (area && list && status) {
    const delay = Number(area.dataset.pollMs) || 1000;
    window.setInterval(tick, 1000);
    window.setTimeout(() => poll(delay), delay);
  }

  const call = document.getElementById("gespraech-status");
  if (call) {
    const known = call.dataset.status;
    const watch = async () => {
      try {
        const response = await fetch(`/konsole/gespraech/${call.dataset.eintrag}/status`, {
          headers: { Accept: "application/json" },
          cache: "no-store",
          credentials: "same-origin",
        });
        if (response.ok) {
          const data = await response.json();
          if (data.status !== known) {
            window.location.reload();
            return;
          }
        }
      } catch (error) {
        // try again
      }
      window.setTimeout(watch, 1000);
    };
    if (known === "offered" || known === "answered") window.setTimeout(watch, 1000);
  }
})();
