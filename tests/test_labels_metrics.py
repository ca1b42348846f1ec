"""Label mapping and metrics on small inputs whose answers are known by hand."""

import numpy as np
import pytest

from multimodal_emotion.labels import LABELS, to_canonical
from multimodal_emotion.metrics import classification_report, confusion_matrix


def test_canonical_set_is_the_seven_emotions():
    assert LABELS == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@pytest.mark.parametrize("name,canon", [
    ("calm", "neutral"), ("joy", "happy"), ("Happiness", "happy"), ("ANG", "angry"),
    ("fear", "fearful"), ("sadness", "sad"), ("surprise", "surprised"), ("DIS", "disgust"),
    ("boredom", None), ("contempt", None),
])
def test_dataset_names_map_onto_the_set(name, canon):
    assert to_canonical(name) == canon


def test_unknown_name_is_an_error_not_a_silent_drop():
    with pytest.raises(KeyError):
        to_canonical("hangry")


def test_confusion_rows_are_truth_columns_predictions():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_report_known_answer():
    # class 0: 3 true, 2 right; class 1: 1 true, 1 right; predictions 0,0,1,1
    y_true = [0, 0, 0, 1]
    y_pred = [0, 0, 1, 1]
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["uar"] == pytest.approx((2 / 3 + 1) / 2)  # class c has no sample: left out
    pa, ra = 1.0, 2 / 3
    pb, rb = 0.5, 1.0
    fa, fb = 2 * pa * ra / (pa + ra), 2 * pb * rb / (pb + rb)
    assert r["macro_f1"] == pytest.approx((fa + fb) / 2)
    assert r["weighted_f1"] == pytest.approx((3 * fa + fb) / 4)
    assert r["per_class"]["c"]["support"] == 0
    assert r["confusion_matrix"][0] == [2, 1, 0]
