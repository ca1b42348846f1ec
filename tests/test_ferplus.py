"""FER+ votes on the canonical labels, and the row-alignment check that guards the join with
FER2013's images (the shared copy of fer2013.csv.gz is sorted by label, so it must fail)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion.datasets.ferplus import (canonical_votes, load_ferplus,
                                                 load_ferplus_votes, majority_labels)
from multimodal_emotion.errors import InputError
from multimodal_emotion.labels import FER2013_CODES, LABEL_TO_INDEX

# neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
ROWS = [("Training", "fer0.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),   # majority neutral
        ("Training", "fer1.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face: dropped
        ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),           # dropped by FER+
        ("PublicTest", "fer3.png", [0, 5, 5, 0, 0, 0, 0, 0, 0, 0]),  # tie: no majority
        ("PrivateTest", "fer4.png", [1, 0, 0, 0, 2, 0, 0, 6, 1, 0])]  # contempt majority


def _write(root: Path, fer_labels: list[str]) -> None:
    (root / "ferplus").mkdir(parents=True)
    (root / "fer2013").mkdir()
    head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt," \
           "unknown,NF\n"
    with gzip.open(root / "ferplus" / "fer2013new.csv.gz", "wt") as f:
        f.write(head + "".join(f"{u},{n}," + ",".join(map(str, v)) + "\n" for u, n, v in ROWS))
    code = {name: c for c, name in FER2013_CODES.items()}
    pixels = " ".join(["128"] * 48 * 48)
    with gzip.open(root / "fer2013" / "fer2013.csv.gz", "wt") as f:
        f.write("emotion,pixels,Usage\n" + "".join(
            f"{code[lab]},{pixels},{'Training' if u == 'Training' else 'Test'}\n"
            for lab, (u, _, _) in zip(fer_labels, ROWS)))


def test_votes_map_onto_the_canonical_labels(tmp_path: Path) -> None:
    _write(tmp_path, ["neutral", "sad", "angry", "happy", "angry"])
    votes, usage = load_ferplus_votes(tmp_path)
    assert list(usage) == ["Training", "Training", "", "PublicTest", "PrivateTest"]
    counts = canonical_votes(votes)
    assert counts[4].sum() == 3  # contempt (6) and unknown (1) votes are not canonical
    assert list(majority_labels(votes)) == [LABEL_TO_INDEX["neutral"], -1, -1, -1, -1]
    d = load_ferplus(tmp_path)
    assert list(d["index"]) == [0, 3, 4]  # NF-only and FER+-dropped rows are gone
    assert np.allclose(d["soft"].sum(1), 1)
    assert np.isclose(d["soft"][0, LABEL_TO_INDEX["angry"]], 0.3)
    assert d["images"].shape == (3, 48, 48)


def test_rows_that_do_not_line_up_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, ["happy", "sad", "angry", "sad", "surprised"])
    with pytest.raises(InputError, match="do not line up"):
        load_ferplus(tmp_path)


@pytest.mark.data
def test_shared_copy_is_refused(data_root: Path) -> None:
    """The shared fer2013.csv.gz is sorted by (Usage, emotion), so FER+ (original Kaggle row
    order) cannot be joined to it: its majorities agree with FER2013's labels at chance level."""
    with pytest.raises(InputError, match=r"agrees with FER2013's own label on only 1\d\.\d%"):
        load_ferplus(data_root)
