// The live page: camera and microphone through getUserMedia, streamed to WS /v1/stream, the
// current label with each modality's bars and a scrolling timeline of windows.
// Plain JS, no build step. Server text goes in via textContent only.
//
// The /v1/stream protocol (the server's serving/stream.py says the same):
//   client -> server, text:   {"type": "start", "key"?, "window_s"?, "hop_s"?, "fps"?, "fusion"?}
//                             first (optional); {"type": "stop"} to end (results of the tail
//                             come, then {"type": "end"} and a normal close)
//   client -> server, binary: byte 0 kind (1 = audio, 2 = video frame), bytes 1-8 the capture
//                             time in seconds as a little-endian float64 (one clock for audio
//                             and frames), then the payload: 16 kHz mono PCM16 little-endian
//                             (at most 2 s a message) or one JPEG (at most 1 MB)
//   server -> client, text:   {"type": "ready", window_s, hop_s, fps, fusion, labels} after the
//                             first message; {"type": "result", start, end, label,
//                             probabilities, confidence, modalities, lag_ms, dropped} per window;
//                             {"type": "error", error, message} before a close
//   close codes: 1000 after stop; 4400 bad message; 4401 API key; 4408 idle; 4413 too large or
//                too long; 4429 too many streams (MER_MAX_STREAMS); 4503 models not ready
//
// Needs common.js loaded first: LABEL_ORDER, MODALITIES, $, el, pct, cardShell, watchHealth.
"use strict";

const KIND_AUDIO = 1, KIND_FRAME = 2;
const FRAME_FPS = 2;          // JPEG frames sent per second
const FRAME_W = 320, FRAME_H = 240;
const TIMELINE_MAX = 30;      // windows kept on the scrolling timeline

let ws = null, media = null, audioCtx = null, frameTimer = null, clockStart = 0;
let audioOffset = null;       // capture time of the first 16 kHz sample, on the page's clock
let results = 0, bytesSent = 0;

function now() { return (performance.now() - clockStart) / 1000; }

// one binary message: kind, float64 LE capture time, payload
function packet(kind, t, payload) {
  const bytes = new Uint8Array(9 + payload.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, kind);
  view.setFloat64(1, t, true);
  bytes.set(new Uint8Array(payload), 9);
  return bytes.buffer;
}

function send(buf) {
  if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4 << 20) {
    ws.send(buf);
    bytesSent += buf.byteLength;
  }
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
}

// -- capture ------------------------------------------------------------------------------
async function start() {
  $("error").hidden = true;
  $("start").disabled = true;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false },
      video: { width: FRAME_W, height: FRAME_H },
    });
  } catch (e) {
    showError("No camera or microphone: " + e.message);
    $("start").disabled = false;
    return;
  }
  $("preview").srcObject = media;
  clockStart = performance.now();
  audioOffset = null;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/v1/stream");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    const key = $("api-key").value.trim();
    // the key goes in the first message rather than the URL, which servers often log
    ws.send(JSON.stringify({ type: "start", fps: FRAME_FPS, ...(key ? { key } : {}) }));
    startAudio();
    startFrames();
    $("stop").disabled = false;
  };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (ev.code !== 1000) showError("Stream closed (" + ev.code + "): " + (ev.reason || "connection lost"));
    teardown();
  };
}

async function startAudio() {
  if (media.getAudioTracks().length === 0) return;
  // Ask for a 16 kHz context (the browser resamples the microphone); the worklet resamples
  // again if the browser kept its own rate.
  try {
    audioCtx = new AudioContext({ sampleRate: 16000 });
  } catch (e) {
    audioCtx = new AudioContext();
  }
  await audioCtx.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = audioCtx.createMediaStreamSource(media);
  const node = new AudioWorkletNode(audioCtx, "pcm16-downsampler");
  node.port.onmessage = (ev) => {
    const { pcm, first } = ev.data;
    const n = pcm.byteLength / 2;
    if (audioOffset === null) audioOffset = Math.max(0, now() - n / 16000);
    send(packet(KIND_AUDIO, audioOffset + first / 16000, pcm));
  };
  source.connect(node);
  // the worklet must be pulled by the graph; a muted gain keeps the speakers silent
  const mute = audioCtx.createGain();
  mute.gain.value = 0;
  node.connect(mute).connect(audioCtx.destination);
}

