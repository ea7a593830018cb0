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
            stopLogs(element);
            element.innerHTML = html;
            element.dataset.last = html;
            startLogs(element);
          }
        }
      } catch (error) { /* offline for a moment: try again next tick */ }
    }
    setTimeout(tick, interval);
  }
  setTimeout(tick, interval);
}

// <pre data-log="URL" data-follow="true|false">: show a run's log. Followed live (Server-Sent
// Events: one event per line, then an "end" event) while the run goes on; fetched once otherwise.
function startLog(element) {
  const url = element.dataset.log;
  if (element.dataset.follow === "true" && window.EventSource) {
    element.textContent = "";
    const source = new EventSource(url + "?follow=true");
    source.onmessage = (event) => {
      element.textContent += event.data + "\n";
      element.scrollTop = element.scrollHeight;
    };
    source.addEventListener("end", () => source.close());
    element.logSource = source;
    return;
  }
  fetch(url, { credentials: "same-origin" })
    .then((response) => {
      if (response.ok) { return response.text(); }
      if (response.status === 410) {  // removed by the retention clean-up: say so
        return response.json().then((problem) => `(${problem.detail})`, () => "(log removed)");
      }
      return "(no log)";
    })
    .then((text) => { element.textContent = text || "(the log is empty)"; })
    .catch(() => { /* keep the link to the log */ });
}

function startLogs(root) {
  root.querySelectorAll("[data-log]").forEach(startLog);
}

function stopLogs(root) {
  root.querySelectorAll("[data-log]").forEach((element) => {
    if (element.logSource) { element.logSource.close(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  startLogs(document);
});
