// The detail panel of a clicked task: its timing, failure, attributes and log lines.
"use strict";

function select(node) {
  if (!run || !node.dom) return;
  if (run.selected && run.selected.dom) run.selected.dom.box.classList.remove("selected");
  run.selected = node;
  node.dom.box.classList.add("selected");
  $("detail").hidden = false;
  drawDetail(run, node);
}

function closeDetail() {
  if (run && run.selected && run.selected.dom) run.selected.dom.box.classList.remove("selected");
  if (run) run.selected = null;
  $("detail").hidden = true;
}

function facts(list, pairs) {
  list.replaceChildren();
  for (const [key, value] of pairs) list.append(el("dt", "", key), el("dd", "", value));
}

function drawDetail(current, node) {
  $("detail-name").textContent = node.name;
  const status = $("detail-status");
  status.dataset.status = node.status;
  status.textContent = STATUS_TEXT[node.status] || node.status;
  const timing = [];
  if (node.startMs !== null) timing.push(["started", new Date(node.startMs).toISOString()]);
  if (node.endMs !== null) timing.push(["ended", new Date(node.endMs).toISOString()]);
  if (node.durationMs !== null) timing.push(["duration", formatMs(node.durationMs)]);
  if (node.startMs !== null && current.startMs !== null && node !== current.root) {
    const after = node.startMs - current.startMs;
    timing.push(["after the run's start", after === 0 ? "0 ms" : formatMs(after)]);
  }
  if (node.progress) {
    const { done, total, message } = node.progress;
    timing.push(["progress", (total === null ? `${done}` : `${done}/${total}`) + (message ? ` · ${message}` : "")]);
  }
  facts($("detail-timing"), timing);
  const error = $("detail-error");
  error.hidden = node.error === null && node.errorType === null;
  error.textContent = node.errorType ? `${node.errorType}: ${node.error ?? ""}` : node.error ?? "";
  const attributes = Object.entries(node.attributes || {}).map(([key, value]) => [
    key,
    typeof value === "string" ? value : JSON.stringify(value),
  ]);
  facts($("detail-attributes"), attributes);
  $("detail-no-attributes").hidden = attributes.length > 0;
  const logs = $("detail-logs");
  logs.replaceChildren(...node.logs.map(logLine));
  logs.scrollTop = logs.scrollHeight;
  logs.hidden = node.logs.length === 0; // no empty box above "No log lines."
  $("detail-no-logs").hidden = node.logs.length > 0;
}