function startFrames() {
  if (media.getVideoTracks().length === 0) return;
  const canvas = $("grab"), video = $("preview");
  canvas.width = FRAME_W;
  canvas.height = FRAME_H;
  const ctx = canvas.getContext("2d");
  frameTimer = setInterval(() => {
    if (video.readyState < 2) return;
    const t = now();
    ctx.drawImage(video, 0, 0, FRAME_W, FRAME_H);
    canvas.toBlob(async (blob) => {
      if (blob) send(packet(KIND_FRAME, t, await blob.arrayBuffer()));
    }, "image/jpeg", 0.75);
    $("sending").textContent = "sending " + (bytesSent / 1024).toFixed(0) + " KB";
  }, 1000 / FRAME_FPS);
}

function stop() {
  $("stop").disabled = true;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  stopCapture();
}

function stopCapture() {
  if (frameTimer) clearInterval(frameTimer);
  frameTimer = null;
  if (audioCtx) audioCtx.close();
  audioCtx = null;
  if (media) media.getTracks().forEach((tr) => tr.stop());
  media = null;
}

function teardown() {
  stopCapture();
  ws = null;
  $("stop").disabled = true;
  $("start").disabled = false;
}

// -- results ------------------------------------------------------------------------------
function onMessage(msg) {
  if (msg.type === "ready") {
    $("status").textContent = "live: " + msg.window_s + " s windows every " + msg.hop_s + " s";
  } else if (msg.type === "result") {
    results += 1;
    showResult(msg);
  } else if (msg.type === "error") {
    showError(msg.error + ": " + msg.message);
  } else if (msg.type === "end") {
    $("status").textContent = "stopped: " + msg.stats.analyzed + " windows analyzed";
  }
}

function showResult(r) {
  const label = $("live-label");
  label.replaceChildren(el("span", null, r.label || "no answer"));
  if (r.confidence !== null && r.confidence !== undefined) label.appendChild(el("span", "conf", pct(r.confidence)));
  const facts = $("live-facts");
  facts.replaceChildren();
  for (const [k, v] of [["window", r.start.toFixed(1) + "–" + r.end.toFixed(1) + " s"],
                        ["lag", Math.round(r.lag_ms) + " ms"], ["frames", String(r.frames)],
                        ["windows", String(results)]]) {
    facts.appendChild(el("dt", null, k));
    facts.appendChild(el("dd", null, v));
  }
  const dropped = $("dropped");
  const d = r.dropped || {};
  dropped.hidden = !(d.frames || d.windows);
  dropped.textContent = "falling behind: " + (d.frames ? d.frames + " frames not analyzed " : "") +
    (d.windows ? d.windows + " windows skipped" : "");
  const cards = $("cards");
  cards.replaceChildren(card("fused", { label: r.label, probabilities: r.probabilities, reason: r.reason || r.error }, true));
  for (const m of MODALITIES) cards.appendChild(card(m, r.modalities[m] || { available: false }, false));
  const line = $("live-timeline");
  const seg = el("div", "seg c-" + (r.label || "none"), r.label ? r.label.slice(0, 3) : "–");
  seg.title = r.start.toFixed(1) + "–" + r.end.toFixed(1) + " s: " + (r.label || "no answer") +
    (r.confidence ? " " + pct(r.confidence) : "");
  line.appendChild(seg);
  while (line.children.length > TIMELINE_MAX) line.removeChild(line.firstChild);
}

function card(title, view, isFused) {
  const c = cardShell(title, view, isFused);
  if (view.probabilities) {
    const top = LABEL_ORDER.reduce((a, b) => (view.probabilities[a] >= view.probabilities[b] ? a : b));
    for (const name of LABEL_ORDER) {
      const row = el("div", "bar" + (name === top ? " top" : ""));
      row.appendChild(el("span", "bar-name", name));
      const track = el("div", "bar-track");
      const fill = el("div", "bar-fill c-" + name);
      fill.style.width = (100 * (view.probabilities[name] || 0)).toFixed(1) + "%";
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el("span", "bar-value", pct(view.probabilities[name] || 0)));
      c.appendChild(row);
    }
  } else if (view.reason) {
    c.appendChild(el("div", "reason", view.reason));
  }
  return c;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
// the models may still be loading: Start waits for them (a load failure keeps it disabled)
watchHealth(() => { $("start").disabled = false; });
