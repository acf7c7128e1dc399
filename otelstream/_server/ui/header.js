// The run's header: the parameters it was started with, and the Cancel button (DELETE /runs/{id}).
"use strict";

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
