// What both pages (index.html with app.js, live.html with live.js) share, loaded before them as
// a classic script so its names are globals: the label order, DOM helpers, a result card's head and the /healthz watch
// that drives the status pill and the API key row. One copy, so the two pages cannot drift.
// Plain JS, no build step. Server text goes in via textContent only.
"use strict";

const LABEL_ORDER = ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"];
const MODALITIES = ["audio", "text", "face"];
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function pct(p) {
  return (p * 100).toFixed(p < 0.1 ? 1 : 0) + "%";
}

// A result card (one per modality, and the fused one) with its title and label; each page
// draws the bars or the reason below the head in its own way.
function cardShell(title, view, isFused) {
  const c = el("div", "card" + (isFused ? " fused" : "") + (view.available === false ? " missing" : ""));
  c.dataset.modality = title;
  const head = el("div", "card-head");
  head.appendChild(el("span", "card-title", title));
  head.appendChild(el("span", "card-label", view.label || "not available"));
  c.appendChild(head);
  return c;
}

// Poll GET /healthz every second until the models are ready, keeping the status pill and the
// key row (shown when the server needs a key) up to date. onReady() runs once, when ready.
// A load failure is final for the server: with onFailed(status, body) the page is told and the
// polling stops; without it the pill says so and the polling goes on.
async function watchHealth(onReady, onFailed) {
  const pill = $("status");
  try {
    const res = await fetch("/healthz", { cache: "no-store" });
    const body = await res.json();
    $("key-row").hidden = !body.auth_required;
    if (res.ok) {
      pill.textContent = "models ready";
      pill.className = "pill pill-ok";
      onReady();
      return;
    }
    const loading = body.error === "not_ready";
    pill.textContent = loading ? "loading models…" : "models failed to load";
    pill.className = loading ? "pill pill-wait" : "pill pill-bad";
    if (!loading && onFailed) { onFailed(res.status, body); return; }
  } catch (e) {
    pill.textContent = "server unreachable";
    pill.className = "pill pill-bad";
  }
  setTimeout(() => watchHealth(onReady, onFailed), 1000);
}
