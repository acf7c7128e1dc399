// What is usual (issue 31): how long such runs take and about how long is left, in the run's
// header; a tick at a task's usual time on its bar, an "overdue" badge while it runs past it;
// each pipeline's usual duration in the lists. Only numbers from events are read here, and
// every word reaches the page as text.
"use strict";

const usualTimes = new Map(); // pipeline name -> its usual duration (ms), from GET /pipelines

// A usual time or what is left: rough on purpose (a median of past runs is no stopwatch)
function formatRough(ms) {
  const value = Math.max(0, ms);
  if (value < 100) return `${Math.round(value)} ms`;
  if (value < 60000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.floor(value / 60000)} min ${((value % 60000) / 1000).toFixed(0)} s`;
}

function usualMs(value) {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null;
}

// pipeline_started, task_started and the overdue events say what is usual for their span
function readUsual(node, event) {
  const expected = usualMs(event.expected_duration_ms);
  if (expected === null) return;
  node.usualMs = expected;
  node.usualP90Ms = usualMs(event.expected_p90_ms);
}

// GET /runs/{id}: what is usual for each span its tree knows, for a page that opened the run
// after the span's start was evicted (a late page on a long run: pipeline_started first)
function learnUsualFromTree(current, tree) {
  const told = new Map();
  const stack = tree && typeof tree === "object" ? [tree] : [];
  while (stack.length) {
    const node = stack.pop();
    if (!node || typeof node !== "object") continue;
    if (typeof node.span_id === "string") told.set(node.span_id, node);
    if (Array.isArray(node.children)) stack.push(...node.children);
  }
  current.usualTold = told;
  for (const node of current.nodes.values()) fillUsual(current, node);
  if (current.dirty.size) schedule(current);
}

// a node without a usual time takes its tree's, if GET /runs/{id} told one
function fillUsual(current, node, told = current.usualTold && current.usualTold.get(node.spanId)) {
  if (!told || (node.usualMs !== null && node.usualMs !== undefined)) return;
  readUsual(node, told);
  if (told.overdue === true && !node.overdue) {
    node.overdue = true;
    if (node === current.root) current.overdue = true;
  }
  current.dirty.add(node);
}

// task_overdue, pipeline_overdue: once, while the task (the run) still runs
function applyOverdue(current, event) {
  const node = current.nodes.get(event.span_id);
  if (!node || node.endMs !== null) return; // never seen, or ended: a flag can only come first
  node.overdue = true;
  node.overdueMs = usualMs(event.running_ms);
  if (node.usualMs === undefined || node.usualMs === null) readUsual(node, event);
  if (event.type === "pipeline_overdue" || node === current.root) current.overdue = true;
  current.dirty.add(node);
}

// About how long the run has left: its usual time less its age, or, when more, what a running
// task still has of its own usual time. Never negative; null without a history.
function timeLeft(current, elapsed, now) {
  const root = current.root;
  if (!root || root.usualMs === null || root.usualMs === undefined) return null;
  let left = root.usualMs - elapsed;
  for (const node of current.nodes.values()) {
    if (node === root || node.status !== "running" || node.startMs === null) continue;
    if (typeof node.usualMs === "number") left = Math.max(left, node.usualMs - (now - node.startMs));
  }
  return Math.max(0, left);
}

// The header's word: "usually 1.2 s · about 0.8 s left", "· any moment now", "· slower than usual"
function drawUsual(current, elapsed, now) {
  const box = $("run-usual");
  const root = current.root;
  const usual = root ? usualMs(root.usualMs) : null;
  box.hidden = usual === null;
  if (usual === null) return;
  let state = "ended";
  let rest = "";
  const p90 = usualMs(root.usualP90Ms);
  if (current.finished) {
    rest = current.overdue ? "was slower than usual" : "";
  } else if (current.overdue || (p90 !== null && elapsed > p90)) {
    state = "slower";
    rest = "slower than usual";
  } else {
    const left = timeLeft(current, elapsed, now);
    state = left < 50 ? "due" : "left";
    rest = left < 50 ? "any moment now" : `about ${formatRough(left)} left`;
  }
  box.dataset.state = state;
  const text = rest ? `usually ${formatRough(usual)} · ${rest}` : `usually ${formatRough(usual)}`;
  if (box.textContent !== text) box.textContent = text;
}

// The furthest a running run's axis must reach: its usual end, and each running task's
function usualHorizon(current) {
  let horizon = 0;
  const origin = current.startMs;
  if (!current.root || typeof current.root.usualMs !== "number") return horizon; // no history
  for (const node of current.nodes.values()) {
    if (node.status !== "running" || node.startMs === null || typeof node.usualMs !== "number") continue;
    horizon = Math.max(horizon, node.startMs - origin + node.usualMs);
  }
  return horizon;
}

// A task's row: the tick at its usual time on its bar, its overdue badge
function drawUsualMark(current, node) {
  const dom = node.dom;
  const usual = usualMs(node.usualMs); // the root's too: where such runs usually end
  dom.usual.hidden = usual === null;
  if (usual !== null) {
    dom.usual.style.setProperty("--usual", String(usual));
    dom.usual.title = `usually ${formatRough(usual)}`;
  }
  const running = node.status === "running";
  dom.overdue.hidden = !node.overdue || node === current.root;
  dom.overdue.dataset.state = running ? "running" : "ended";
  dom.overdue.textContent = running ? "overdue" : "was overdue";
  dom.overdue.title = usual === null ? "" : `usually ${formatRough(usual)}`;
  dom.box.dataset.overdue = node.overdue && node !== current.root ? (running ? "running" : "ended") : "no";
}

// GET /pipelines: each pipeline's usual duration, beside it in the list
function pipelineUsual(pipeline) {
  const usual = usualMs(pipeline.expected_duration_ms);
  if (usual !== null) usualTimes.set(pipeline.name, usual);
  return usual === null ? null : el("span", "pipeline-usual", `usually ${formatRough(usual)}`);
}

function drawListedUsual(item, name) {
  const usual = usualTimes.get(name);
  const cell = item.overview.cells.usual;
  const text = usual === undefined ? "" : `usually ${formatRough(usual)}`;
  if (cell.textContent !== text) cell.textContent = text;
}
