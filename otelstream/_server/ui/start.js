// Pipelines and starting a run: the list, the chosen pipeline's parameters form, POST /runs.
"use strict";

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
      const usual = pipelineUsual(pipeline);
      if (usual) text.append(usual);
      label.append(input, text);
      box.append(label);
    });
    $("start-button").disabled = pipelines.length === 0;
    for (const item of runsList.values()) drawListedUsual(item, item.pipelineName);
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
      const field = (item) => {
        const loc = validationLoc(item);
        return loc[0] === "parameters" && loc.length > 1 ? String(loc[1]) : null;
      };
      const placed = form.flag(
        body.detail.filter((item) => field(item) !== null).map((item) => [field(item), String(item.msg)]),
      );
      // each error is said once: under its field, or here when it has no field of its own
      const rest = body.detail.filter((item) => !placed.has(field(item)));
      if (placed.size && !rest.length) {
        const what = placed.size === 1 ? "a parameter is not valid (see its field)" : `${placed.size} parameters are not valid (see their fields)`;
        throw new Error(what);
      }
      if (placed.size) throw new Error(rest.map(validationError).join("; "));
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
