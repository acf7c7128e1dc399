// Applying a run's events to its tasks' state, in batches, once per animation frame.
"use strict";

const MAX_LOG_LINES = 200; // kept per task (the newest); the count says how many there were

const DRAWN_TYPES = new Set([
  "pipeline_started",
  "task_started",
  "task_completed",
  "task_error",
  "pipeline_completed",
]);

const CANCELLED_TYPE = "RunCancelled"; // a task stopped by its run's cancel: not a failure
const ERROR_LEVELS = new Set(["ERROR", "FATAL", "CRITICAL"]);
const PARAMETERS_ATTRIBUTE = "otelstream.parameters"; // on the pipeline span, when allowlisted

function schedule(current) {
  if (!current.frame) current.frame = requestAnimationFrame(() => flush(current));
}

function flush(current) {
  current.frame = 0;
  if (current !== run) return;
  const events = current.queue;
  current.queue = [];
  for (const event of events) apply(current, event);
  for (const node of current.dirty) drawNode(current, node);
  current.dirty.clear();
  drawRun(current);
}

function apply(current, event) {
  if (event.type === "task_log" || event.type === "task_progress") {
    // The runner's own end-of-run line: the header shows the run's outcome already.
    if (event.logger === "otelstream.runs.outcome") return;
    applyInside(current, event);
    return;
  }
  if (event.type === "task_overdue" || event.type === "pipeline_overdue") {
    applyOverdue(current, event);
    return;
  }
  if (event.type === "logs_dropped") {
    current.logsDropped = event;
    const count = typeof event.dropped === "number" ? event.dropped : "Some";
    showMessage(`${count} log lines of this run were not streamed: its log budget ran out.`);
    return;
  }
  if (!DRAWN_TYPES.has(event.type)) return; // a type this page does not know: ignore it
  const node = nodeFor(current, event);
  if (event.attributes && typeof event.attributes === "object") node.attributes = event.attributes;
  if (typeof event.service === "string" && node.service !== event.service) {
    node.service = event.service; // a span of another service, received over OTLP
    node.dom.service.textContent = event.service;
    node.dom.service.hidden = false;
  }
  if (node === current.root && current.parameters === null) {
    const sent = node.attributes && node.attributes[PARAMETERS_ATTRIBUTE];
    try {
      if (typeof sent === "string") current.parameters = JSON.parse(sent);
    } catch (_) {
      current.parameters = null;
    }
    if (current.parameters !== null) drawParameters(current);
  }
  const at = Date.parse(event.timestamp);
  if (event.name && event.name !== node.name) node.name = event.name;
  switch (event.type) {
    case "pipeline_started":
    case "task_started":
      node.startMs = at;
      readUsual(node, event);
      break;
    case "task_completed":
    case "task_error":
    case "pipeline_completed": {
      node.endMs = at;
      node.durationMs = typeof event.duration_ms === "number" ? event.duration_ms : null;
      if (node.startMs === null && node.durationMs !== null) node.startMs = at - node.durationMs;
      node.error = event.error ?? null;
      node.errorType = event.error_type ?? null;
      if (event.type === "pipeline_completed") node.status = event.status || "success";
      else if (event.type === "task_completed") node.status = "success";
      else node.status = node.errorType === CANCELLED_TYPE ? "cancelled" : "error";
      if (node !== current.root && node.status === "error") current.stats.failed += 1;
      if (node !== current.root && node.status === "cancelled") current.stats.cancelled += 1;
      if (node.parentId) {
        const parent = current.nodes.get(node.parentId);
        if (parent) current.dirty.add(parent); // its error may now be shown here instead
      }
      break;
    }
    default:
      return; // a type this page does not know: ignore it, as the schema asks
  }
  if (node === current.root) {
    current.startMs = node.startMs;
    if (event.type === "pipeline_completed") {
      current.status = node.status;
      current.endMs = node.endMs;
    }
  }
  if (Number.isFinite(at)) current.maxSeenMs = Math.max(current.maxSeenMs ?? at, at);
  current.dirty.add(node);
}

// A log line or a progress report, drawn under the task it came from (the root if unknown)
function applyInside(current, event) {
  const node = current.nodes.get(event.span_id) || current.root;
  if (!node) return;
  if (event.type === "task_progress") {
    node.progress = {
      done: Number(event.done) || 0,
      total: typeof event.total === "number" && event.total > 0 ? event.total : null,
      message: typeof event.message === "string" ? event.message : "",
    };
  } else {
    node.logCount += 1;
    if (ERROR_LEVELS.has(String(event.level))) current.errorLogs += 1;
    node.logs.push({
      level: String(event.level || "INFO"),
      message: String(event.message ?? ""),
      logger: String(event.logger || ""),
      // a record another service sent over OTLP: shown as that service's line
      service: typeof event.service === "string" && event.service !== node.service ? event.service : "",
      time: clockTime(event.timestamp),
    });
    if (node.logs.length > MAX_LOG_LINES) {
      const extra = node.logs.length - MAX_LOG_LINES;
      node.logs.splice(0, extra);
      node.drawnLogs = Math.max(0, node.drawnLogs - extra);
    }
  }
  current.dirty.add(node);
}
