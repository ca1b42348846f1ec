"""Mono diarization variants that were measured against the shipped rule: embedding projections
fitted on RAVDESS actors 1-12 and turn-level voting. Prints mean DER (0.25 s collar) over the
tuning calls (actors 1-12, ``calls.TUNE``) and the test calls (13-24, ``calls.PAIRS``).

    .venv/bin/python bench/diar_variants.py [--data ../shared/data] [--out DIR]

Projections (each fitted on resemblyzer windows, 1.6 s every 0.8 s, of every RAVDESS clip of
actors 1-12, all eight emotions; speaker as class, emotion as nuisance), applied to every window
before the clustering, then L2-normed:

* ``nap K``: nuisance attribute projection, the top K directions of within-speaker scatter
  removed;
* ``wccn R``: within-class covariance normalisation (whitened by the within-speaker covariance
  plus R times its mean eigenvalue);
* ``emotion dirs``: the seven directions between the per-emotion means (speaker means removed)
  projected out;
* ``call mean removed before the count too``: each call's mean window subtracted before the
  whole clustering, count estimate included (the shipped rule removes it only for the
  partition).

``piece vote``: after the shipped clustering, every speech piece (speech between pauses of
0.25 s or more) takes the speaker its windows are nearest to in sum.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calls  # noqa: E402

Proj = Callable[[np.ndarray], np.ndarray]


def ravdess_windows(data: Path, actors: range) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resemblyzer windows of every clip of these actors: vectors, actor, emotion code."""
    import librosa
    import soundfile as sf

    from multimodal_emotion.segmenting.diarize import embed_windows

    win, hop = int(1.6 * calls.SR), int(0.8 * calls.SR)
    V, A, E = [], [], []
    for actor in actors:
        for f in sorted((data / "ravdess_speech" / f"Actor_{actor:02d}").glob("*.flac")):
            wav, _ = sf.read(f, dtype="float32")
            _, (a, b) = librosa.effects.trim(wav, top_db=30)
            w = wav[a:b]
            parts = [w[i:i + win] for i in range(0, w.size - win + 1, hop)] or [w]
            for v in embed_windows(parts):
                V.append(v), A.append(actor), E.append(int(f.stem.split("-")[2]))
    return np.array(V, np.float64), np.array(A), np.array(E)


def _within(V: np.ndarray, labels: np.ndarray) -> np.ndarray:
    X = V.copy()
    for a in np.unique(labels):
        X[labels == a] -= X[labels == a].mean(0)
    return X


def nap(V, actor, emo, k: int) -> Proj:
    U = np.linalg.svd(_within(V, actor), full_matrices=False)[2][:k].T
    return lambda x: x - (x @ U) @ U.T


def wccn(V, actor, emo, reg: float) -> Proj:
    X = _within(V, actor)
    w, U = np.linalg.eigh(X.T @ X / len(X))
    T = U @ np.diag((w + reg * w.mean()) ** -0.5) @ U.T
    mu = V.mean(0)
    return lambda x: (x - mu) @ T


def emotion_dirs(V, actor, emo, k: int = 7) -> Proj:
    X = _within(V, actor)
    M = np.stack([X[emo == e].mean(0) for e in np.unique(emo)])
    U = np.linalg.svd(M, full_matrices=False)[2][:k].T
    return lambda x: x - (x @ U) @ U.T


def projected(f: Proj):
    """A cluster_speakers that clusters projected windows (centroids stay resemblyzer's)."""
    from multimodal_emotion.segmenting import diarize as D

    def cluster(windows, speakers=None, distance=D.DEFAULT_DISTANCE, min_share=0.05):
        X = f(windows.vectors.astype(np.float64))
        X = (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        lab, _ = D.cluster_speakers(D.SpeakerWindows(windows.spans, windows.piece, X),
                                    speakers, distance, min_share)
        return lab, D._centroids(windows.vectors, lab, int(lab.max()) + 1)
    return cluster


def piece_vote(windows, speakers=None, distance=None, min_share=0.05):
    from multimodal_emotion.segmenting import diarize as D

    lab, cents = D.cluster_speakers(windows, speakers, distance or D.DEFAULT_DISTANCE, min_share)
    if len(cents) < 2:
        return lab, cents
    S = windows.vectors @ cents.T
    for p in np.unique(windows.piece):
        m = windows.piece == p
        lab[m] = int(S[m].sum(0).argmax())
    return lab, cents


def main() -> int:
    from multimodal_emotion.media_stream import iter_chunks
    from multimodal_emotion.segmenting import diarize, find
    from multimodal_emotion.segmenting.find import mono_pass, mono_turns
    from multimodal_emotion.segmenting.scoring import as_segments, diarization_error_rate
    from multimodal_emotion.segmenting.vad import VadConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("MER_DATA", str(calls.REPO.parent / "shared"
                                                                  / "data")))
    p.add_argument("--out", default=None)
    p.add_argument("--seconds", type=float, default=180.0)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out or tempfile.mkdtemp(prefix="diar_"))
    print(f"# python bench/diar_variants.py {' '.join(sys.argv[1:])}\n")
    fit = ravdess_windows(data, range(1, 13))
    cfg = VadConfig()
    passes = []
    for kind, pairs in (("tune", calls.TUNE), ("test", calls.PAIRS)):
        for agent, cust in pairs:
            call = calls.build_call(data, out, args.seconds, agent, cust, seed=agent)
            ref = call.segments()
            if agent == cust:
                ref = [(a, b, "agent") for a, b, _ in ref]
            passes.append((kind, agent == cust, ref,
                           *mono_pass(iter_chunks(call.mono, 10.0), cfg, [])))
    plain = functools.partial(diarize.cluster_speakers, finer=(), centre=False)
    uncentred = functools.partial(diarize.cluster_speakers, centre=False)
    variants = [("plain spectral (before)", plain), ("turn-taking rule, raw windows", uncentred),
                ("turn-taking rule, call mean removed (shipped)", None),
                ("piece vote", piece_vote),
                ("call mean removed before the count too",
                 projected(lambda x: x - x.mean(0)))]
    for name, maker, param in (("nap 5", nap, 5), ("nap 10", nap, 10), ("nap 20", nap, 20),
                               ("wccn 0.1", wccn, 0.1), ("wccn 1", wccn, 1.0),
                               ("emotion dirs", emotion_dirs, 7)):
        variants.append((name, projected(maker(*fit, param))))
    print("| variant | tune DER, 2 given | tune DER, estimated | test DER, 2 given | "
          "test DER, estimated |")
    print("|---|---|---|---|---|")
    for name, rule in variants:
        ders: dict[tuple[str, bool], list[float]] = {}
        with mock.patch.object(find, "cluster_speakers", rule or diarize.cluster_speakers):
            for kind, lone, ref, probs, dur, windows in passes:
                for given in (True, False):
                    if given and lone:
                        continue
                    r = mono_turns(probs, dur, windows, cfg, 2 if given else None)
                    ders.setdefault((kind, given), []).append(
                        diarization_error_rate(ref, as_segments(r.turns)).der)
        print(f"| {name} | " + " | ".join(f"{np.mean(ders[k, g]):.1%}" for k in ("tune", "test")
                                          for g in (True, False)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
