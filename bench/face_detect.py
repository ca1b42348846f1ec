"""Which face detector finds the faces in real video: share of sampled frames with a face, and
milliseconds per frame, for every registered detector on the real clips in ../shared/data.

Frames are decoded exactly as ``mer analyze`` does (``media.load``: 4 fps, longer side <= 640),
so the 1920x1080 MEAD recording is seen at 640x360 with its small face. One thread, as the face
stage runs beside audio.

These clips are frontal and well lit, so a second table replays the same real frames under three
conditions of TV footage that FER-style pipelines fail on: ``dim`` (pixels x 0.2 plus sensor
noise sigma 3, a badly lit scene), ``roll30`` (the frame rotated 30 degrees: a tilted head),
``small`` (the frame shrunk to 30 % inside a grey frame of the same size: a face far from the
camera). A hit there must also be the right face: a box containing the transformed centre of
the face Haar finds in the untouched frame (Haar, the baseline, so the reference does not favour
the new detector).

    .venv/bin/python bench/face_detect.py [--data ../shared/data] [--detectors haar,blazeface]
    .venv/bin/python bench/face_detect.py --fer2013-eyes   # where FER2013 crops put the eyes
    .venv/bin/python bench/face_detect.py --encode   # face stage of the 5 s demo clip, A/B
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def clips(root: Path) -> list[Path]:
    return sorted((root / "crema_d_clips").glob("*.flv")) + sorted(
        (root / "mead_clips").glob("*.mp4"))


def stress(frame: np.ndarray, kind: str, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """A transformed frame and the 2x3 affine that maps original pixels into it."""
    import cv2

    h, w = frame.shape[:2]
    if kind == "dim":
        out = frame.astype(np.float32) * 0.2 + rng.normal(0, 3, frame.shape)
        return np.clip(out, 0, 255).astype(np.uint8), np.float32([[1, 0, 0], [0, 1, 0]])
    if kind == "roll30":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
    elif kind == "small":
        m = np.float32([[0.3, 0, w * 0.35], [0, 0.3, h * 0.35]])
    else:
        raise ValueError(kind)
    out = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_AREA if kind == "small"
                         else cv2.INTER_LINEAR, borderValue=(128, 128, 128))
    return out, m


def fer2013_eyes(data: str, n: int = 600) -> None:
    """Median eye midpoint, inter-ocular distance and roll of ``n`` random FER2013 Training
    crops (BlazeFace short range on each crop upscaled 4x and padded with its mean grey: it
    expects some context around a face): the constants of ``encoders.face_align``."""
    import cv2

    from multimodal_emotion.datasets.fer2013 import load_fer2013
    from multimodal_emotion.encoders.face_detect import create_detector, largest

    images, _, usage = load_fer2013(data)
    rng = np.random.default_rng(0)
    det = create_detector("blazeface", model="short")
    rows = []
    for i in rng.choice(np.flatnonzero(usage == "Training"), n, replace=False):
        big = cv2.resize(images[i], (192, 192), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((384, 384), int(big.mean()), np.uint8)
        canvas[96:288, 96:288] = big
        face = largest(det.detect(np.repeat(canvas[..., None], 3, axis=2)))
        if face is None or face.eyes is None:
            continue
        (x1, y1), (x2, y2) = [((x - 96) / 4, (y - 96) / 4) for x, y in face.eyes]
        rows.append(((x1 + x2) / 2, (y1 + y2) / 2, np.hypot(x2 - x1, y2 - y1),
                     np.degrees(np.arctan2(y2 - y1, x2 - x1))))
    r = np.array(rows)
    med = np.median(r, 0)
    print(f"{len(r)} of {n} FER2013 Training crops with a face found; medians in the 48x48 crop: "
          f"eye midpoint ({med[0]:.1f}, {med[1]:.1f}), inter-ocular distance {med[2]:.1f} px, "
          f"roll {med[3]:.1f} deg")


def encode_ab(runs: int = 5) -> None:
    """Milliseconds of the whole face stage (``encode``: detect, track/align, CNN with mirror
    TTA) on the 5 s demo clip that bench/latency.py uses, old and new encoder alternated so
    both see the same machine load."""
    import os
    import statistics
    import tempfile

    from multimodal_emotion.demo import make_demo_clip
    from multimodal_emotion.encoders import create
    from multimodal_emotion.media import load

    path = os.path.join(tempfile.mkdtemp(), "bench5s.mp4")
    make_demo_clip(path, seconds=5.0)
    clip = load(path)
    encs = {n: create("face", n, flip_tta=True) for n in ("haar-cnn", "blazeface-cnn")}
    ms: dict[str, list[float]] = {n: [] for n in encs}
    for e in encs.values():
        e.encode(clip)  # warm
    for _ in range(runs):
        for n, e in encs.items():
            t = time.perf_counter()
            out = e.encode(clip)
            ms[n].append((time.perf_counter() - t) * 1000)
    for n in encs:
        print(f"{n}: {out.extras['frames']} sampled frames, face stage median "
              f"{statistics.median(ms[n]):.0f} ms over {runs} runs "
              f"({', '.join(f'{v:.0f}' for v in ms[n])})")


def main() -> int:
    import torch

    from multimodal_emotion.encoders.face_detect import create_detector
    from multimodal_emotion.media import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--detectors", default="haar,blazeface:short,blazeface:full,blazeface:auto")
    p.add_argument("--fer2013-eyes", action="store_true",
                   help="print where FER2013 crops put the eyes instead (face_align's constants)")
    p.add_argument("--encode", action="store_true",
                   help="time the face stage of the demo clip, haar-cnn vs blazeface-cnn")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.encode:
        import cv2

        cv2.setNumThreads(1)
        encode_ab()
        return 0
    if a.fer2013_eyes:
        fer2013_eyes(a.data)
        return 0
    import cv2

    cv2.setNumThreads(1)
    videos = {c: load(c).frames for c in clips(Path(a.data))}
    specs = a.detectors.split(",")
    dets = {s: create_detector(s.split(":")[0], **({"model": s.split(":")[1]} if ":" in s
                                                    else {})) for s in specs}
    for d in dets.values():  # warm up (graph start, caches)
        d.detect(next(iter(videos.values()))[0])
    found: dict[str, dict[str, int]] = {s: {} for s in specs}
    ms: dict[str, list[float]] = {s: [] for s in specs}
    for c, frames in videos.items():
        for s, d in dets.items():
            n = 0
            for f in frames:
                t = time.perf_counter()
                n += bool(d.detect(f))
                ms[s].append((time.perf_counter() - t) * 1000)
            found[s][c.name] = n
    print("| clip | frames (size) | " + " | ".join(specs) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in specs) + " |")
    for c, frames in videos.items():
        h, w = frames.shape[1:3]
        print(f"| {c.parent.name}/{c.name} | {len(frames)} ({w}x{h}) | "
              + " | ".join(f"{found[s][c.name] / len(frames):.0%}" for s in specs) + " |")
    total = sum(len(f) for f in videos.values())
    print(f"| all {len(videos)} clips | {total} | " + " | ".join(
        f"**{sum(found[s].values()) / total:.1%}**" for s in specs) + " |")
    print("| ms per frame (median / mean) | | " + " | ".join(
        f"{np.median(ms[s]):.1f} / {np.mean(ms[s]):.1f}" for s in specs) + " |")

    haar = create_detector("haar")
    rng = np.random.default_rng(0)
    kinds = ("dim", "roll30", "small")
    hits = {(k, s): 0 for k in kinds for s in specs}
    n_ref = 0
    for frames in videos.values():
        for f in frames:
            ref = haar.detect(f)
            if not ref:
                continue
            n_ref += 1
            x, y, bw, bh = max(ref, key=lambda r: r.area).box
            for k in kinds:
                g, m = stress(f, k, rng)
                cx, cy = m @ np.array([x + bw / 2, y + bh / 2, 1.0])
                for s, d in dets.items():
                    hits[(k, s)] += any(fx <= cx <= fx + fw and fy <= cy <= fy + fh
                                        for fx, fy, fw, fh in (r.box for r in d.detect(g)))
    print()
    print(f"| condition ({n_ref} real frames) | " + " | ".join(specs) + " |")
    print("| --- | " + " | ".join("---" for _ in specs) + " |")
    for k in kinds:
        print(f"| {k} | " + " | ".join(f"{hits[(k, s)] / n_ref:.0%}" for s in specs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
