"""Follow one face through a clip: the same person in every sampled frame, not whoever has the
largest box in each frame (a passer-by stepping close to the camera, or a second speaker in a
two-shot, must not take over half of the clip's face embedding).

The rule, on the frames the encoder samples:

1. Link detections frame by frame into tracks. A detection continues the live track whose last
   box it overlaps most (IoU >= ``min_iou``); failing that, the live track whose last centre is
   nearest, if within ``max_shift`` of that track's box size (frames are ~0.25 s apart, so a
   moving head can leave its old box). Each track takes at most one detection per frame, best
   matches first. A track stays live across up to ``max_gap`` frames without a match (a missed
   detection, a blink of occlusion); unmatched detections start new tracks.
2. Keep the track seen in the most frames: the person the clip is about. Ties go to the larger
   mean box, then the earlier track. In a clip of ``min_frames_rule`` sampled frames or more, a
   track seen in one frame only is a false detection (a face-like object that one frame's
   lighting made look like a face), not a person, and gives no face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .face_detect import Face


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    faces: dict[int, Face] = field(default_factory=dict)  # frame index -> face
    last: int = 0

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.faces[self.last].box


def follow_one_face(frames: list[list[Face]], min_iou: float = 0.3, max_shift: float = 0.75,
                    max_gap: int = 2, min_frames_rule: int = 4) -> list[Face | None]:
    """Per frame, the face of the clip's main track (``None`` where it was not seen)."""
    tracks: list[_Track] = []
    for t, faces in enumerate(frames):
        live = [k for k, tr in enumerate(tracks) if t - tr.last <= max_gap + 1]
        pairs = []  # (rank key, track, detection): IoU matches first, then by distance
        for k in live:
            box = tracks[k].box
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            size = max(box[2], box[3])
            for j, f in enumerate(faces):
                o = iou(box, f.box)
                d = ((f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2) ** 0.5 / size
                if o >= min_iou:
                    pairs.append(((0, -o), k, j))
                elif d <= max_shift:
                    pairs.append(((1, d), k, j))
        used_t, used_d = set(), set()
        for _, k, j in sorted(pairs):
            if k in used_t or j in used_d:
                continue
            used_t.add(k)
            used_d.add(j)
            tracks[k].faces[t] = faces[j]
            tracks[k].last = t
        for j, f in enumerate(faces):
            if j not in used_d:
                tracks.append(_Track({t: f}, t))
    if not tracks:
        return [None] * len(frames)
    best = max(enumerate(tracks), key=lambda kt: (
        len(kt[1].faces), sum(f.area for f in kt[1].faces.values()) / len(kt[1].faces), -kt[0]))
    if len(best[1].faces) < 2 <= min_frames_rule <= len(frames):
        return [None] * len(frames)
    return [best[1].faces.get(t) for t in range(len(frames))]
