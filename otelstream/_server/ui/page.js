// Shared ground: the base path, DOM lookups, elements made with text only, the API's JSON.
"use strict";

const base = document.querySelector('meta[name="otelstream-base"]').content;
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
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

// The run's token travels with each request about it (GET, DELETE, its events)
function runUrl(current, suffix = "") {
  const url = `${base}/runs/${encodeURIComponent(current.runId)}${suffix}`;
  return current.token ? `${url}?token=${encodeURIComponent(current.token)}` : url;
}
