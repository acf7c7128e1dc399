// The run's span tree: a node per span, under its parent, a placeholder or the missed holder.
"use strict";

function nodeFor(current, event) {
  let node = current.nodes.get(event.span_id);
  if (node && node.placeholder) arrived(current, node, event);
  if (!node && !event.parent_span_id && current.root && current.root.standIn) {
    node = current.root; // the pipeline span the stand-in stood for
    node.standIn = false;
    node.spanId = event.span_id;
    node.dom.box.dataset.spanId = event.span_id;
    current.nodes.set(event.span_id, node);
  }
  if (!node) {
    node = blankNode(event.name, "running");
    node.spanId = event.span_id;
    node.parentId = event.parent_span_id;
    current.nodes.set(event.span_id, node);
    attach(current, node);
    if (node !== current.root) current.stats.tasks += 1;
    fillUsual(current, node); // its start may be gone: the run's tree may know its usual time
  }
  return node;
}

// What a task reports while it runs: its log lines, its progress, its allowed attributes
function inside() {
  return { logs: [], logCount: 0, drawnLogs: 0, progress: null, attributes: null };
}

function attach(current, node) {
  let host = null;
  if (node.parentId) host = current.nodes.get(node.parentId) || awaited(current, node.parentId);
  else if (!current.root) current.root = node;
  place(node, host);
}

function place(node, host) {
  node.depth = host ? host.depth + 1 : 0;
  node.dom = buildNode(node);
  (host ? host.dom.children : $("tree")).append(node.dom.box);
}

// A span whose parent has not arrived yet (a service's spans come over OTLP, children first)
// waits under a placeholder for it, under the root, until the parent's own event turns the
// placeholder into the parent; with the run's first events gone, under the missed holder.
function awaited(current, parentId) {
  if (current.firstSeq > 1 || !current.root || current.root.standIn) return missedHolder(current);
  const holder = standIn("…", "waiting", false);
  holder.spanId = parentId;
  holder.placeholder = true;
  current.nodes.set(parentId, holder);
  place(holder, current.root);
  current.dirty.add(holder);
  return holder;
}

function arrived(current, node, event) {
  node.placeholder = false;
  node.status = "running";
  node.parentId = event.parent_span_id;
  const host = current.nodes.get(node.parentId) || current.root;
  host.dom.children.append(node.dom.box);
  deepen(current, node, host.depth + 1);
  current.stats.tasks += 1;
}

function deepen(current, node, depth) {
  node.depth = depth;
  node.dom.row.style.setProperty("--depth", String(depth));
  for (const box of node.dom.children.children) {
    const child = current.nodes.get(box.dataset.spanId);
    if (child) deepen(current, child, depth + 1);
  }
}

// A task whose parent's events are gone (evicted from the replay buffer before this page
// came) goes under one placeholder, itself under the run's root, or a stand-in for it
// until the pipeline_completed event names the root.
function missedHolder(current) {
  if (current.missed) return current.missed;
  if (!current.root) {
    current.root = standIn("run", "running", true);
    fillStandIn(current, current.root);
    place(current.root, null);
    current.dirty.add(current.root);
  }
  current.missed = standIn("earlier events missed", "missed", false);
  place(current.missed, current.root);
  current.dirty.add(current.missed);
  missedMessage(current);
  return current.missed;
}

function blankNode(name, status) {
  return {
    spanId: "",
    parentId: null,
    name,
    depth: 0,
    status,
    startMs: null,
    endMs: null,
    durationMs: null,
    error: null,
    errorType: null,
    usualMs: null, // what its history says it usually takes, when its pipeline has one
    usualP90Ms: null,
    overdue: false, // task_overdue came while it ran
    overdueMs: null,
    ...inside(),
    dom: null,
  };
}

function standIn(name, status, isRoot) {
  return { ...blankNode(name, status), standIn: isRoot };
}

// The run's name and start, from GET /runs/{id}, until its pipeline_completed arrives
function fillStandIn(current, stand) {
  if (!current.info) return;
  if (current.info.name) stand.name = current.info.name;
  if (stand.standIn && current.info.tree) fillUsual(current, stand, current.info.tree);
  const started = Date.parse(current.info.started_at);
  if (Number.isFinite(started) && stand.startMs === null) stand.startMs = current.startMs = started;
}

function missedMessage(current) {
  const which = current.firstSeq > 1 ? `Events 1 to ${current.firstSeq - 1}` : "Some events";
  showMessage(
    `${which} of this run are no longer kept by the server: ` +
      "tasks whose parent is unknown are shown under “earlier events missed”.",
  );
}

function buildNode(node) {
  const box = el("div", "node");
  box.setAttribute("role", "treeitem");
  box.dataset.spanId = node.spanId;
  const row = el("div", "row");
  row.style.setProperty("--depth", String(node.depth));
  const label = el("div", "label");
  const name = el("span", "name", node.name);
  name.title = node.name;
  const status = el("span", "status");
  const duration = el("span", "duration");
  const service = el("span", "service", node.service || "");
  service.hidden = !node.service;
  const overdue = el("span", "overdue");
  overdue.hidden = true;
  label.append(name, service, status, overdue, duration);
  const lane = el("div", "lane");
  const bar = el("div", "bar");
  const usual = el("div", "usual-mark");
  usual.hidden = true;
  lane.append(bar, usual);
  const error = el("div", "error clip");
  error.title = "click to see it whole";
  error.tabIndex = 0;
  error.hidden = true;
  const progress = el("div", "progress");
  progress.hidden = true;
  const fill = el("div", "progress-fill");
  const progressText = el("span", "progress-text");
  progress.append(fill, progressText);
  const logs = el("details", "logs");
  logs.open = true;
  logs.hidden = true;
  const logsSummary = el("summary", "logs-summary");
  const logLines = el("ol", "log-lines");
  logs.append(logsSummary, logLines);
  row.append(label, lane, error, progress, logs);
  label.addEventListener("click", () => select(node));
  lane.addEventListener("click", () => select(node));
  const children = el("div", "children");
  children.setAttribute("role", "group");
  box.append(row, children);
  return {
    box, row, name, service, status, duration, bar, error, children, usual, overdue,
    progress, fill, progressText, logs, logsSummary, logLines,
  };
}
