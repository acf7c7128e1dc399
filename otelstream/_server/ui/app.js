// The live page's start: wires the parts (plain scripts sharing one scope, in index.html's order).
"use strict";

// A clipped line (an error, a log line, a parameter) shows whole on a click, and back
function toggleClip(event) {
  const line = event.target.closest(".clip");
  if (!line || window.getSelection().toString()) return; // selecting text is not a click
  line.classList.toggle("expanded");
}

window.otelstream = { run: null }; // for people (and tests) looking at the page's state

document.addEventListener("DOMContentLoaded", () => {
  $("start-form").addEventListener("submit", startRun);
  $("detail-close").addEventListener("click", closeDetail);
  $("cancel-button").addEventListener("click", cancelRun);
  $("params-raw").addEventListener("change", toggleRaw);
  document.addEventListener("click", toggleClip);
  document.addEventListener("keydown", (key) => {
    if ((key.key === "Enter" || key.key === " ") && key.target.classList.contains("clip")) {
      key.preventDefault();
      key.target.classList.toggle("expanded");
    }
  });
  connectRuns();
  setInterval(tickAges, 1000);
  window.addEventListener("popstate", route);
  loadPipelines();
  route();
});
