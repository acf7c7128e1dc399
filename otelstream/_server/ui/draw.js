// Drawing the run: each task's row (bar, status, failure, progress, logs), the header, the axis.
"use strict";

const TICKS = 5;

function logLine(entry) {
  const line = el("li", "log");
  line.dataset.level = entry.level;
  line.append(
    el("span", "log-time", entry.time),
    el("span", "log-level", entry.level),
  );
  if (entry.service) line.append(el("span", "log-service", entry.service));
  line.append(el("span", "log-message clip", entry.message));
  if (entry.logger) line.title = entry.service ? `${entry.service} · ${entry.logger}` : entry.logger;
  return line;
}

function drawInside(node) {
  const dom = node.dom;
  if (node.progress) {
    const { done, total, message } = node.progress;
    dom.progress.hidden = false;
    const fraction = total === null ? null : Math.max(0, Math.min(1, done / total));
    dom.progress.dataset.known = fraction === null ? "no" : "yes";
    dom.fill.style.setProperty("--fraction", String(fraction ?? 1));
    const count = total === null ? `${done}` : `${done}/${total}`;
    dom.progressText.textContent = message ? `${count} · ${message}` : count;
  }
  if (node.logCount) {
    dom.logs.hidden = false;
    const lines = dom.logLines;
    const fresh = node.logs.slice(node.drawnLogs);
    for (const entry of fresh) lines.append(logLine(entry));
    while (lines.childElementCount > MAX_LOG_LINES) lines.firstElementChild.remove();
    node.drawnLogs = node.logs.length;
    const shown = node.logCount === 1 ? "1 log line" : `${node.logCount} log lines`;
    dom.logsSummary.textContent =
      node.logCount > node.logs.length ? `${shown} (the last ${node.logs.length} kept)` : shown;
    if (fresh.length) lines.scrollTop = lines.scrollHeight; // the newest stays in view
  }
}

function drawNode(current, node) {
  drawInside(node);
  if (node === current.selected) drawDetail(current, node);
  const dom = node.dom;
  if (dom.name.textContent !== node.name) {
    dom.name.textContent = node.name;
    dom.name.title = node.name;
  }
  dom.box.dataset.name = node.name;
  dom.box.dataset.status = STATUS_TEXT[node.status] || node.status;
  dom.status.textContent = STATUS_TEXT[node.status] || node.status;
  dom.duration.textContent = node.durationMs === null ? "" : formatMs(node.durationMs);
  const origin = current.startMs ?? node.startMs ?? 0;
  const start = String(Math.max(0, (node.startMs ?? origin) - origin));
  dom.bar.style.setProperty("--start", start);
  dom.usual.style.setProperty("--start", start);
  drawUsualMark(current, node);
  if (node.status !== "running") {
    const length = node.durationMs ?? Math.max(0, (node.endMs ?? origin) - (node.startMs ?? origin));
    dom.bar.style.setProperty("--length", String(length));
  }
  const failure = shownFailure(current, node);
  if (dom.error.textContent !== (failure ?? "")) dom.error.textContent = failure ?? "";
  dom.error.hidden = failure === null;
}

// A failure shows on the row that raised it: not on its parents, which the same exception
// went through, not for a cancelled task (its status says it), and not on the run's own row
// (the run's header says it)
function shownFailure(current, node) {
  const failure = failureText(node);
  if (failure === null || node.status === "cancelled" || node === current.root) return null;
  for (const child of current.nodes.values()) {
    if (child.parentId === node.spanId && child !== node && failureText(child) === failure) {
      return null;
    }
  }
  return failure;
}

function drawRun(current) {
  if (current.notFound) return;
  const root = current.root;
  if (root) $("run-name").textContent = root.name;
  const status = $("run-status");
  status.dataset.status = current.status;
  status.textContent = STATUS_TEXT[current.status] || current.status;
  const logged = $("run-logged");
  logged.hidden = current.errorLogs === 0;
  logged.textContent = `${current.errorLogs} error${current.errorLogs === 1 ? "" : "s"} logged`;
  $("cancel-button").hidden = current.finished || current.startMs === null;
  const item = runsList.get(current.runId);
  if (item && current.errorLogs) item.dataset.logged = "yes"; // none seen: the summary's word
  if (current.startMs === null) return;
  let total;
  const serverNow = Date.now() + (Number.isFinite(current.skewMs) ? current.skewMs : 0);
  if (current.finished && current.endMs !== null) {
    total = root && root.durationMs !== null ? root.durationMs : current.endMs - current.startMs;
  } else {
    total = Math.max(current.maxSeenMs ?? current.startMs, serverNow) - current.startMs;
  }
  total = Math.max(total, 1);
  drawUsual(current, total, serverNow);
  // a running run's axis reaches its usual end: the running bars grow towards their ticks
  const axis = current.finished ? total : Math.max(total, usualHorizon(current));
  $("tree").style.setProperty("--total", String(axis));
  $("tree").style.setProperty("--now", String(total));
  $("run-duration").textContent = formatMs(total);
  const counts = [`${current.stats.tasks} task${current.stats.tasks === 1 ? "" : "s"}`];
  if (current.stats.failed) counts.push(`${current.stats.failed} failed`);
  if (current.stats.cancelled) counts.push(`${current.stats.cancelled} cancelled`);
  $("run-counts").textContent = counts.join(", ");
  const error = $("run-error");
  const failure = root && root.status === "error" ? failureText(root) : null;
  if (failure !== null && error.textContent !== failure) error.textContent = failure;
  error.hidden = failure === null;
  drawAxis(axis);
}

function drawAxis(total) {
  const ticks = $("axis-ticks");
  if (ticks.childElementCount !== TICKS) {
    ticks.replaceChildren();
    for (let i = 0; i < TICKS; i += 1) ticks.append(el("span", "tick"));
  }
  Array.from(ticks.children).forEach((tick, i) => {
    tick.textContent = formatMs((total * i) / (TICKS - 1));
  });
}
