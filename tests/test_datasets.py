"""Dataset loaders read each corpus's own naming scheme; labels outside the set are counted."""

import numpy as np
import pytest

from multimodal_emotion.errors import InputError
from multimodal_emotion.evaluation import load_dataset, load_manifest
from multimodal_emotion.labels import LABELS


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def names(items):
    return sorted(LABELS[i.label] for i in items)


def test_tess_names_and_speakers(tmp_path):
    for n in ("OAF_back_angry", "OAF_back_ps", "YAF_dog_neutral", "YAF_dog_fear"):
        touch(tmp_path / "TESS" / f"{n}.wav")
    items, dropped = load_dataset("tess", str(tmp_path), None)
    assert names(items) == ["angry", "fearful", "neutral", "surprised"] and not dropped
    assert {i.speaker for i in items} == {"OAF", "YAF"} and {i.kind for i in items} == {"audio"}


def test_emodb_drops_boredom_with_a_count(tmp_path):
    for n in ("03a01Wa", "03a01La", "08b02Fa", "11a04Ab"):  # anger, boredom, happy, fear
        touch(tmp_path / f"{n}.wav")
    items, dropped = load_dataset("emodb", str(tmp_path), None)
    assert names(items) == ["angry", "fearful", "happy"] and dropped == {"L": 1}


def test_ckplus_folder_labels_drop_contempt(tmp_path):
    for emo in ("anger", "contempt", "happy", "surprise"):
        touch(tmp_path / emo / "S005_001.png")
    items, dropped = load_dataset("ckplus", str(tmp_path), None)
    assert names(items) == ["angry", "happy", "surprised"] and dropped == {"contempt": 1}
    assert {i.kind for i in items} == {"image"}


def test_crema_d_and_ravdess_codes(tmp_path):
    touch(tmp_path / "c" / "1001_DFA_ANG_XX.flv")
    touch(tmp_path / "c" / "1002_IEO_HAP_HI.flv")
    items, _ = load_dataset("crema-d", str(tmp_path / "c"), None)
    assert names(items) == ["angry", "happy"] and {i.speaker for i in items} == {"1001", "1002"}
    touch(tmp_path / "r" / "Actor_01" / "03-01-02-01-01-01-01.flac")  # calm
    touch(tmp_path / "r" / "Actor_02" / "03-01-08-01-01-01-02.flac")
    items, _ = load_dataset("ravdess", str(tmp_path / "r"), None)
    assert names(items) == ["neutral", "surprised"] and {i.speaker for i in items} == {"01", "02"}


def test_manifest_routes_by_kind_and_resolves_relative_paths(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "f.jpg")
    (tmp_path / "m.csv").write_text("label,path,text,speaker\nanger,a.wav,,s1\njoy,f.jpg,,s2\n"
                                    "boredom,,so dull,s3\nsadness,,I miss her,s3\n")
    items, dropped = load_manifest(tmp_path / "m.csv")
    assert [i.kind for i in items] == ["audio", "image", "text"] and dropped == {"boredom": 1}
    assert items[0].value == tmp_path / "a.wav"


def test_manifest_without_the_right_columns_is_rejected(tmp_path):
    (tmp_path / "m.csv").write_text("emotion,file\nanger,a.wav\n")
    with pytest.raises(InputError, match="label"):
        load_manifest(tmp_path / "m.csv")


@pytest.mark.data
def test_real_text_corpora_load_as_canonical_labels(data_root):
    items, _ = load_dataset("goemotions", str(data_root / "goemotions"), "dev")
    assert len(items) > 4000 and set(np.unique([i.label for i in items])) == set(range(7))
    items, _ = load_dataset("meld", str(data_root / "meld"), "dev")
    assert len(items) == 1109 and all(i.speaker for i in items)
