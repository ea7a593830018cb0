// autoreduce web UI: the little JavaScript the pages use; every page works without it.
"use strict";

// <element data-refresh="URL" data-interval="ms">: fetch URL (an HTML fragment) and swap it in,
// so lists update without a reload. Paused while the tab is hidden.
function startRefresh(element) {
  const url = element.dataset.refresh;
  const interval = parseInt(element.dataset.interval || "3000", 10);
  async function tick() {
    if (!document.hidden) {
      try {
        const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (response.ok) {
          const html = await response.text();
          if (html !== element.dataset.last) {
            element.innerHTML = html;
            element.dataset.last = html;
          }
        }
      } catch (error) { /* offline for a moment: try again next tick */ }
    }
    setTimeout(tick, interval);
  }
  setTimeout(tick, interval);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
});
