"""FER2013 Test accuracy and CPU throughput of the shipped face CNN.

Usage: ``.venv/bin/python bench/fer2013.py --data /work/shared/data``. The model was selected on
a hold-out of ``Training`` (the stratified 10 % it never fitted; its accuracy is printed last,
as the figure a choice between CNNs is made on); ``Test`` is only read here, for the report.
By default the face encoder is configured as in the shipped model (mirror-image TTA on);
``--no-flip-tta`` scores the CNN on the plain face only.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from multimodal_emotion.datasets.fer2013 import load_fer2013
from multimodal_emotion.encoders.face import FaceEncoder
from multimodal_emotion.labels import LABELS
from multimodal_emotion.metrics import classification_report, format_report
from multimodal_emotion.training.face_cnn import cnn_training_split
from multimodal_emotion.training.recipe import ENCODERS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=os.environ.get("MER_DATA", "../shared/data"))
    p.add_argument("--checkpoint", default=None, help="face_cnn folder (default: shipped)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average each face's embedding with its mirror image's (default: as "
                        "the shipped model's face encoder)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.flip_tta is None:
        a.flip_tta = bool(ENCODERS["face"].get("flip_tta", False))
    enc = FaceEncoder(a.checkpoint, flip_tta=a.flip_tta)
    images, labels, usage = load_fer2013(a.data)
    test = usage == "Test"
    x, y = images[test], labels[test]
    t0 = time.perf_counter()
    probs = enc.predict_images(x)
    dt = time.perf_counter() - t0
    report = classification_report(y, probs.argmax(1), LABELS)
    print(format_report(report, title=f"FER2013 Test ({enc.name}, dim={enc.dim}"
                                      f"{', flip TTA' if a.flip_tta else ''})"))
    print(f"throughput: {len(x) / dt:.0f} images/s on {a.threads} CPU thread(s) "
          f"(batch 512, {dt:.2f} s for {len(x)} images)")
    _, held = cnn_training_split(labels, usage, enc.model_config)
    rows = np.flatnonzero(usage == "Training")[held]
    hit = enc.predict_images(images[rows]).argmax(1) == labels[rows]
    print(f"hold-out (the {len(rows)} Training faces the CNN never fitted): accuracy "
          f"{hit.mean():.4f}")


if __name__ == "__main__":
    main()
