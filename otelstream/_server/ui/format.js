// Formatting: times and durations, states' words, the API's errors and a task's failure as text.
"use strict";

const STATUS_TEXT = {
  running: "running",
  success: "done",
  error: "failed",
  cancelled: "cancelled",
  missed: "missed",
  waiting: "waiting",
};

function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  if (ms === 0) return "0";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${((ms % 60000) / 1000).toFixed(0)} s`;
}

function detail(body, response) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map(validationError).join("; ");
  return `${response.status} ${response.statusText}`;
}

// A 422 item names the field it is about: loc is ["body", the pipeline's tag, ...the path]
function validationLoc(item) {
  let loc = Array.isArray(item.loc) ? item.loc : [];
  if (loc[0] === "body") loc = loc.slice(1);
  if (loc[1] === "parameters" || loc[1] === "pipeline_name") loc = loc.slice(1); // the tag
  return loc;
}

function validationError(item) {
  const loc = validationLoc(item);
  return loc.length ? `${loc.join(".")}: ${item.msg}` : String(item.msg);
}

function shortId(runId) {
  return String(runId).slice(0, 8);
}

// A docstring's `code` spans become <code> elements: DOM nodes with text, never markup
function withCode(node, text) {
  text.split("`").forEach((part, index, parts) => {
    const closed = index % 2 === 1 && index < parts.length - 1;
    if (closed) node.append(el("code", "", part));
    else if (part) node.append(index % 2 === 1 ? `\`${part}` : part);
  });
  return node;
}

function clockTime(timestamp) {
  const at = new Date(timestamp);
  if (!Number.isFinite(at.getTime())) return "";
  return at.toISOString().slice(11, 23); // UTC, as the server writes its times
}

// A date and time, to the second (the runs of other days look like today's without it)
function dateTime(timestamp) {
  const at = new Date(timestamp);
  if (!Number.isFinite(at.getTime())) return "";
  return `${at.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function failureText(node) {
  if (node.error === null && node.errorType === null) return null;
  return node.errorType ? `${node.errorType}: ${node.error ?? ""}` : String(node.error);
}

function formatAge(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
}
