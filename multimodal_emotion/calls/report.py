"""A call's result as a page a person reads and a table a spreadsheet reads.

:func:`html_report` writes one self-contained HTML page (inline CSS and SVG, no script, no
request to anywhere): a timeline per speaker coloured by each turn's emotion, the escalation and
recovery events drawn across it, the per-speaker numbers, and the transcript with each turn's
label. :func:`csv_rows` gives one row per turn. Both read only the ``mer call --json`` object,
so the API renders a stored result without the media. Every piece of text from the call is
escaped.
"""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any, Mapping

from ..labels import LABELS

COLORS = {"neutral": "#9aa5b1", "happy": "#f2b705", "sad": "#3f7cc4", "angry": "#d64541",
          "fearful": "#8e44ad", "disgust": "#4d8b31", "surprised": "#f07f2e", None: "#e3e7eb"}
EVENT_COLORS = {"escalation": "#d64541", "recovery": "#2e9d5b"}
WIDTH, LEFT, RIGHT, ROW, GAP = 960, 170, 24, 26, 8


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tick_step(duration: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration / step <= 12:
            return float(step)
    return 7200.0


def timeline_svg(result: Mapping[str, Any]) -> str:
    """One row per speaker, a bar per turn in its label's colour, events as bands."""
    speakers = [s["id"] for s in result["speakers"]]
    roles = {s["id"]: s.get("role", "") for s in result["speakers"]}
    duration = max(float(result.get("duration") or 0.0), 1e-6)
    span = WIDTH - LEFT - RIGHT
    x = (lambda t: LEFT + span * min(max(t, 0.0), duration) / duration)
    height = len(speakers) * (ROW + GAP) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
             f'width="100%" role="img" aria-label="emotion timeline per speaker">']
    for ev in result.get("events", []):
        color = EVENT_COLORS.get(ev["type"], "#888")
        parts.append(f'<rect x="{x(ev["start"]):.1f}" y="0" width="'
                     f'{max(1.0, x(ev["end"]) - x(ev["start"])):.1f}" height="{height - 22}" '
                     f'fill="{color}" opacity="0.12"><title>{escape(ev["type"])} '
                     f'{_clock(ev["start"])}-{_clock(ev["end"])}</title></rect>')
    for i, s in enumerate(speakers):
        y = 6 + i * (ROW + GAP)
        name = str(s) if len(str(s)) <= 14 else str(s)[:13] + "…"
        parts.append(f'<text x="4" y="{y + ROW * 0.68:.1f}" font-size="12">'
                     f'<title>{escape(str(s))}</title>{escape(name)} '
                     f'({escape(str(roles[s]))})</text>')
        parts.append(f'<rect x="{LEFT}" y="{y}" width="{span}" height="{ROW}" fill="#f6f7f9"/>')
        for t in result["turns"]:
            if t["speaker"] != s:
                continue
            label = t.get("label")
            conf = t.get("confidence")
            tip = f'{_clock(t["start"])}-{_clock(t["end"])} {label or "no answer"}' + \
                (f" {conf:.2f}" if conf is not None else "")
            parts.append(f'<rect x="{x(t["start"]):.1f}" y="{y}" width="'
                         f'{max(0.8, x(t["end"]) - x(t["start"])):.1f}" height="{ROW}" '
                         f'fill="{COLORS.get(label, "#777")}"><title>{escape(tip)}</title>'
                         f'</rect>')
    axis_y = len(speakers) * (ROW + GAP) + 14
    step = _tick_step(duration)
    t = 0.0
    while t <= duration + 1e-9:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{axis_y - 8}" y2="{axis_y - 4}"'
                     f' stroke="#666"/><text x="{x(t):.1f}" y="{axis_y + 8}" font-size="11" '
                     f'text-anchor="middle">{_clock(t)}</text>')
        t += step
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1d2329;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #e3e7eb;
text-align:left;vertical-align:top}th{font-weight:600;background:#f6f7f9}
.chip{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.legend span{margin-right:10px;font-size:12px}.muted{color:#66707a}.num{text-align:right}
"""


def _chip(label: str | None) -> str:
    return (f'<span class="chip" style="background:{COLORS.get(label, "#777")}">'
            f'{escape(label or "none")}</span>')


def html_report(result: Mapping[str, Any], title: str | None = None) -> str:
    """The call as one HTML page (see the module docstring)."""
    summary = result.get("summary", {})
    sent = summary.get("sentiment", {})
    name = title or result.get("path") or "call"
    fmt = (lambda v, p=2: "—" if v is None else f"{v:+.{p}f}")
    head = [f"<h1>Call report: {escape(str(name))}</h1>",
            f'<p class="muted">{_clock(float(result.get("duration") or 0))} long &middot; '
            f'{len(result.get("turns", []))} turns &middot; customer sentiment score '
            f'{fmt(sent.get("score"))} (trend {fmt(sent.get("trend"))}, start '
            f'{fmt(sent.get("start"))}, end {fmt(sent.get("end"))}) &middot; '
            f'{summary.get("escalations", 0)} escalation(s)</p>']
    sat = summary.get("satisfaction")
    if sat:
        cv = sat.get("model", {})
        head.append(f'<p>Satisfaction (your fitted model, cross-validated AUC '
                    f'{fmt(cv.get("cv_auc"))} on {cv.get("n_calls")} calls): '
                    f'<b>{escape(str(sat["label"]))}</b>, p = {sat["probability"]:.2f}</p>')
    legend = '<p class="legend">' + "".join(
        f'<span><span class="chip" style="background:{COLORS[k]}">&nbsp;</span> {k}</span>'
        for k in LABELS) + "".join(
        f'<span><span class="chip" style="background:{c};opacity:.35">&nbsp;</span> {k}</span>'
        for k, c in EVENT_COLORS.items()) + "</p>"
    rows = []
    for s in result.get("speakers", []):
        st = summary.get("speakers", {}).get(s["id"], {})
        shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(
            st.get("shares", {}).items(), key=lambda kv: -kv[1])[:4])
        rows.append(f"<tr><td>{escape(str(s['id']))}</td><td>{escape(str(s.get('role')))}</td>"
                    f"<td class=num>{_clock(s.get('talk_time', 0))}</td>"
                    f"<td class=num>{st.get('overtalk_s', 0):.1f} s</td>"
                    f"<td class=num>{st.get('interruptions', 0)}</td>"
                    f"<td class=num>{st.get('interrupted', 0)}</td><td>{escape(shares)}</td></tr>")
    speakers = ("<table><tr><th>Speaker</th><th>Role</th><th>Talk</th><th>Overtalk</th>"
                "<th>Interrupts</th><th>Interrupted</th><th>Emotions (share of talk)</th></tr>"
                + "".join(rows) + "</table>"
                f'<p class="muted">Silence {summary.get("silence_s", 0):.1f} s (longest '
                f'{summary.get("longest_silence_s", 0):.1f} s); overtalk '
                f'{summary.get("overtalk_s", 0):.1f} s.</p>')
    events = "".join(
        f"<tr><td>{escape(e['type'])}</td><td>{escape(str(e['speaker']))}</td>"
        f"<td>{_clock(e['start'])}–{_clock(e['end'])}</td><td>{escape(_event_note(e))}</td></tr>"
        for e in result.get("events", []))
    events = ("<table><tr><th>Event</th><th>Speaker</th><th>When</th><th></th></tr>" + events +
              "</table>") if events else '<p class="muted">No escalation.</p>'
    lines = []
    for t in result.get("turns", []):
        words = t.get("transcript")
        words = '<span class="muted">(transcript not kept)</span>' if words is None else \
            escape(words) or '<span class="muted">(no words)</span>'
        conf = t.get("confidence")
        business = (t.get("business") or {}).get("label")
        lines.append(f"<tr><td>{_clock(t['start'])}</td><td>{escape(str(t['speaker']))}</td>"
                     f"<td>{_chip(t.get('label'))}"
                     f"{'' if conf is None else f' {conf:.2f}'}"
                     f"{'' if business is None else f' ({escape(str(business))})'}</td>"
                     f"<td>{words}</td></tr>")
    transcript = ("<table><tr><th>Time</th><th>Speaker</th><th>Emotion</th><th>Said</th></tr>"
                  + "".join(lines) + "</table>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{escape(str(name))}</title><style>{_STYLE}</style></head><body>"
            + "".join(head) + "<h2>Timeline</h2>" + timeline_svg(result) + legend
            + "<h2>Speakers</h2>" + speakers + "<h2>Events</h2>" + events
            + "<h2>Transcript</h2>" + transcript + "</body></html>\n")


def _event_note(e: Mapping[str, Any]) -> str:
    if e["type"] == "escalation":
        return (f"{e.get('trigger', '')}, peak {e.get('peak', 0):.2f}, "
                f"{'recovered' if e.get('recovered') else 'not recovered by the end'}")
    return f"{e.get('turns', '')} calm turn(s)"


CSV_FIELDS = ["start", "end", "speaker", "role", "channel", "label", "confidence",
              *(f"p_{k}" for k in LABELS), "business_label", "transcript"]


def csv_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per turn (:data:`CSV_FIELDS`)."""
    roles = {s["id"]: s.get("role") for s in result.get("speakers", [])}
    out = []
    for t in result.get("turns", []):
        probs = t.get("probabilities") or {}
        out.append({"start": t["start"], "end": t["end"], "speaker": t["speaker"],
                    "role": roles.get(t["speaker"]), "channel": t.get("channel"),
                    "label": t.get("label"), "confidence": t.get("confidence"),
                    **{f"p_{k}": probs.get(k) for k in LABELS},
                    "business_label": (t.get("business") or {}).get("label"),
                    "transcript": _cell(t.get("transcript"))})
    return out


def _cell(text: str | None) -> str | None:
    """A transcript cell a spreadsheet will not run as a formula (``=HYPERLINK(...)`` said
    aloud and transcribed is still text)."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def csv_text(result: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(result))
    return buf.getvalue()
