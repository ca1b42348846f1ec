// The page for `mer serve`: pick or drop a clip, upload it to POST /v1/analyze with progress,
// then show the fused answer, each modality's bars, the transcript and the timeline.
// Plain JS, no build step, no network but this server. Server text goes in via textContent only.
// Needs common.js loaded first: LABEL_ORDER, MODALITIES, $, el, pct, cardShell, watchHealth.
"use strict";

let chosenFile = null;
let busy = false;

function apiHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

// -- server status (watchHealth in common.js) ---------------------------------------------
async function loadModels() {
  try {
    const res = await fetch("/v1/models", { headers: apiHeaders() });
    if (!res.ok) return; // a missing key: the select keeps "model default"
    const info = await res.json();
    const select = $("fusion");
    select.replaceChildren(el("option", null, "model default (" + info.default_fusion + ")"));
    select.firstChild.value = "";
    for (const name of info.fusions) {
      const opt = el("option", null, name);
      opt.value = name;
      select.appendChild(opt);
    }
    if (info.analyze && info.analyze.fps_default) $("fps").placeholder = info.analyze.fps_default;
  } catch (e) { /* the page still works with the defaults */ }
}

// -- choosing a file ----------------------------------------------------------------------
function choose(file) {
  if (!file) return;
  chosenFile = file;
  const size = file.size >= 1048576 ? (file.size / 1048576).toFixed(1) + " MB"
    : Math.max(1, Math.round(file.size / 1024)) + " KB";
  $("file-name").textContent = file.name + " (" + size + ")";
  $("go").disabled = false;
  analyze();
}

function setupInput() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
  $("go").addEventListener("click", analyze);
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("mer-api-key", $("api-key").value.trim());
    loadModels();
  });
  $("api-key").value = sessionStorage.getItem("mer-api-key") || "";
}

// -- upload + analyze ---------------------------------------------------------------------
function setProgress(fraction, text, spinning) {
  $("progress").hidden = false;
  $("progress-fill").style.width = Math.round(fraction * 100) + "%";
  $("progress-text").textContent = text;
  $("spinner").hidden = !spinning;
}

function analyze() {
  if (!chosenFile || busy) return;
  busy = true;
  $("go").disabled = true;
  $("error").hidden = true;
  $("result").hidden = true;
  const form = new FormData();
  form.append("file", chosenFile, chosenFile.name);
  if ($("fusion").value) form.append("fusion", $("fusion").value);
  if ($("fps").value) form.append("fps", $("fps").value);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/analyze");
  for (const [k, v] of Object.entries(apiHeaders())) xhr.setRequestHeader(k, v);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      setProgress(e.loaded / e.total, "Uploading… " + Math.round((100 * e.loaded) / e.total) + "%", false);
    }
  };
  xhr.upload.onload = () => setProgress(1, "Analyzing…", true);
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 200 && body) render(body);
    else showError(xhr.status, body || { message: xhr.responseText || xhr.statusText });
    done();
  };
  xhr.onerror = () => {
    showError(0, { error: "network_error", message: "the upload failed (connection lost or refused)" });
    done();
  };
  setProgress(0, "Uploading… 0%", false);
  xhr.send(form);
}

function done() {
  busy = false;
  $("go").disabled = !chosenFile;
  $("progress").hidden = true;
}

const ERROR_TITLES = {
  unsupported_media_type: "Unsupported file type",
  upload_too_large: "File too large",
  unreadable_media: "Cannot read this file",
  empty_upload: "Empty file",
  unauthorized: "API key needed",
  queue_full: "Server busy",
  not_ready: "Models still loading",
  model_load_failed: "Models failed to load",
  invalid_request: "Invalid request",
  network_error: "Network error",
};

function showError(status, body) {
  const box = $("error");
  box.replaceChildren();
  const title = ERROR_TITLES[body.error] || (status ? "Request failed" : "Something went wrong");
  box.appendChild(el("strong", null, title));
  const msg = String(body.message || "");
  box.appendChild(el("span", "error-message", msg.charAt(0).toUpperCase() + msg.slice(1)));
  if (body.error || status) {
    box.appendChild(el("code", null, (body.error || "error") + (status ? " · HTTP " + status : "")));
  }
  if (status === 401) $("key-row").hidden = false;
  box.hidden = false;
}

// -- results ------------------------------------------------------------------------------
function bars(probs) {
  const wrap = el("div", "bars");
  const labels = LABEL_ORDER.filter((l) => l in probs).concat(
    Object.keys(probs).filter((l) => !LABEL_ORDER.includes(l)));
  const top = labels.reduce((a, b) => (probs[b] > probs[a] ? b : a), labels[0]);
  for (const label of labels) {
    const row = el("div", "bar" + (label === top ? " top" : ""));
    row.dataset.label = label;
    row.appendChild(el("span", "bar-name", label));
    const track = el("div", "bar-track");
    const fill = el("div", "bar-fill c-" + label);
    fill.style.width = (probs[label] * 100).toFixed(1) + "%";
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", "bar-value", pct(probs[label])));
    wrap.appendChild(row);
  }
  return wrap;
}

function card(title, view, extra, isFused) {
  const c = cardShell(title, view, isFused);
  if (view.probabilities) c.appendChild(bars(view.probabilities));
  else c.appendChild(el("div", "reason", view.reason || "no answer"));
  if (extra) c.appendChild(el("div", "card-extra", extra));
  return c;
}

