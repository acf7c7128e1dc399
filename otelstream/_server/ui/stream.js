// The run's event stream: EventSource resuming from the last seq, recovery, receiving events.
"use strict";

const MAX_RECOVERIES = 10; // manual re-opens after the browser gave up on the stream

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
