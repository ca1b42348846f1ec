// The call panel: upload a call to POST /v1/calls, poll GET /v1/calls/{id} for progress, then
// show the call's HTML report (GET /v1/calls/{id}?format=html, fetched with the API key and put
// in a sandboxed iframe: the report has no script and may run none). Server text goes in via
// textContent only. Uses apiHeaders() from app.js.
"use strict";

const callState = { id: null, timer: null };

function callEl(id) { return document.getElementById(id); }

function callStatus(text) { callEl("call-status").textContent = text; }

function callError(body) {
  const box = callEl("call-error");
  box.hidden = !body;
  box.textContent = body ? (body.error || "error") + ": " + (body.message || "") : "";
}

async function submitCall() {
  const file = callEl("call-file").files[0];
  if (!file) return;
  callError(null);
  callEl("call-report").hidden = true;
  const form = new FormData();
  const side = callEl("call-agent-channel").value;
  if (side) form.append("agent_channel", side);
  form.append("transcript", callEl("call-transcript").checked ? "true" : "false");
  form.append("file", file);
  callEl("call-go").disabled = true;
  callStatus("Uploading " + file.name + "…");
  try {
    const res = await fetch("/v1/calls", { method: "POST", headers: apiHeaders(), body: form });
    const body = await res.json();
    if (res.status !== 202) { callError(body); callStatus(""); return; }
    callState.id = body.id;
    callEl("call-delete").hidden = false;
    pollCall();
  } catch (e) {
    callError({ error: "network_error", message: "the upload failed" });
  } finally {
    callEl("call-go").disabled = false;
  }
}

async function pollCall() {
  if (!callState.id) return;
  const res = await fetch("/v1/calls/" + callState.id, { headers: apiHeaders(), cache: "no-store" });
  const body = await res.json();
  if (!res.ok) { callError(body); callStatus(""); return; }
  const p = body.progress || {};
  if (body.status === "queued") callStatus("Waiting for the worker…");
  if (body.status === "running") {
    callStatus(p.turns_total ? "Analyzing: turn " + p.turns_done + " of " + p.turns_total
      : "Finding the turns…" + (p.duration ? " " + Math.round(100 * p.seconds_done / p.duration)
        + "%" : ""));
  }
  if (body.status === "failed") { callError(body.error); callStatus("Failed."); return; }
  if (body.status === "done") { showReport(body); return; }
  callState.timer = setTimeout(pollCall, 1000);
}

async function showReport(body) {
  const r = body.result || {};
  const s = (r.summary || {}).sentiment || {};
  callStatus("Done: " + (r.turns || []).length + " turns, " + ((r.summary || {}).escalations || 0)
    + " escalation(s), customer sentiment " + (s.score === null || s.score === undefined
      ? "–" : s.score.toFixed(2)) + ".");
  const res = await fetch("/v1/calls/" + callState.id + "?format=html", { headers: apiHeaders() });
  if (!res.ok) { callError(await res.json()); return; }
  const frame = callEl("call-report");
  frame.srcdoc = await res.text();
  frame.hidden = false;
}

async function deleteCall() {
  if (!callState.id) return;
  clearTimeout(callState.timer);
  const res = await fetch("/v1/calls/" + callState.id, { method: "DELETE", headers: apiHeaders() });
  callState.id = null;
  callEl("call-delete").hidden = true;
  callEl("call-report").hidden = true;
  callEl("call-report").srcdoc = "";
  callStatus(res.ok ? "Deleted: the server kept nothing of this call." : "");
}

callEl("call-file").addEventListener("change", () => {
  callEl("call-go").disabled = !callEl("call-file").files.length;
});
callEl("call-go").addEventListener("click", submitCall);
callEl("call-delete").addEventListener("click", deleteCall);
