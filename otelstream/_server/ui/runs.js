// The live list of runs (GET /runs/live) on the left, and the same runs as the overview table.
"use strict";

const MAX_RUNS_LISTED = 50;

const runsList = new Map(); // run id -> its list item

const RUNS_RETRY_MS = [1000, 2000, 5000, 10000]; // after the browser gave up on the stream
let runsRetries = 0;

function connectRuns() {
  const es = new EventSource(`${base}/runs/live`);
  es.onopen = () => {
    runsRetries = 0;
    $("runs-empty").textContent = "No runs yet.";
    $("overview-empty").textContent = "No runs yet: pick a pipeline on the left and start it.";
  };
  es.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (event.type === "run_started" || event.type === "run_ended") listRun(event);
  };
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    // It gave up (an error status: a 503 while the hub is down): try again, later and later,
    // from the start, so runs started meanwhile are listed too (a run is listed once).
    es.close();
    $("runs-empty").textContent = "The runs list is not available: trying again…";
    $("overview-empty").textContent = "The runs list is not available: trying again…";
    const delay = RUNS_RETRY_MS[Math.min(runsRetries, RUNS_RETRY_MS.length - 1)];
    runsRetries += 1;
    setTimeout(connectRuns, delay);
  };
}

function listRun(summary) {
  if (typeof summary.run_id !== "string") return;
  let item = runsList.get(summary.run_id);
  if (!item) {
    item = el("li", "run-item");
    const link = runLink(summary.run_id, "run-link");
    link.append(el("span", "run-item-name"), el("span", "status"), el("span", "duration"));
    link.append(el("span", "run-item-time muted"), el("code", "run-item-id muted"));
    item.append(link);
    item.dataset.runId = summary.run_id;
    item.overview = overviewRow(summary.run_id);
    item.overview.row.dataset.runId = summary.run_id;
    runsList.set(summary.run_id, item);
    $("runs-list").prepend(item); // run_started events come in start order: newest on top
    $("overview-rows").prepend(item.overview.row);
    while (runsList.size > MAX_RUNS_LISTED) {
      const last = $("runs-list").lastElementChild;
      runsList.get(last.dataset.runId).overview.row.remove();
      runsList.delete(last.dataset.runId);
      last.remove();
    }
    $("runs-empty").hidden = true;
    $("overview-empty").hidden = true;
    $("overview-table").hidden = false;
  }
  const [name, status, duration, time, id] = item.firstElementChild.children;
  name.textContent = summary.name || summary.run_id;
  item.pipelineName = typeof summary.name === "string" ? summary.name : "";
  drawListedUsual(item, item.pipelineName);
  status.dataset.status = summary.status;
  status.textContent = STATUS_TEXT[summary.status] || summary.status;
  item.startedMs = Date.parse(summary.started_at);
  item.durationMs = typeof summary.duration_ms === "number" ? summary.duration_ms : null;
  time.textContent = clockTime(summary.started_at).slice(0, 8); // to the second: room for the id
  time.title = dateTime(summary.started_at);
  id.textContent = shortId(summary.run_id);
  id.title = summary.run_id;
  item.dataset.status = summary.status;
  item.overview.row.dataset.status = summary.status;
  // the summary counts a finished run's ERROR records (every process's); the open run: as seen
  const seen = run && run.runId === summary.run_id ? run.errorLogs : 0;
  const logged = Number.isInteger(summary.errors_logged) ? summary.errors_logged : seen;
  item.dataset.logged = logged ? "yes" : "no";
  item.overview.row.dataset.logged = item.dataset.logged;
  item.title = logged ? `${logged} error${logged === 1 ? "" : "s"} logged` : "";
  const cells = item.overview.cells;
  cells.name.textContent = name.textContent;
  cells.status.dataset.status = summary.status;
  cells.status.textContent = status.textContent;
  cells.started.textContent = time.title;
  const failed = summary.status === "cancelled" ? "" : summary.error_type || "";
  cells.error.textContent = [failed, logged ? item.title : ""].filter(Boolean).join(", ");
  drawAge(item);
  markOpenRun();
}

function runLink(runId, className) {
  const link = el("a", className);
  link.href = `${base}/ui/runs/${encodeURIComponent(runId)}`;
  link.addEventListener("click", (click) => {
    if (click.metaKey || click.ctrlKey || click.shiftKey) return;
    click.preventDefault();
    history.pushState(null, "", link.href);
    openRun(runId);
  });
  return link;
}

// The right pane before a run is opened: the same runs, as a table
function overviewRow(runId) {
  const row = el("tr");
  const cells = {
    name: el("span", "overview-name"),
    id: el("td"),
    status: el("span", "status"),
    started: el("td", "muted"),
    took: el("td", "duration"),
    usual: el("td", "muted overview-usual"),
    error: el("td", "error overview-error"),
  };
  const nameLink = runLink(runId, "overview-link");
  nameLink.append(cells.name);
  const id = el("code", "muted", shortId(runId));
  id.title = runId;
  cells.id.append(id);
  const status = el("td");
  status.append(cells.status);
  const first = el("td");
  first.append(nameLink);
  row.append(first, cells.id, status, cells.started, cells.took, cells.usual, cells.error);
  return { row, cells };
}

// A finished run's duration; a running run's age, ticking, by the server's clock when known
function drawAge(item) {
  let text = "";
  if (item.durationMs !== null) text = formatMs(item.durationMs);
  else if (item.dataset.status === "running" && Number.isFinite(item.startedMs)) {
    text = formatAge(Date.now() + clockSkew() - item.startedMs);
  }
  const duration = item.firstElementChild.children[2];
  if (duration.textContent !== text) duration.textContent = text;
  if (item.overview.cells.took.textContent !== text) item.overview.cells.took.textContent = text;
}

function clockSkew() {
  return run && Number.isFinite(run.skewMs) ? run.skewMs : 0;
}

function tickAges() {
  for (const item of runsList.values()) if (item.dataset.status === "running") drawAge(item);
}

function markOpenRun() {
  for (const [runId, item] of runsList) {
    if (run && run.runId === runId) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
}
