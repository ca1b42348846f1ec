"""Calls benchmark: turns, speakers, time and memory of ``find_turns`` on calls built from real
speech (RAVDESS actors), with known turn times.

    .venv/bin/python bench/calls.py [--data ../shared/data] [--minutes 10 60] [--calls 3]

A *labelled call* (:func:`build_call`) alternates two RAVDESS actors: the agent speaks neutral
and calm sentences throughout; the customer starts neutral/calm, has a stretch of angry
sentences in the middle third of the call and calms down after it. Each turn is one or two
sentences (trimmed of their leading and trailing silence with ``librosa.effects.trim``, top_db
30, keeping only sentences whose extent a 20 dB trim confirms; 0.25 s apart); turns are 0.4-1.5 s apart, and every sixth turn starts 0.3-0.6 s before the
other party finishes (overtalk). The call is written twice as 16 kHz FLAC: stereo (agent left,
customer right) and the mono mix of the two channels, with a faint noise floor (-60 dBFS) as a
telephone line has. The truth is the placement of every trimmed sentence.

Reported:

* turn accuracy: found turns matched one to one to true turns (intersection over union >= 0.5,
  same speaker; for mono after the DER speaker mapping), precision / recall / F1 and the median
  start and end errors of matched turns;
* DER of the mono mix, 0.25 s collar (definition in ``multimodal_emotion/segmenting/scoring``),
  with the speaker count given (2) and estimated;
* wall time and peak resident memory (``ru_maxrss`` of a fresh subprocess that imports the
  package and runs ``find_turns`` once) on 10- and 60-minute calls made by continuing the same
  alternation with the same sentences.

The benchmark pairs are RAVDESS actors 13-24 (the clustering threshold was chosen on 1-12, see
``--tune``). :func:`build_call` also returns which turns are angry, for judging escalation
detection once the per-turn emotion report exists.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 16_000
REPO = Path(__file__).resolve().parents[1]
# RAVDESS emotion codes
NEUTRAL, CALM, ANGRY = "01", "02", "05"


@dataclass
class TruthTurn:
    start: float
    end: float
    speaker: str  # "agent" or "customer"
    channel: int  # 0 agent (left), 1 customer (right)
    angry: bool
    clips: list[str] = field(default_factory=list)


@dataclass
class LabelledCall:
    """A built call: ``stereo`` and ``mono`` FLAC paths, the true turns (``angry`` marks the
    customer's angry stretch), the true overtalk, and the duration in seconds."""

    stereo: Path
    mono: Path
    turns: list[TruthTurn]
    overtalk: list[tuple[float, float]]
    duration: float

    def segments(self) -> list[tuple[float, float, str]]:
        return [(t.start, t.end, t.speaker) for t in self.turns]


def _actor_clips(data: Path, actor: int, emotions: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The actor's sentences in these emotions, trimmed of silence, sorted by name.

    Only sentences whose speech extent is unambiguous are used: trimming at 30 dB and at 20 dB
    below the peak (``librosa.effects.trim``) must agree within 0.15 s at both ends. In about
    one RAVDESS clip in ten a click or a breath in a quiet lead-in defeats the 30 dB trim, and
    the truth would then count a second of silence as speech."""
    import librosa
    import soundfile as sf

    folder = data / "ravdess_speech" / f"Actor_{actor:02d}"
    out = []
    for f in sorted(folder.glob("*.flac")):
        if f.stem.split("-")[2] in emotions:
            wav, sr = sf.read(f, dtype="float32")
            assert sr == SR, f
            _, (a, b) = librosa.effects.trim(wav, top_db=30)
            _, (c, d) = librosa.effects.trim(wav, top_db=20)
            if max(abs(a - c), abs(b - d)) <= 0.15 * SR:
                out.append((f.name, wav[a:b].astype(np.float32)))
    if not out:
        raise SystemExit(f"no usable RAVDESS clips for actor {actor} under {folder}")
    return out


def plan_call(data: Path, agent_actor: int, customer_actor: int, seconds: float,
              seed: int = 0) -> tuple[list[TruthTurn], dict[str, np.ndarray]]:
    """The turns of a call of about ``seconds``: times, speakers and sentences (no audio yet)."""
    rng = np.random.default_rng(seed)
    agent = _actor_clips(data, agent_actor, (NEUTRAL, CALM))
    cust_calm = _actor_clips(data, customer_actor, (NEUTRAL, CALM))
    cust_angry = _actor_clips(data, customer_actor, (ANGRY,))
    audio = {name: wav for name, wav in agent + cust_calm + cust_angry}
    turns: list[TruthTurn] = []
    t, who = 0.5, 0
    # the angry stretch repeats with the call: the middle third of every 10 minutes
    period = min(seconds, 600.0)
    while True:
        angry = who == 1 and period / 3 <= (t % period) < 2 * period / 3
        pool = agent if who == 0 else (cust_angry if angry else cust_calm)
        k = int(rng.integers(1, 3))
        names = [pool[int(i)][0] for i in rng.integers(0, len(pool), k)]
        length = sum(audio[n].size for n in names) / SR + 0.25 * (k - 1)
        if t + length > seconds - 0.3:
            break
        turns.append(TruthTurn(t, t + length, ("agent", "customer")[who], who, angry, names))
        if len(turns) % 6 == 5:
            t = t + length - float(rng.uniform(0.3, 0.6))  # the other party cuts in
        else:
            t = t + length + float(rng.uniform(0.4, 1.5))
        who = 1 - who
    return turns, audio


def render_call(turns: list[TruthTurn], audio: dict[str, np.ndarray], seconds: float,
                out_dir: Path, name: str, block_s: float = 30.0, seed: int = 0) -> LabelledCall:
    """Write the planned call as stereo and mono FLAC, ``block_s`` at a time (a 60-minute call
    never sits in memory)."""
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    stereo, mono = out_dir / f"{name}_stereo.flac", out_dir / f"{name}_mono.flac"
    rng = np.random.default_rng(seed + 1)
    n_total = int(round(seconds * SR))
    block = int(block_s * SR)
    # place every sentence: (sample start, channel, clip name)
    placed = []
    for tt in turns:
        s = tt.start
        for c in tt.clips:
            placed.append((int(round(s * SR)), tt.channel, c))
            s += audio[c].size / SR + 0.25
    placed.sort()
    with sf.SoundFile(stereo, "w", SR, 2, "PCM_16", format="FLAC") as fs, \
            sf.SoundFile(mono, "w", SR, 1, "PCM_16", format="FLAC") as fm:
        j0 = 0
        for b0 in range(0, n_total, block):
            b1 = min(n_total, b0 + block)
            buf = (rng.standard_normal((b1 - b0, 2)) * 1e-3).astype(np.float32)
            while j0 < len(placed) and placed[j0][0] + audio[placed[j0][2]].size <= b0:
                j0 += 1
            for s, ch, c in placed[j0:]:
                if s >= b1:
                    break
                w = audio[c]
                lo, hi = max(s, b0), min(s + w.size, b1)
                if hi > lo:
                    buf[lo - b0:hi - b0, ch] += w[lo - s:hi - s]
            fs.write(np.clip(buf, -1, 1))
            fm.write(np.clip(buf.sum(1), -1, 1))
    # overtalk truth: where the two parties' sentences overlap in time
    by_ch = [[(s / SR, s / SR + audio[c].size / SR) for s, ch, c in placed if ch == k]
             for k in (0, 1)]
    from multimodal_emotion.segmenting.find import overlaps

    return LabelledCall(stereo, mono, turns, overlaps(*by_ch), seconds)


def build_call(data: Path, out_dir: Path, seconds: float = 180.0, agent_actor: int = 13,
               customer_actor: int = 14, seed: int = 0, name: str | None = None
               ) -> LabelledCall:
    """A labelled two-party call of ``seconds`` from RAVDESS (see the module docstring)."""
    turns, audio = plan_call(data, agent_actor, customer_actor, seconds, seed)
    return render_call(turns, audio, seconds, out_dir,
                       name or f"call_{agent_actor}_{customer_actor}_{int(seconds)}s", seed=seed)


# -- measuring --------------------------------------------------------------------------------
def score_call(call: LabelledCall, speakers: int | None) -> dict:
    """Turn accuracy on the stereo file and on the mono mix, and the mono DER."""
    from multimodal_emotion.segmenting import find_turns
    from multimodal_emotion.segmenting.find import overlaps
    from multimodal_emotion.segmenting.scoring import (as_segments, diarization_error_rate,
                                                       match_turns)

    ref = call.segments()
    st = find_turns(call.stereo)
    hyp_st = [(t.start, t.end, ("agent", "customer")[t.channel]) for t in st.turns]
    m_st = match_turns(ref, hyp_st)
    ot_ref = sum(b - a for a, b in call.overtalk)
    ot_hyp = sum(b - a for a, b in st.overtalk)
    ot_hit = sum(b - a for a, b in overlaps(call.overtalk, st.overtalk))
    mo = find_turns(call.mono, speakers=speakers)
    hyp_mo = as_segments(mo.turns)
    d = diarization_error_rate(ref, hyp_mo, collar=0.25)
    m_mo = match_turns(ref, hyp_mo, mapping=d.mapping)
    return {"stereo": m_st, "mono": m_mo, "der": d, "mono_speakers": len(mo.speakers),
            "overtalk": (ot_ref, ot_hyp, ot_hit), "n_ref": len(ref)}


_CHILD = r"""
import json, resource, sys, time
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
from multimodal_emotion.segmenting import find_turns
from multimodal_emotion.segmenting import diarize, find, vad
vad._session(); diarize._encoder()  # models loaded: what any call pays before the first chunk
import sklearn.cluster  # noqa: F401  (a one-off import the clustering needs, 2-13 s here)
seen = {}
def timed(windows, *a, **k):  # the clustering step's own time, on mono
    c0 = time.perf_counter(); out = diarize.cluster_speakers(windows, *a, **k)
    seen.update(windows=windows, args=a, s=time.perf_counter() - c0); return out
find.cluster_speakers = timed
t1, base = time.perf_counter(), rss()
r = find_turns(sys.argv[1], max_duration=None)
out = {"seconds": time.perf_counter() - t1, "load_s": t1 - t0, "turns": len(r.turns),
       "speakers": len(r.speakers), "base_mb": base, "peak_mb": rss()}
if seen:  # the same windows clustered again, warm: the shipped rule, then the plain spectral
    warm = {}
    for name, kw in (("rule", {}), ("plain", {"finer": ()})):
        c0 = time.perf_counter(); diarize.cluster_speakers(seen["windows"], *seen["args"], **kw)
        warm[name] = time.perf_counter() - c0
    out.update(cluster_s=seen["s"], warm_cluster_s=warm["rule"], plain_cluster_s=warm["plain"],
               windows=len(seen["windows"].vectors))
print(json.dumps(out))
"""


def measure(path: Path) -> dict:
    """Time and peak memory of ``find_turns`` in a fresh process: the seconds of the call itself
    (imports and model loading apart), the resident memory once imports and models are loaded,
    and the peak (``ru_maxrss``) after the call."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PAIRS = [(13, 14), (16, 15), (17, 19), (18, 20)]  # (agent, customer): m/f, f/m, m/m, f/f
# tuning calls, actors 1-12 only: four pairs and two one-actor calls (calm, then angry: the
# clustering must not take an angry voice for a second person), then six more same-sex pairs
# (added to choose the partition rule, whose hard case they are)
TUNE = [(1, 2), (4, 3), (5, 7), (6, 8), (9, 9), (10, 10),
        (11, 1), (12, 2), (3, 5), (7, 11), (2, 4), (8, 12)]
DISTANCES = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
# partition rules (diarize.cluster_speakers: finer group counts searched, silhouette weight,
# whether the call's mean window is removed first)
RULES = (((), 0.0, False), ((1,), 0.0, False), ((1,), 1.0, False), ((1, 2), 0.0, False),
         ((1, 2), 0.5, False), ((1, 2), 1.0, False), ((1, 2), 2.0, False), ((), 0.0, True),
         ((1,), 1.0, True), ((1, 2), 0.5, True), ((1, 2), 1.0, True), ((1, 2), 2.0, True))


def tune(data: Path, out: Path, seconds: float) -> None:
    """On actors 1-12: DER with the speaker count estimated for each clustering distance, then
    DER (count given / estimated) for each partition rule (``RULES``; finer ``()``: the plain
    spectral partition)."""
    from unittest import mock

    from multimodal_emotion.media_stream import iter_chunks
    from multimodal_emotion.segmenting import diarize, find
    from multimodal_emotion.segmenting.find import mono_pass, mono_turns
    from multimodal_emotion.segmenting.scoring import as_segments, diarization_error_rate
    from multimodal_emotion.segmenting.vad import VadConfig

    cfg = VadConfig()
    passes = []
    for agent, cust in TUNE:
        call = build_call(data, out, seconds, agent, cust, seed=agent)
        ref = call.segments()
        if agent == cust:  # one person: every turn is the same speaker
            ref = [(a, b, "agent") for a, b, _ in ref]
        passes.append((agent, cust, ref, *mono_pass(iter_chunks(call.mono, 10.0), cfg, [])))

    def der(ref, probs, dur, windows, speakers, d=diarize.DEFAULT_DISTANCE):
        r = mono_turns(probs, dur, windows, cfg, speakers, d)
        return diarization_error_rate(ref, as_segments(r.turns)).der, len(r.speakers)

    print("| call | " + " | ".join(f"d={d}" for d in DISTANCES) + " |")
    print("|---|" + "---|" * len(DISTANCES))
    for agent, cust, ref, probs, dur, windows in passes:
        cells = [der(ref, probs, dur, windows, None, d) for d in DISTANCES]
        print(f"| {agent}/{cust} | " + " | ".join(f"{e:.1%} ({k})" for e, k in cells) + " |",
              flush=True)
    print("\nPartition rules (d=%s): DER with 2 speakers given / count estimated\n"
          % diarize.DEFAULT_DISTANCE)
    print("| call | " + " | ".join(f"finer {f or '-'} w {w}{' centred' if c else ''}"
                                   for f, w, c in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    means: dict[int, list[list[float]]] = {i: [[], []] for i in range(len(RULES))}
    for agent, cust, ref, probs, dur, windows in passes:
        cells = []
        for i, (finer, w, c) in enumerate(RULES):
            rule = functools.partial(diarize.cluster_speakers, finer=finer, weight=w, centre=c)
            with mock.patch.object(find, "cluster_speakers", rule):
                given = der(ref, probs, dur, windows, 2)[0] if agent != cust else None
                est = der(ref, probs, dur, windows, None)[0]
            if given is not None:
                means[i][0].append(given)
            means[i][1].append(est)
            cells.append(f"{'-' if given is None else f'{given:.1%}'} / {est:.1%}")
        print(f"| {agent}/{cust} | " + " | ".join(cells) + " |", flush=True)
    print("| **mean** | " + " | ".join(f"{np.mean(g):.1%} / {np.mean(e):.1%}"
                                      for g, e in means.values()) + " |")


def centroid_distances(data: Path, out: Path, seconds: float) -> None:
    """Why same-sex pairs are hard: cosine distances between the centroids of the speaker
    windows of the agent, the calm customer and the angry customer (grouped by the truth)."""
    from multimodal_emotion.media_stream import iter_chunks
    from multimodal_emotion.segmenting.find import mono_pass
    from multimodal_emotion.segmenting.vad import VadConfig

    print("| call | windows agent / calm cust. / angry cust. | agent-calm | agent-angry "
          "| calm-angry |")
    print("|---|---|---|---|---|")
    for agent, cust in PAIRS:
        call = build_call(data, out, seconds, agent, cust, seed=agent)
        _, _, win = mono_pass(iter_chunks(call.mono, 10.0), VadConfig(), [])
        groups: dict[str, list[np.ndarray]] = {"agent": [], "calm": [], "angry": []}
        for (a, b), v in zip(win.spans, win.vectors):
            mid = (a + b) / 2
            t = next((t for t in call.turns if t.start <= mid < t.end), None)
            if t is not None:
                groups["agent" if t.speaker == "agent" else
                       ("angry" if t.angry else "calm")].append(v)
        c = {k: np.mean(v, 0) / np.linalg.norm(np.mean(v, 0)) for k, v in groups.items()}
        dist = lambda x, y: 1 - float(c[x] @ c[y])  # noqa: E731
        print(f"| {agent} / {cust} | {len(groups['agent'])} / {len(groups['calm'])} / "
              f"{len(groups['angry'])} | {dist('agent', 'calm'):.2f} | "
              f"{dist('agent', 'angry'):.2f} | {dist('calm', 'angry'):.2f} |", flush=True)


def score_all(data: Path, out: Path, seconds: float) -> None:
    """The turn and DER table over the benchmark pairs."""
    print("| call (agent/customer actors) | turns | stereo P / R / F1 | stereo start / end err "
          "| overtalk true / found / hit s | mono DER, 2 given (miss / FA / conf) "
          "| mono DER, estimated (speakers) | mono P / R / F1 (estimated) |")
    print("|---|---|---|---|---|---|---|---|")
    ders = {True: [], False: []}
    for agent, cust in PAIRS:
        call = build_call(data, out, seconds, agent, cust, seed=agent)
        given = score_call(call, 2)
        est = score_call(call, None)
        s, dg, de, me = given["stereo"], given["der"], est["der"], est["mono"]
        ot = given["overtalk"]
        ders[True].append(dg.der), ders[False].append(de.der)
        sex = lambda a: "m" if a % 2 else "f"  # noqa: E731
        print(f"| {agent}{sex(agent)} / {cust}{sex(cust)} | {given['n_ref']} | "
              f"{s.precision:.2f} / {s.recall:.2f} / {s.f1:.2f} | "
              f"{s.start_error:.2f} / {s.end_error:.2f} s | "
              f"{ot[0]:.1f} / {ot[1]:.1f} / {ot[2]:.1f} | "
              f"{dg.der:.1%} ({dg.missed:.1%} / {dg.false_alarm:.1%} / {dg.confusion:.1%}) | "
              f"{de.der:.1%} ({est['mono_speakers']}) | "
              f"{me.precision:.2f} / {me.recall:.2f} / {me.f1:.2f} |", flush=True)
    print(f"\nmean DER: {np.mean(ders[True]):.1%} (2 speakers given), "
          f"{np.mean(ders[False]):.1%} (count estimated)\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("MER_DATA", str(REPO.parent / "shared" /
                                                                  "data")))
    p.add_argument("--seconds", type=float, default=180.0, help="length of each scored call")
    p.add_argument("--minutes", type=float, nargs="*", default=[10, 60],
                   help="lengths of the calls timed (empty: none)")
    p.add_argument("--out", default=None, help="folder for the built calls (default: temp)")
    p.add_argument("--centroids", action="store_true",
                   help="print the distances between agent, calm and angry customer voices "
                        "instead")
    p.add_argument("--no-scoring", action="store_true",
                   help="only the time and memory table")
    p.add_argument("--tune", action="store_true",
                   help="print DER per clustering distance on actors 1-12 instead")
    args = p.parse_args()
    data = Path(args.data)
    out = Path(args.out or tempfile.mkdtemp(prefix="calls_"))
    cmd = "python bench/calls.py " + " ".join(sys.argv[1:])
    print(f"# {cmd}\n")
    if args.tune:
        tune(data, out, args.seconds)
        return 0
    if args.centroids:
        centroid_distances(data, out, args.seconds)
        return 0
    if not args.no_scoring:
        score_all(data, out, args.seconds)
    if args.minutes:
        print("| call | file | find_turns wall s (imports + models apart) | RSS after imports + "
              "models MB | peak RSS MB | turns found | clustering s in the pass (again, warm: "
              "this rule / plain spectral; windows) |")
        print("|---|---|---|---|---|---|---|")
        for minutes in args.minutes:
            call = build_call(data, out, minutes * 60, 13, 14, seed=1,
                              name=f"long_{int(minutes)}min")
            for kind, path in (("stereo", call.stereo), ("mono", call.mono)):
                r = measure(path)
                print(f"| {minutes:g} min | {kind} | {r['seconds']:.1f} | {r['base_mb']:.0f} | "
                      f"{r['peak_mb']:.0f} | {r['turns']} (true {len(call.turns)}) | "
                      + (f"{r['cluster_s']:.2f} ({r['warm_cluster_s']:.2f} / "
                         f"{r['plain_cluster_s']:.2f}; {r['windows']})"
                         if "cluster_s" in r else "-") + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
