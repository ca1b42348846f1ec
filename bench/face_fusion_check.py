"""Does a new face CNN still suit the shipped fusions? FER2013 ``Test`` through each fusion with
only the face available (audio and text masked), for the shipped CNN and a candidate.

Why: the fusions were trained on the shipped CNN's embeddings and are not retrained when a CNN
continued from it is shipped, so its embedding must still mean the same thing to them; this
prints the face-only fused accuracy of both and how often the two agree.

    .venv/bin/python bench/face_fusion_check.py --candidate DIR/face_cnn --candidate-model DIR

``--candidate-model``: a copy of the model folder whose ``experts.face`` was synced to the
candidate (``training.face_cnn.sync_face_expert``), so late fusion sees the candidate's head.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


@torch.inference_mode()
def fused_face_only(model, x: np.ndarray) -> dict[str, np.ndarray]:
    n = len(x)
    emb = {m: torch.zeros(n, model.dims[m]) for m in model.modalities}
    emb["face"] = torch.from_numpy(x)
    mask = torch.tensor([[m == "face" for m in model.modalities]] * n)
    out = {}
    for name, f in model.fusions.items():
        if getattr(f, "decision_level", False):  # product: the calibrated experts combined
            log_q = torch.zeros(n, len(model.modalities), len(model.labels))
            log_q[:, model.modalities.index("face")] = model.calibration.log_proba(
                "face", model.experts["face"](emb["face"]))
            out[name] = f.combine(log_q, mask, model.calibration.log_target()).numpy().argmax(1)
        else:
            out[name] = torch.softmax(f(emb, mask, None), -1).numpy().argmax(1)
    return out


def main() -> None:
    from multimodal_emotion.datasets.fer2013 import load_fer2013
    from multimodal_emotion.encoders.face import FaceEncoder
    from multimodal_emotion.model import EmotionModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--candidate", required=True, help="face_cnn folder to compare")
    p.add_argument("--candidate-model", default=None,
                   help="model folder for the candidate (default: the shipped one)")
    a = p.parse_args()
    torch.set_num_threads(1)
    images, labels, usage = load_fer2013(a.data)
    te = usage == "Test"
    preds = {}
    for tag, ckpt, folder in (("shipped", None, None),
                              ("candidate", a.candidate, a.candidate_model)):
        model = EmotionModel.from_pretrained(folder).eval()
        x = FaceEncoder(ckpt, flip_tta=True).encode_images(images[te])
        preds[tag] = fused_face_only(model, x)
        print(tag, {k: f"{(v == labels[te]).mean():.3f}" for k, v in preds[tag].items()})
    print("agreement", {k: f"{(preds['shipped'][k] == preds['candidate'][k]).mean():.3f}"
                        for k in preds["shipped"]})


if __name__ == "__main__":
    main()