function render(d) {
  $("result").hidden = false;
  const label = $("fused-label");
  label.replaceChildren();
  label.appendChild(document.createTextNode(d.label || "no answer"));
  if (d.label && d.probabilities) {
    const conf = d.confidence != null ? d.confidence : d.probabilities[d.label];
    const c = el("span", "conf", pct(conf));
    c.title = "confidence: the fused (calibrated) probability of this label";
    label.appendChild(c);
  }
  if (d.business) label.appendChild(el("span", "business", d.business.label + " (" + d.business.scheme + ")"));

  const facts = $("facts");
  facts.replaceChildren();
  const face = d.modalities.face || {};
  const rows = [
    ["file", d.path || "—"],
    ["duration", d.duration_s.toFixed(1) + " s"],
    ["fusion", d.fusion],
    ["faces found", (face.frames_with_face || 0) + " / " + (face.frames || 0) + " frames"],
  ];
  for (const [k, v] of rows) { facts.appendChild(el("dt", null, k)); facts.appendChild(el("dd", null, v)); }

  $("no-answer").hidden = !d.reason;
  $("no-answer").textContent = d.reason || "";
  $("warnings").hidden = !(d.warnings && d.warnings.length);
  $("warnings").textContent = (d.warnings || []).join(" ");
  renderExplanation(d);

  const cards = $("cards");
  cards.replaceChildren();
  cards.appendChild(card("fused", { label: d.label, probabilities: d.probabilities, reason: d.reason }, null, true));
  for (const m of MODALITIES) {
    const v = d.modalities[m];
    if (!v) continue;
    let extra = null;
    if (m === "face") extra = "faces in " + (v.frames_with_face || 0) + " of " + (v.frames || 0) + " sampled frames";
    cards.appendChild(card(m, v, extra, false));
  }

  const text = d.modalities.text || {};
  const transcript = $("transcript");
  transcript.textContent = text.transcript ? "“" + text.transcript + "”" : "(no words recognised)";
  transcript.className = "transcript" + (text.transcript ? "" : " empty");

  const timings = $("timings");
  timings.replaceChildren();
  for (const [k, v] of Object.entries(d.timings_ms || {})) {
    const item = el("span", null, k + " ");
    item.appendChild(el("b", null, Math.round(v) + " ms"));
    timings.appendChild(item);
  }

  renderTimeline(d.segments || [], d.duration_s);
}

// Shapley contributions: one signed bar per modality, from the base (no modality) to the fused
// probability of the label; a masked modality shows 0 and says why.
function renderExplanation(d) {
  const box = $("why-box");
  const ex = d.explanation;
  box.hidden = !ex;
  if (!ex) return;
  const why = $("why");
  why.replaceChildren();
  const scale = Math.max(0.05, ...Object.values(ex.contributions).map(Math.abs));
  why.appendChild(el("div", "why-base", "with no modality: " + pct(ex.base) + " " + ex.label));
  for (const m of MODALITIES) {
    const v = ex.contributions[m] || 0;
    const row = el("div", "why-row");
    row.dataset.modality = m;
    row.appendChild(el("span", "bar-name", m));
    const track = el("div", "why-track");
    const fill = el("div", "why-fill " + (v >= 0 ? "pos" : "neg"));
    fill.style.width = (50 * Math.abs(v) / scale).toFixed(1) + "%";
    track.appendChild(fill);
    row.appendChild(track);
    const view = d.modalities[m] || {};
    const txt = view.available === false ? "masked" : (v >= 0 ? "+" : "−") + (Math.abs(v) * 100).toFixed(1) + " pts";
    row.appendChild(el("span", "bar-value", txt));
    why.appendChild(row);
  }
  if (ex.words && ex.words.length) {
    why.appendChild(el("div", "why-words", "words: " + ex.words.map((w) => w.word + " " + (w.effect >= 0 ? "+" : "") + (w.effect * 100).toFixed(1)).join(", ")));
  }
  const ag = d.agreement;
  $("agreement").textContent = ag ? (ag.disagree.length ? "Experts disagree: " + ag.disagree.join(", ") + " said otherwise; " + (ag.agree.join(", ") || "none") + " agree." : "Every available expert agrees.") : "";
}

function renderTimeline(segments, duration) {
  const box = $("timeline-box");
  box.hidden = segments.length === 0;
  if (!segments.length) return;
  const line = $("timeline");
  line.replaceChildren();
  const total = duration || segments[segments.length - 1].end;
  for (const s of segments) {
    const seg = el("div", "seg c-" + s.label, s.end - s.start >= total / 12 ? s.label : "");
    seg.style.width = (100 * (s.end - s.start) / total).toFixed(2) + "%";
    seg.title = s.start.toFixed(1) + "–" + s.end.toFixed(1) + " s: " + s.label + " " + pct(s.probabilities[s.label]);
    line.appendChild(seg);
  }
  const axis = $("timeline-axis");
  axis.replaceChildren();
  const ticks = [0].concat(segments.map((s) => s.end));
  for (const x of ticks) {
    const tick = el("span", null, x.toFixed(0) + " s");
    tick.style.left = (100 * x / total).toFixed(2) + "%";
    axis.appendChild(tick);
  }
}

setupInput();
watchHealth(loadModels, showError);
