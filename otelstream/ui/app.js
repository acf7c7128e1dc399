// otelstream live page: lists pipelines, starts runs, and draws a run's span tree as it grows.
// Plain script, no dependencies, no build. Event data only ever reaches the DOM as textContent.
"use strict";

(() => {
  const base = document.querySelector('meta[name="otelstream-base"]').content;
  const $ = (id) => document.getElementById(id);
  const TICKS = 5;
  const MAX_RECOVERIES = 10; // manual re-opens after the browser gave up on the stream
  const MAX_LOG_LINES = 200; // kept per task (the newest); the count says how many there were
  const MAX_RUNS_LISTED = 50;
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
  const STATUS_TEXT = {
    running: "running",
    success: "done",
    error: "failed",
    cancelled: "cancelled",
    missed: "missed",
    waiting: "waiting",
  };

  // -- run state ------------------------------------------------------------------------------

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
      selected: null, // the node whose details the panel shows
      logsDropped: null, // the logs_dropped event, if the run's log budget ran out
      token: null, // the run's token (require_run_token): from POST /runs or the page's address
      parameters: null, // what the run was started with, when known
      errorLogs: 0, // ERROR (and worse) log lines: a run that succeeded with them says so
      cancel: null, // the Cancel button's state: null, "sending", "sent"
      endedAs: null, // the status its pipeline_completed said, as soon as it arrives
      stats: { received: 0, duplicates: 0, gaps: 0, connections: 0, tasks: 0, failed: 0, cancelled: 0 },
    };
  }

  // -- small helpers --------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatMs(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
    if (ms === 0) return "0";
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    const minutes = Math.floor(ms / 60000);
    return `${minutes} min ${((ms % 60000) / 1000).toFixed(0)} s`;
  }

  function setConnection(state, text) {
    const node = $("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  function showMessage(text) {
    const node = $("run-message");
    node.textContent = text;
    node.hidden = !text;
  }

  async function getJSON(url, init) {
    const response = await fetch(url, init);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { response, body };
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

  // The run's token travels with each request about it (GET, DELETE, its events)
  function runUrl(current, suffix = "") {
    const url = `${base}/runs/${encodeURIComponent(current.runId)}${suffix}`;
    return current.token ? `${url}?token=${encodeURIComponent(current.token)}` : url;
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

  // -- pipelines and starting a run -------------------------------------------------------------

  const forms = { schemas: new Map(), current: null }; // the parameters form of the chosen pipeline

  async function loadPipelines() {
    const box = $("pipelines");
    const empty = $("pipelines-empty");
    const listed = getJSON(`${base}/pipelines`);
    const schemas = window.otelstreamForm.loadSchemas(base);
    try {
      const { response, body } = await listed;
      if (!response.ok) throw new Error(detail(body, response));
      const pipelines = body.pipelines || [];
      empty.textContent = pipelines.length ? "" : "No pipelines are registered.";
      empty.hidden = pipelines.length > 0;
      pipelines.forEach((pipeline, index) => {
        const label = el("label", "pipeline");
        const input = el("input");
        input.type = "radio";
        input.name = "pipeline";
        input.value = pipeline.name;
        input.checked = index === 0;
        input.addEventListener("change", showForm);
        const text = el("span", "pipeline-text");
        text.append(el("span", "pipeline-name", pipeline.name));
        if (pipeline.description) {
          text.append(withCode(el("span", "pipeline-description"), pipeline.description));
        }
        label.append(input, text);
        box.append(label);
      });
      $("start-button").disabled = pipelines.length === 0;
    } catch (error) {
      empty.textContent = `Could not list the pipelines: ${error.message}`;
    }
    forms.schemas = await schemas;
    document.body.dataset.forms = forms.schemas.size ? "yes" : "no"; // for people and tests
    showForm();
  }

  // The chosen pipeline's form, when the server published its parameters; else the JSON box
  function showForm() {
    const chosen = document.querySelector('input[name="pipeline"]:checked');
    const model = chosen ? forms.schemas.get(chosen.value) : null;
    const raw = $("params-raw");
    forms.current = model ? window.otelstreamForm.build($("param-form"), model) : null;
    raw.disabled = !model;
    raw.checked = !model || raw.checked;
    if (forms.current) $("parameters").value = JSON.stringify(forms.current.values(), null, 1);
    showRaw();
  }

  // "as JSON" moves what is in the form into the box, and back
  function toggleRaw() {
    const form = forms.current;
    const error = $("form-error");
    error.hidden = true;
    try {
      if (form && $("params-raw").checked) {
        $("parameters").value = JSON.stringify(form.values(), null, 1);
      } else if (form) {
        form.fill(readJson());
      }
    } catch (problem) {
      $("params-raw").checked = !$("params-raw").checked;
      error.textContent = `Parameters: ${problem.message}`;
      error.hidden = false;
    }
    showRaw();
  }

  function showRaw() {
    const raw = $("params-raw").checked || !forms.current;
    $("raw-box").hidden = !raw;
    $("param-form").hidden = raw;
  }

  function readJson() {
    const parameters = JSON.parse($("parameters").value.trim() || "{}");
    if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
      throw new Error("the parameters must be a JSON object");
    }
    return parameters;
  }

  async function startRun(event) {
    event.preventDefault();
    const formError = $("form-error");
    formError.hidden = true;
    const chosen = document.querySelector('input[name="pipeline"]:checked');
    if (!chosen) return;
    const form = $("params-raw").checked ? null : forms.current;
    let parameters;
    try {
      parameters = form ? form.values() : readJson();
    } catch (error) {
      formError.textContent = `Parameters: ${error.message}`;
      formError.hidden = false;
      return;
    }
    if (form) form.flag([]);
    const button = $("start-button");
    button.disabled = true;
    try {
      const { response, body } = await getJSON(`${base}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pipeline_name: chosen.value, parameters }),
      });
      if (response.status === 422 && form && body && Array.isArray(body.detail)) {
        form.flag(
          body.detail
            .map((item) => [validationLoc(item), item.msg])
            .filter(([loc]) => loc[0] === "parameters" && loc.length > 1)
            .map(([loc, msg]) => [String(loc[1]), String(msg)]),
        );
      }
      if (response.status !== 202) throw new Error(detail(body, response));
      const token = typeof body.token === "string" ? body.token : null;
      remember(body.run_id, parameters);
      const query = token ? `?token=${encodeURIComponent(token)}` : "";
      history.pushState(null, "", `${base}/ui/runs/${encodeURIComponent(body.run_id)}${query}`);
      openRun(body.run_id, true);
    } catch (error) {
      formError.textContent = `The run did not start: ${error.message}`;
      formError.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  // The parameters this page started a run with, for its header (a reload keeps them)
  function remember(runId, parameters) {
    try {
      sessionStorage.setItem(`otelstream.parameters.${runId}`, JSON.stringify(parameters));
    } catch (_) {
      // storage is full or off: the header goes without them
    }
  }

  function remembered(runId) {
    try {
      const text = sessionStorage.getItem(`otelstream.parameters.${runId}`);
      return text === null ? null : JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  // -- opening a run and its stream -----------------------------------------------------------

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
    $("tree").replaceChildren();
    $("axis-ticks").replaceChildren();
    $("run").hidden = false;
    $("run-name").textContent = "";
    $("run-id").textContent = runId;
    $("run-status").dataset.status = "running";
    $("run-status").textContent = "waiting";
    $("run-duration").textContent = "";
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

  function connect(current, after) {
    const url = new URL(runUrl(current, "/events"), location.href);
    if (after > 0) url.searchParams.set("last_event_id", String(after));
    const es = new EventSource(url.pathname + url.search);
    current.es = es;
    current.stats.connections += 1;
    es.onopen = () => {
      if (current !== run) return;
      current.recoveries = 0;
      setConnection("live", "live");
    };
    es.onmessage = (message) => receive(current, message);
    es.onerror = () => {
      if (current !== run || current.finished) return;
      if (es.readyState === EventSource.CONNECTING) {
        // the browser reconnects by itself and sends Last-Event-ID
        setConnection("reconnecting", "reconnecting…");
      } else {
        recover(current);
      }
    };
  }

  // The browser gave up (an error status, or 204): ask the run what is left before trying again,
  // so a finished run is never polled in a loop.
  async function recover(current) {
    if (current.es) current.es.close();
    setConnection("reconnecting", "reconnecting…");
    let info = null;
    try {
      info = await getJSON(runUrl(current));
    } catch (_) {
      info = null;
    }
    if (current !== run || current.finished) return;
    if (info && info.response.status === 404) {
      notFound(current, detail(info.body, info.response));
      return;
    }
    if (info && info.response.status === 503) {
      // the server cannot reach its hub (Redis down) or is full: wait as it says, keep trying
      const wait = Number(info.response.headers.get("retry-after")) || 2;
      setTimeout(() => {
        if (current === run && !current.finished) connect(current, current.lastSeq);
      }, wait * 1000);
      return;
    }
    if (info && info.body && info.body.status !== "running" && current.lastSeq >= info.body.last_seq) {
      setConnection("closed", "");
      return;
    }
    current.recoveries += 1;
    if (current.recoveries > MAX_RECOVERIES) {
      setConnection("closed", "disconnected");
      showMessage("The connection to the server was lost; reload the page to try again.");
      return;
    }
    const delay = Math.min(30000, 500 * 2 ** (current.recoveries - 1));
    setTimeout(() => {
      if (current === run && !current.finished) connect(current, current.lastSeq);
    }, delay);
  }

  function receive(current, message) {
    if (current !== run) return;
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    current.stats.received += 1;
    if (typeof event.seq === "number") {
      if (event.seq <= current.lastSeq) {
        current.stats.duplicates += 1; // already drawn: a resumed stream may repeat events
        return;
      }
      if (event.seq !== current.lastSeq + 1) current.stats.gaps += 1;
      if (current.lastSeq === 0 && event.seq > 1) {
        current.firstSeq = event.seq; // the run's first events are gone from the replay buffer
        missedMessage(current);
      }
      current.lastSeq = event.seq;
    } else if (event.type === "stream_overflow") {
      // the server cut us off for falling behind; the browser resumes from the last id
      setConnection("reconnecting", "catching up…");
      return;
    }
    const at = Date.parse(event.timestamp);
    if (Number.isFinite(at) && typeof event.seq === "number") {
      clockSample(current, event.seq, at - Date.now());
    }
    if (event.type === "pipeline_completed") {
      // the run is over: stop the stream now, not after the next (204) reconnect
      current.finished = true;
      current.endedAs = event.status;
      if (current.cancel === "sent" && event.status === "cancelled") {
        $("cancel-result").textContent = "Cancelled.";
      }
      current.es.close();
      clearInterval(current.ticker);
      setConnection("closed", "");
    }
    current.queue.push(event);
    schedule(current);
  }

  // -- drawing: events are applied in batches, once per animation frame -------------------------

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
      node = {
        spanId: event.span_id,
        parentId: event.parent_span_id,
        name: event.name,
        depth: 0,
        status: "running",
        startMs: null,
        endMs: null,
        durationMs: null,
        error: null,
        errorType: null,
        ...inside(),
        dom: null,
      };
      current.nodes.set(event.span_id, node);
      attach(current, node);
      if (node !== current.root) current.stats.tasks += 1;
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

  function standIn(name, status, isRoot) {
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
      ...inside(),
      dom: null,
      standIn: isRoot,
    };
  }

  // The run's name and start, from GET /runs/{id}, until its pipeline_completed arrives
  function fillStandIn(current, stand) {
    if (!current.info) return;
    if (current.info.name) stand.name = current.info.name;
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
    label.append(name, service, status, duration);
    const lane = el("div", "lane");
    const bar = el("div", "bar");
    lane.append(bar);
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
      box, row, name, service, status, duration, bar, error, children,
      progress, fill, progressText, logs, logsSummary, logLines,
    };
  }

  function logLine(entry) {
    const line = el("li", "log");
    line.dataset.level = entry.level;
    line.append(
      el("span", "log-time", entry.time),
      el("span", "log-level", entry.level),
      el("span", "log-message clip", entry.message),
    );
    if (entry.logger) line.title = entry.logger;
    return line;
  }

  function clockTime(timestamp) {
    const at = new Date(timestamp);
    if (!Number.isFinite(at.getTime())) return "";
    return at.toISOString().slice(11, 23); // UTC, as the server writes its times
  }

  function apply(current, event) {
    if (event.type === "task_log" || event.type === "task_progress") {
      applyInside(current, event);
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
    dom.bar.style.setProperty("--start", String(Math.max(0, (node.startMs ?? origin) - origin)));
    if (node.status !== "running") {
      const length = node.durationMs ?? Math.max(0, (node.endMs ?? origin) - (node.startMs ?? origin));
      dom.bar.style.setProperty("--length", String(length));
    }
    const failure = shownFailure(current, node);
    if (dom.error.textContent !== (failure ?? "")) dom.error.textContent = failure ?? "";
    dom.error.hidden = failure === null;
  }

  function failureText(node) {
    if (node.error === null && node.errorType === null) return null;
    return node.errorType ? `${node.errorType}: ${node.error ?? ""}` : String(node.error);
  }

  // A failure shows on the row that raised it: not on its parents, which the same exception
  // went through, and not for a cancelled task (its status says it)
  function shownFailure(current, node) {
    const failure = failureText(node);
    if (failure === null || node.status === "cancelled") return null;
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
    if (item) item.dataset.logged = current.errorLogs ? "yes" : "no";
    if (current.startMs === null) return;
    let total;
    if (current.finished && current.endMs !== null) {
      total = root && root.durationMs !== null ? root.durationMs : current.endMs - current.startMs;
    } else {
      const serverNow = Date.now() + (Number.isFinite(current.skewMs) ? current.skewMs : 0);
      total = Math.max(current.maxSeenMs ?? current.startMs, serverNow) - current.startMs;
    }
    total = Math.max(total, 1);
    $("tree").style.setProperty("--total", String(total));
    $("run-duration").textContent = formatMs(total);
    const counts = [`${current.stats.tasks} task${current.stats.tasks === 1 ? "" : "s"}`];
    if (current.stats.failed) counts.push(`${current.stats.failed} failed`);
    if (current.stats.cancelled) counts.push(`${current.stats.cancelled} cancelled`);
    $("run-counts").textContent = counts.join(", ");
    const error = $("run-error");
    const failure = root && root.status === "error" ? failureText(root) : null;
    if (failure !== null && error.textContent !== failure) error.textContent = failure;
    error.hidden = failure === null;
    drawAxis(total);
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

  // -- the run's header: its parameters, and the Cancel button ----------------------------------

  function drawParameters(current) {
    const list = $("run-params");
    const parameters = current.parameters;
    const entries = parameters && typeof parameters === "object" ? Object.entries(parameters) : [];
    list.replaceChildren();
    for (const [key, value] of entries) {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      const dd = el("dd", "clip", text);
      dd.title = text;
      list.append(el("dt", "", key), dd);
    }
    list.hidden = parameters === null;
    if (parameters !== null && !entries.length) list.append(el("dd", "muted", "no parameters"));
  }

  // DELETE /runs/{id} (with the run's token): the run stops at its next span or check, and its
  // pipeline_completed says cancelled; what the server answered shows under the header
  async function cancelRun() {
    const current = run;
    if (!current || current.finished) return;
    const button = $("cancel-button");
    const result = $("cancel-result");
    button.disabled = true;
    current.cancel = "sending";
    let text;
    try {
      const { response, body } = await getJSON(runUrl(current), { method: "DELETE" });
      if (response.status === 202) {
        current.cancel = "sent";
        text = current.endedAs === "cancelled"
          ? "Cancelled." // it ended before the answer came
          : "Cancel requested: the run stops at its next task or check.";
      } else {
        current.cancel = null;
        button.disabled = false;
        text = `Not cancelled: ${detail(body, response)}`;
      }
    } catch (error) {
      current.cancel = null;
      button.disabled = false;
      text = `Not cancelled: ${error.message}`;
    }
    if (current !== run) return;
    result.textContent = text;
    result.hidden = false;
  }

  // A clipped line (an error, a log line, a parameter) shows whole on a click, and back
  function toggleClip(event) {
    const line = event.target.closest(".clip");
    if (!line || window.getSelection().toString()) return; // selecting text is not a click
    line.classList.toggle("expanded");
  }

  // -- the detail panel of a clicked task --------------------------------------------------------

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
      timing.push(["after the run's start", formatMs(node.startMs - current.startMs)]);
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
    $("detail-no-logs").hidden = node.logs.length > 0;
  }

  // -- the live list of runs: GET /runs/live replays the runs the server keeps, then goes on ------

  const runsList = new Map(); // run id -> its list item

  function connectRuns() {
    const es = new EventSource(`${base}/runs/live`);
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
      if (es.readyState === EventSource.CLOSED) $("runs-empty").textContent = "The runs list is not available.";
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
    status.dataset.status = summary.status;
    status.textContent = STATUS_TEXT[summary.status] || summary.status;
    item.startedMs = Date.parse(summary.started_at);
    item.durationMs = typeof summary.duration_ms === "number" ? summary.duration_ms : null;
    time.textContent = clockTime(summary.started_at).slice(0, 8); // to the second: room for the id
    id.textContent = shortId(summary.run_id);
    id.title = summary.run_id;
    item.dataset.status = summary.status;
    if (run && run.runId === summary.run_id) item.dataset.logged = run.errorLogs ? "yes" : "no";
    const cells = item.overview.cells;
    cells.name.textContent = name.textContent;
    cells.status.dataset.status = summary.status;
    cells.status.textContent = status.textContent;
    cells.started.textContent = time.textContent;
    cells.error.textContent = summary.status === "cancelled" ? "" : summary.error_type || "";
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
    row.append(first, cells.id, status, cells.started, cells.took, cells.error);
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

  function formatAge(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    if (seconds < 60) return `${seconds} s`;
    return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
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

  // -- start ------------------------------------------------------------------------------------

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
})();
