// One run on screen: its state, opening and closing it by the address, GET /runs/{id}, its clock.
"use strict";

let run = null; // the run on screen; replaced (never reused) when another run opens

function newRun(runId, fresh) {
  return {
    runId,
    nodes: new Map(), // span_id -> node
    root: null,
    lastSeq: 0,
    finished: false,
    status: "running",
    es: null,
    queue: [], // events received, not yet drawn
    dirty: new Set(),
    frame: 0,
    ticker: 0,
    recoveries: 0,
    startMs: null,
    endMs: null,
    maxSeenMs: null,
    // The server's clock minus ours. Replayed events are old, so only live ones count: those
    // after the run's last_seq when GET /runs/{id} answered (every event of a run this page
    // has just started). Until one arrives, the server_time of that answer gives it.
    skewMs: 0,
    liveSkew: false,
    liveAfter: fresh ? 0 : null, // events with a greater seq are live; null: not known yet
    samples: [], // [seq, server time minus ours] of events received before liveAfter is known
    missed: null, // the placeholder that holds tasks whose parent's events are gone
    firstSeq: 1,
    info: null, // GET /runs/{id}
    usualTold: null, // span id -> its node in that answer's tree, for what is usual (usual.js)
    selected: null, // the node whose details the panel shows
    logsDropped: null, // the logs_dropped event, if the run's log budget ran out
    token: null, // the run's token (require_run_token): from POST /runs or the page's address
    parameters: null, // what the run was started with, when known
    errorLogs: 0, // ERROR (and worse) log lines: a run that succeeded with them says so
    cancel: null, // the Cancel button's state: null, "sending", "sent"
    endedAs: null, // the status its pipeline_completed said, as soon as it arrives
    overdue: false, // pipeline_overdue came: the run is slower than usual
    stats: { received: 0, duplicates: 0, gaps: 0, connections: 0, tasks: 0, failed: 0, cancelled: 0 },
  };
}

function route() {
  const match = location.pathname.slice(base.length).match(/^\/ui\/runs\/([^/]+)\/?$/);
  if (match) openRun(decodeURIComponent(match[1]));
  else closeRun();
}

function closeRun() {
  if (!run) return;
  if (run.es) run.es.close();
  cancelAnimationFrame(run.frame);
  clearInterval(run.ticker);
  run = null;
  $("run").hidden = true;
  $("overview").hidden = false;
  $("runs").hidden = true; // the overview lists them: once on a page
  setConnection("idle", "");
  markOpenRun();
}

function openRun(runId, fresh = false) {
  closeRun();
  run = newRun(runId, fresh);
  run.token = new URLSearchParams(location.search).get("token");
  run.parameters = remembered(runId);
  window.otelstream.run = run;
  $("overview").hidden = true;
  $("runs").hidden = false; // the runs beside the open one
  $("tree").replaceChildren();
  $("axis-ticks").replaceChildren();
  $("run").hidden = false;
  $("run-name").textContent = "";
  $("run-id").textContent = runId;
  $("run-status").dataset.status = "running";
  $("run-status").textContent = "waiting";
  $("run-duration").textContent = "";
  $("run-usual").textContent = "";
  $("run-usual").hidden = true;
  $("run-counts").textContent = "";
  $("run-error").hidden = true;
  $("run-error").classList.remove("expanded");
  $("run-logged").hidden = true;
  $("cancel-button").hidden = true;
  $("cancel-button").disabled = false;
  $("cancel-result").hidden = true;
  drawParameters(run);
  $("trace-link").hidden = true;
  $("detail").hidden = true;
  showMessage("");
  markOpenRun();
  loadRunInfo(run);
  connect(run, 0);
  const current = run;
  current.ticker = setInterval(() => {
    if (current === run && !current.finished) schedule(current); // the running bars grow
  }, 250);
}

async function loadRunInfo(current) {
  try {
    const sent = Date.now();
    const { response, body } = await getJSON(runUrl(current));
    if (current !== run) return;
    if (response.status === 404) {
      notFound(current, detail(body, response));
      return;
    }
    // the server's time when it answered, halfway through the request: its server_time, or
    // the Date header (whole seconds, refreshed once a second: up to two seconds behind)
    const serverTime = Date.parse((body && body.server_time) || "");
    const dateHeader = Date.parse(response.headers.get("date") || "") + 1000;
    const serverMs = Number.isFinite(serverTime) ? serverTime : dateHeader;
    if (!current.liveSkew && Number.isFinite(serverMs)) {
      current.skewMs = serverMs - (sent + Date.now()) / 2;
    }
    const known = response.ok && body && Number.isInteger(body.last_seq);
    knowLiveAfter(current, known ? body.last_seq : current.lastSeq);
    if (response.ok && body) {
      current.info = body;
      learnUsualFromTree(current, body.tree);
      const stand = current.root && current.root.standIn ? current.root : null;
      if (stand) {
        fillStandIn(current, stand);
        current.dirty.add(stand);
        schedule(current);
      }
      if (body.trace_url) {
        const link = $("trace-link");
        link.href = body.trace_url; // an http(s) URL made by the server from its settings
        link.hidden = !/^https?:\/\//i.test(body.trace_url);
      }
      if (!$("run-name").textContent && body.name) $("run-name").textContent = body.name;
    }
  } catch (_) {
    // the stream shows the run anyway; the trace link is a nicety
    if (current === run) knowLiveAfter(current, current.lastSeq);
  }
}

function knowLiveAfter(current, seq) {
  if (current.liveAfter !== null) return;
  current.liveAfter = seq;
  for (const [sampleSeq, skew] of current.samples) clockSample(current, sampleSeq, skew);
  current.samples = [];
}

// A live event was published moments before it arrived: its timestamp, minus our clock, is
// a lower bound on the skew, and the freshest of them the closest one.
function clockSample(current, seq, skew) {
  if (current.liveAfter === null) {
    current.samples.push([seq, skew]);
  } else if (seq > current.liveAfter) {
    current.skewMs = current.liveSkew ? Math.max(current.skewMs, skew) : skew;
    current.liveSkew = true;
  }
}

function notFound(current, message) {
  current.finished = true;
  current.notFound = true; // a frame drawn after this must not say "running" again
  if (current.es) current.es.close();
  clearInterval(current.ticker);
  setConnection("closed", "");
  $("cancel-button").hidden = true;
  $("run-status").dataset.status = "unknown";
  $("run-status").textContent = "not found";
  showMessage(message);
}
