"""Real labelled clips, end to end: every expert, every fusion, every subset of modalities.

Runs ``analyze``'s encoders once per real labelled clip in ``../shared/data`` (the six CREMA-D
clips: one actor, 480x360 VP6 + MP3; the seven MEAD clips: a 1920x1080 full frame with a small
face and six 256x256 face crops, four with sound) and prints:

1. per clip: the truth, each expert's label, the default fusion's label, the share of sampled
   frames with a face, and the detected language;
2. per strategy: hits with one, two and three modalities present (every subset of the clip's
   available modalities, answered from the same embeddings with the others masked), against
   the best single expert of each subset (the one expert with the most hits over all clips):
   the line fusion must not fall below;
3. calibration on these clips: expected calibration error and mean confidence of each expert
   and of each fusion, before (raw softmax experts: no temperature, no prior correction) and
   after (the shipped calibration) (tiny sample: read it as a smoke test, not a benchmark).

Labels outside the seven (MEAD's "contempt") are analyzed and shown but not scored.

    .venv/bin/python bench/realworld.py [--data ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from itertools import combinations
from pathlib import Path

import numpy as np


def clips(root: Path) -> list[tuple[str, Path, str]]:
    """(name, path, raw label) of every real labelled clip."""
    out = []
    crema = root / "crema_d_clips"
    if (crema / "labels.csv").exists():
        for r in csv.DictReader((crema / "labels.csv").open()):
            out.append((r["name"], crema / f"{r['name']}.flv", r["label"]))
    mead = root / "mead_clips"
    if (mead / "labels.csv").exists():
        for r in csv.DictReader((mead / "labels.csv").open()):
            out.append((Path(r["path"]).stem, mead / r["path"], r["label"]))
    return out


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from multimodal_emotion import EmotionRecognizer, LABELS, media
    from multimodal_emotion.calibration import ExpertCalibration, expected_calibration_error
    from multimodal_emotion.datasets import default_data_root
    from multimodal_emotion.labels import to_canonical

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    p.add_argument("--json", default=None, help="also write every number to this file")
    args = p.parse_args()
    root = Path(args.data) if args.data else default_data_root()
    items = clips(root)
    if not items:
        print(f"no real clips under {root}; set MER_DATA or --data", file=sys.stderr)
        return 2
    rec = EmotionRecognizer.from_pretrained(args.model)
    fusions = list(rec.model.fusions)
    modalities = list(rec.model.modalities)
    default = rec.model.default_fusion
    records = []
    print(f"{'clip':<28}{'truth':<10}" + "".join(f"{m:<10}" for m in modalities)
          + f"{default:<10}{'faces':<8}{'lang':<6}transcript")
    for name, path, raw in items:
        try:
            canon = to_canonical(raw)
        except KeyError:
            canon = None
        clip = media.load(path, fps=rec.fps)
        outputs, _ = rec.encode(clip)
        emb = {m: o.embedding for m, o in outputs.items()}
        avail = {m: o.available for m, o in outputs.items()}
        seqs = {m: o.sequence for m, o in outputs.items() if o.available}
        subsets = {f: rec.model.subset_predict(emb, avail, f, seqs)[0] for f in fusions}
        experts = rec.model.subset_predict(emb, avail, default, seqs, subsets=[])[1]
        shipped = rec.model.calibration
        rec.model.calibration = ExpertCalibration(LABELS)  # raw experts: the "before"
        try:
            raw_subsets = {f: rec.model.subset_predict(emb, avail, f, seqs)[0]
                           for f in fusions}
            raw_experts = rec.model.subset_predict(emb, avail, default, seqs, subsets=[])[1]
        finally:
            rec.model.calibration = shipped
        text = outputs["text"].extras
        face = outputs["face"].extras
        rec_ = {"clip": name, "truth": canon, "raw_label": raw,
                "available": [m for m in modalities if avail[m]],
                "experts": {m: (None if experts[m] is None else experts[m].tolist())
                            for m in modalities},
                "subsets": {f: {"+".join(k): v.tolist() for k, v in s.items()}
                            for f, s in subsets.items()},
                "raw_experts": {m: (None if raw_experts[m] is None else raw_experts[m].tolist())
                                for m in modalities},
                "raw_subsets": {f: {"+".join(k): v.tolist() for k, v in s.items()}
                                for f, s in raw_subsets.items()},
                "faces": f"{face.get('frames_with_face', 0)}/{face.get('frames', 0)}",
                "language": text.get("language"), "transcript": text.get("transcript", "")}
        records.append(rec_)
        full = tuple(m for m in modalities if avail[m])
        fused = subsets[default].get(full)

        def show(probs):
            if probs is None:
                return "-"
            lab = LABELS[int(np.argmax(probs))]
            return lab + ("*" if lab == canon else "")

        print(f"{name[:27]:<28}{(canon or raw + '?'):<10}"
              + "".join(f"{show(experts[m]):<10}" for m in modalities)
              + f"{show(fused):<10}{rec_['faces']:<8}{str(rec_['language'] or '-'):<6}"
              + f"{rec_['transcript'][:40]}")
    print("(* = correct; '-' = modality masked; '?' = label outside the seven, not scored)\n")

    scored = [r for r in records if r["truth"] is not None]
    y = {r["clip"]: LABELS.index(r["truth"]) for r in scored}
    expert_hits = {m: sum(int(np.argmax(r["experts"][m])) == y[r["clip"]]
                          for r in scored if r["experts"][m] is not None) for m in modalities}
    table: dict[str, dict[int, list[int]]] = {}
    for f in fusions + ["best expert"]:
        table[f] = {k: [0, 0] for k in (1, 2, 3)}
    for r in scored:
        for k in (1, 2, 3):
            for sub in combinations(r["available"], k):
                key = "+".join(sub)
                best = max(sub, key=lambda m: expert_hits[m])
                table["best expert"][k][0] += int(np.argmax(r["experts"][best])) == y[r["clip"]]
                table["best expert"][k][1] += 1
                for f in fusions:
                    table[f][k][0] += int(np.argmax(r["subsets"][f][key])) == y[r["clip"]]
                    table[f][k][1] += 1
    print(f"hits over every subset of each clip's available modalities ({len(scored)} scored "
          f"clips; expert hits alone: " + ", ".join(f"{m} {h}" for m, h in expert_hits.items())
          + ")")
    print(f"{'strategy':<14}{'1 modality':<14}{'2 modalities':<14}{'3 modalities':<14}"
          f"{'keeps a lone expert':<20}")
    for f, row in table.items():
        keeps = "-" if f == "best expert" else str(rec.model.keeps_single_modality(f)).lower()
        print(f"{f:<14}" + "".join(f"{h}/{n:<12}" for h, n in row.values()) + f"{keeps:<20}")

    print("\ncalibration on the scored clips (all available modalities; ECE, 15 bins): before "
          "= raw experts, after = shipped calibration")
    print(f"{'answer':<14}{'n':<5}{'accuracy':<10}{'confidence':<20}{'ECE':<16}")
    calib = {}
    for name in modalities + fusions:
        entry = {}
        for when, ex_key, sub_key in (("before", "raw_experts", "raw_subsets"),
                                      ("after", "experts", "subsets")):
            rows = []
            for r in scored:
                probs = r[ex_key][name] if name in modalities else \
                    r[sub_key][name].get("+".join(r["available"]))
                if probs is not None:
                    rows.append((probs, y[r["clip"]]))
            if rows:
                P = np.array([p for p, _ in rows])
                t = np.array([t for _, t in rows])
                entry[when] = {"n": len(t), "accuracy": float((P.argmax(1) == t).mean()),
                               "confidence": float(P.max(1).mean()),
                               "ece": expected_calibration_error(P, t)}
        if not entry:
            continue
        calib[name] = entry
        b, a = entry["before"], entry["after"]
        print(f"{name:<14}{a['n']:<5}{a['accuracy']:<10.2f}"
              f"{b['confidence']:.2f} -> {a['confidence']:.2f}{'':<8}"
              f"{b['ece']:.3f} -> {a['ece']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": records, "subset_hits": table,
                                               "calibration": calib}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
