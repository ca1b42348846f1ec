"""Speech across corpora: loaders on the real corpora, the speaker/corpus-grouped protocols,
per-utterance normalisation, and writing only the audio expert into a model folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_emotion.datasets.speech_corpora import SPEECH_CORPORA, load_speech_corpus
from multimodal_emotion.encoders.audio import active_level_dbfs, normalize_loudness
from multimodal_emotion.encoders.audio_features import trim_silence, whisper_pieces
from multimodal_emotion.heads import ClassifierHead, LinearConfig, TrainConfig, UtteranceNorm, \
    fit_linear_head, group_offset_directions, predict_proba, train_head
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.training import speech
from multimodal_emotion.training.speech import SpeechData, cell_weights, loco_split, \
    restricted_predict, speaker_folds, validation_speakers, write_audio_expert
from multimodal_emotion.training.speed_perturb import speed_changed


# ---------------------------------------------------------------------------- real corpora


@pytest.mark.data
def test_speech_more_loaders_map_labels_and_speakers(data_root: Path):
    if not (data_root / "speech_more").is_dir():
        pytest.skip(f"speech_more not found under {data_root}")
    expect = {  # corpus: (utterances, speakers, canonical labels)
        "nemo": (4481, 9, {"angry", "fearful", "happy", "neutral", "sad", "surprised"}),
        "casia": (1200, 4, {"angry", "fearful", "happy", "neutral", "sad", "surprised"}),
        "urdu": (400, 29, {"angry", "happy", "neutral", "sad"}),
    }
    for corpus, (n, n_speakers, labels) in expect.items():
        recs = load_speech_corpus(corpus, data_root)
        assert len(recs) == n
        assert len({r.speaker for r in recs}) == n_speakers
        assert {r.label for r in recs} == labels
        assert all(r.corpus == corpus and r.speaker.startswith(f"{corpus}:") for r in recs)
        assert all(Path(r.path).is_file() for r in recs[:5])
    by = {Path(r.path).relative_to(data_root / "speech_more").as_posix(): r
          for c in expect for r in load_speech_corpus(c, data_root)}
    # labels.csv rows: the source name mapped onto the canonical set, the speaker kept
    assert (by["nemo/WR0_surprised_64.opus"].label,
            by["nemo/WR0_surprised_64.opus"].speaker) == ("surprised", "nemo:WR0")
    assert (by["casia/ZhaoZuoxiang/angry/201.opus"].label,
            by["casia/ZhaoZuoxiang/angry/201.opus"].speaker) == ("angry", "casia:ZhaoZuoxiang")
    assert (by["urdu/Angry/SM1_F10_A010.opus"].label,
            by["urdu/Angry/SM1_F10_A010.opus"].speaker) == ("angry", "urdu:SM1")
    assert Counter(r.label for r in load_speech_corpus("nemo", data_root))["fearful"] == 736


@pytest.mark.data
def test_ravdess_through_the_shared_record_type(data_root: Path):
    if not (data_root / "ravdess_speech").is_dir():
        pytest.skip("RAVDESS speech not found")
    recs = load_speech_corpus("ravdess", data_root)
    assert len(recs) == 1440 and len({r.speaker for r in recs}) == 24
    assert {r.label for r in recs} == {"neutral", "happy", "sad", "angry", "fearful", "disgust",
                                       "surprised"}  # calm merged into neutral
    r = next(r for r in recs if Path(r.path).name == "03-01-02-01-02-02-24.flac")
    assert (r.label, r.speaker) == ("neutral", "ravdess:24")
    with pytest.raises(ValueError):
        load_speech_corpus("emodb", data_root)
    assert SPEECH_CORPORA == ("ravdess", "nemo", "casia", "urdu")


# ---------------------------------------------------------------------------- protocols


def synthetic(seed: int = 0) -> SpeechData:
    """Three corpora, a few speakers each, labels that depend on the embedding."""
    rng = np.random.default_rng(seed)
    rows = []
    for corpus, speakers, labels in (("a", 6, [0, 1, 2]), ("b", 4, [0, 1, 3]), ("c", 5, [0, 1])):
        for s in range(speakers):
            for i in range(12):
                rows.append((corpus, f"{corpus}:{s}", labels[i % len(labels)]))
    corpus = np.asarray([r[0] for r in rows])
    spk = np.asarray([r[1] for r in rows])
    y = np.asarray([r[2] for r in rows], np.int64)
    x = rng.normal(size=(len(rows), 16)).astype(np.float32)
    x[np.arange(len(rows)), y] += 3.0
    return SpeechData(x, y, spk, corpus)


def test_loco_never_trains_on_the_held_out_corpus(monkeypatch):
    data = synthetic()
    seen: list[set[str]] = []
    real_fit = speech.fit_expert

    def spy(d: SpeechData, *a, **k):
        seen.append(set(d.corpus.tolist()))
        return real_fit(d, TrainConfig(hidden=0, epochs=3, patience=2))

    monkeypatch.setattr(speech, "fit_expert", spy)
    for held in ("a", "b", "c"):
        train, test = loco_split(data, held)
        assert not (train & test).any() and (train | test).all()
        assert set(data.corpus[test]) == {held} and held not in set(data.corpus[train])
        score = speech.loco_uar(data, held)
        assert 0.0 <= score <= 1.0
        assert seen[-1] == {"a", "b", "c"} - {held}


def test_grouped_cv_keeps_test_speakers_out_of_training(monkeypatch):
    data = synthetic()
    trained_on: list[set[str]] = []
    real_fit = speech.fit_expert

    def spy(d: SpeechData, *a, **k):
        trained_on.append(set(d.speaker.tolist()))
        return real_fit(d, TrainConfig(hidden=0, epochs=2, patience=1))

    monkeypatch.setattr(speech, "fit_expert", spy)
    rows = data.corpus == "a"
    folds = speaker_folds(data.speaker[rows], 3)
    speech.grouped_cv_uar(data, "a", folds)
    for f, spk in zip(range(3), trained_on):
        test_speakers = set(data.speaker[rows][folds == f])
        assert test_speakers and not test_speakers & spk
        assert {"b:0", "c:0"} <= spk  # the new recipe adds the other corpora


def with_copies(data: SpeechData) -> SpeechData:
    """``data`` plus one copy of every row (same label, same speaker), marked as copies."""
    both = np.concatenate
    return SpeechData(both([data.X, data.X + 0.1]), both([data.y, data.y]),
                      both([data.speaker, data.speaker]), both([data.corpus, data.corpus]),
                      both([np.zeros(len(data.y), bool), np.ones(len(data.y), bool)]))


def test_copies_train_but_are_never_scored_nor_cross_a_split(monkeypatch):
    data = with_copies(synthetic())
    assert data.rows(data.original).copy.sum() == 0 and synthetic().copy.sum() == 0
    for held in ("a", "b", "c"):
        train, test = loco_split(data, held)
        assert not data.copy[test].any() and test.sum() == (synthetic().corpus == held).sum()
        assert held not in set(data.corpus[train]) and data.copy[train].any()
    fits: list[SpeechData] = []
    scored: list[int] = []
    real_fit, real_uar = speech.fit_expert, speech.head_uar

    def spy_fit(d: SpeechData, *a, **k):
        fits.append(d)
        return real_fit(d, TrainConfig(hidden=0, epochs=2, patience=1))

    def spy_uar(head, X, y):
        scored.append(len(y))
        return real_uar(head, X, y)

    monkeypatch.setattr(speech, "fit_expert", spy_fit)
    monkeypatch.setattr(speech, "head_uar", spy_uar)
    rows = (data.corpus == "a") & data.original
    folds = speaker_folds(data.speaker[rows], 3)
    speech.grouped_cv_uar(data, "a", folds)
    assert sum(scored) == rows.sum()  # every original clip of "a" once, no copy
    for f, d in zip(range(3), fits):
        test_speakers = set(data.speaker[rows][folds == f])
        assert not test_speakers & set(d.speaker.tolist())  # their copies stay out too
        assert d.copy.any()  # the other speakers' copies train


def test_speed_copies_line_up_with_their_originals(monkeypatch, tmp_path):
    """load_speech_data pairs each copy with the original it was made from (nEMO: every 3rd),
    keeps a copy only where both are available, and gives it the original's label and
    speaker."""
    from multimodal_emotion.training import audio, speed_perturb

    n = {"big": 10, "small": 4}

    def corpus(name, encoder, root, every=1, progress=True):
        i = np.arange(n[name])[::every]
        return {"X": i[:, None].astype(np.float32), "available": i != 6,
                "label7": i % 3, "speaker": np.asarray([f"{name}:{k % 2}" for k in i])}

    def copies(name, speed, encoder, root, every=1):
        i = np.arange(n[name])[::every]
        return {"X": (i[:, None] + speed).astype(np.float32), "available": i != 3}

    monkeypatch.setattr(audio, "embed_speech_corpus", corpus)
    monkeypatch.setattr(speed_perturb, "embed_speed_copies", copies)
    monkeypatch.setattr(speed_perturb, "SPEED_EVERY", {"big": 3})
    d = speech.load_speech_data(tmp_path, encoder=object(), corpora=("big", "small"),
                                speeds=(0.5,))
    src = np.rint(d.X[:, 0] - np.where(d.copy, 0.5, 0.0)).astype(int)  # the original's index
    assert not d.copy[d.corpus == "big"][:9].any()  # originals first, 6 not available
    assert sorted(src[(d.corpus == "big") & d.copy]) == [0, 9]  # every 3rd, 3 and 6 dropped
    assert sorted(src[(d.corpus == "small") & d.copy]) == [0, 1, 2]
    assert np.array_equal(d.y, src % 3)
    assert np.array_equal(d.speaker, np.char.add(np.char.add(d.corpus, ":"),
                                                 (src % 2).astype(str)))
    none = speech.load_speech_data(tmp_path, encoder=object(), corpora=("big",), speeds=())
    assert not none.copy.any() and len(none.y) == 9


def _corpora_with_offsets(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three corpora, two classes told apart along dim 0; each corpus shifted along its own
    direction in dims 1-2, and its class mix uneven (corpus a is mostly class 1)."""
    rng = np.random.default_rng(seed)
    xs, ys, gs = [], [], []
    for g, (shift, share) in {"a": ((3.0, 0.0), 0.8), "b": ((0.0, 3.0), 0.5),
                              "c": ((-3.0, -3.0), 0.3)}.items():
        y = (rng.random(300) < share).astype(np.int64)
        x = rng.normal(size=(300, 6))
        x[:, 0] += 2.0 * y
        x[:, 1:3] += shift
        xs.append(x), ys.append(y), gs.append(np.full(300, g))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys), np.concatenate(gs)


def test_group_offset_directions_span_the_corpus_means_not_their_class_mix():
    x, y, g = _corpora_with_offsets()
    u = group_offset_directions(x.astype(np.float64), y, g)
    assert u.shape == (6, 2)  # three corpora: two directions
    assert np.allclose(u.T @ u, np.eye(2), atol=1e-9)
    # the offsets live in dims 1-2; the class direction (dim 0) is not taken with them even
    # though corpus a holds more of class 1 than c does (means of per-class means; plain
    # corpus means would tilt the directions towards dim 0 by about 0.1)
    assert np.linalg.norm(u[[1, 2]], axis=0).min() > 0.99 and np.abs(u[0]).max() < 0.05


def test_a_probe_fitted_without_the_corpus_offsets_is_blind_to_them():
    x, y, g = _corpora_with_offsets()
    cfg = LinearConfig(C=1.0, remove_group_offsets=True)
    head = fit_linear_head(x, y, 7, cfg, groups=g)
    # a new corpus, shifted somewhere in the plane the training corpora's offsets span (in the
    # probe's standardised units, where the directions are found)
    u = group_offset_directions((x - head.norm.mean.numpy()) / head.norm.std.numpy(), y, g)
    moved = x[:20] + (u @ np.array([4.0, -3.0])) * head.norm.std.numpy()
    assert np.allclose(predict_proba(head, moved), predict_proba(head, x[:20]), atol=1e-5)
    assert (predict_proba(head, x).argmax(1) == y).mean() > 0.8  # the class signal is kept
    kept = fit_linear_head(x, y, 7, LinearConfig(C=1.0), groups=g)  # the option off
    assert not np.allclose(predict_proba(kept, moved), predict_proba(kept, x[:20]), atol=1e-3)
    # no groups given, or one group: nothing to remove, the plain fit
    one = fit_linear_head(x, y, 7, cfg, groups=np.full(len(y), "a"))
    plain = fit_linear_head(x, y, 7, cfg)
    assert np.allclose(predict_proba(one, x), predict_proba(plain, x), atol=1e-6)


def test_linear_probe_with_block_norm_ignores_a_recordings_gain_and_offset():
    data = synthetic()
    head = fit_linear_head(data.X, data.y, 7, LinearConfig(C=1.0, utterance_blocks=4))
    assert head.spec() == {"hidden": 0, "input_dropout": 0.0, "utterance_blocks": 4}
    x = data.X[:6].copy()
    louder = x.copy()
    louder[:, :4] = louder[:, :4] * 5.0 + 3.0  # one block, another level and offset
    assert np.allclose(predict_proba(head, louder), predict_proba(head, x), atol=1e-4)
    plain = fit_linear_head(data.X, data.y, 7, LinearConfig(C=1.0))
    assert "utterance_blocks" not in plain.spec()
    assert not np.allclose(predict_proba(plain, louder), predict_proba(plain, x), atol=1e-2)
    # it learnt: the label signal survives the normalisation
    assert (predict_proba(head, data.X).argmax(1) == data.y).mean() > 0.8


def test_speed_change_moves_tempo_and_pitch_together():
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 200.0 * t).astype(np.float32)
    for speed in (0.9, 1.1):
        out = speed_changed(tone, speed)
        assert out.dtype == np.float32
        assert abs(out.size - sr / speed) <= 1  # 1 s played faster is shorter
        spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
        peak_hz = np.argmax(spectrum) * sr / out.size
        assert abs(peak_hz - 200.0 * speed) < 2.0  # and higher


def test_speaker_folds_are_whole_speakers_of_similar_size():
    spk = np.asarray(["x"] * 10 + ["y"] * 6 + ["z"] * 5 + ["w"] * 4 + ["v"] * 1)
    folds = speaker_folds(spk, 2)
    for s in np.unique(spk):
        assert len(set(folds[spk == s])) == 1
    # greedy, largest first: x | y, z | w -> fold 0 | v -> fold 1
    assert np.bincount(folds).tolist() == [14, 12]
    assert speaker_folds(spk[:10], 4).tolist() == [0] * 10  # capped at one speaker


def test_validation_holds_out_whole_speakers_of_every_corpus_but_never_a_corpus():
    data = synthetic()
    val = validation_speakers(data)
    for c in ("a", "b", "c"):
        m = data.corpus == c
        assert val[m].any() and not val[m].all()
    assert not set(data.speaker[val]) & set(data.speaker[~val])
    one = SpeechData(data.X[:12], data.y[:12], data.speaker[:12], data.corpus[:12])
    assert not validation_speakers(one).any()  # a single speaker cannot be split


def test_cell_weights_give_each_corpus_class_cell_the_same_total():
    corpus = np.asarray(["big"] * 90 + ["big"] * 10 + ["small"] * 5)
    y = np.asarray([0] * 90 + [1] * 10 + [0] * 5)
    w = cell_weights(corpus, y)
    totals = [w[(corpus == c) & (y == k)].sum() for c, k in (("big", 0), ("big", 1),
                                                             ("small", 0))]
    assert np.allclose(totals, 1.0)
    share = np.where(np.arange(len(y)) % 2 == 0, 0.5, 1.0)  # e.g. short crops at half weight
    w = cell_weights(corpus, y, share)
    totals = [w[(corpus == c) & (y == k)].sum() for c, k in (("big", 0), ("big", 1),
                                                             ("small", 0))]
    assert np.allclose(totals, 1.0) and np.isclose(w[0] / w[1], 0.5)


def test_restricted_argmax_answers_only_labels_the_corpus_has():
    proba = np.asarray([[0.1, 0.2, 0.0, 0.0, 0.7], [0.5, 0.1, 0.3, 0.1, 0.0]])
    assert restricted_predict(proba, [0, 1, 2]).tolist() == [1, 0]
    assert restricted_predict(proba, np.asarray([2, 4, 4])).tolist() == [4, 2]


# ---------------------------------------------------------------------- per-utterance norm


def test_utterance_norm_depends_on_the_utterance_alone():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(5, 12)), dtype=torch.float32)
    norm = UtteranceNorm(3)
    out = norm(x)
    other = x.clone()
    other[1:] = other[1:] * 100 + 7  # change every other clip
    assert torch.allclose(norm(other)[0], out[0])
    assert torch.allclose(norm(x[:1])[0], out[0])  # alone or in a batch: the same
    # a gain and an offset on one block (a studio's level) leave that block's output unchanged
    shifted = x.clone()
    shifted[:, 4:8] = shifted[:, 4:8] * 3.0 + 2.0
    assert torch.allclose(norm(shifted), out, atol=1e-5)
    blocks = out.reshape(5, 3, 4)
    assert torch.allclose(blocks.mean(-1), torch.zeros(5, 3), atol=1e-5)
    assert torch.equal(UtteranceNorm(0)(x), x)


def test_trained_head_scores_an_utterance_the_same_whatever_else_is_scored():
    data = synthetic()
    head = train_head(data.X, data.y, 7, config=TrainConfig(hidden=8, epochs=3,
                                                             utterance_blocks=4))
    alone = predict_proba(head, data.X[:1])
    crowd = np.concatenate([data.X[:1], data.X[1:] * 50.0])
    assert np.allclose(predict_proba(head, crowd)[:1], alone, atol=1e-6)
    with pytest.raises(ValueError):
        ClassifierHead(10, 7, utterance_blocks=3)


def test_loudness_normalisation_is_per_utterance_gain():
    rng = np.random.default_rng(0)
    quiet = (0.01 * rng.normal(size=16000)).astype(np.float32)
    loud = quiet * 30.0
    for wave in (quiet, loud):
        out = normalize_loudness(wave, -20.0)
        assert abs(active_level_dbfs(out) - (-20.0)) < 1e-3
    assert np.allclose(normalize_loudness(quiet, -20.0), normalize_loudness(loud, -20.0),
                       atol=1e-5)


def test_trim_silence_drops_only_the_quiet_ends():
    rng = np.random.default_rng(1)
    speech = (0.1 * rng.normal(size=16000)).astype(np.float32)  # 1 s, loud
    room = (1e-4 * rng.normal(size=8000)).astype(np.float32)    # 0.5 s, 60 dB down
    pause = np.zeros(3200, np.float32)                           # 0.2 s inside the speech
    wave = np.concatenate([room, speech, pause, speech, room])
    out = trim_silence(wave, 35.0, margin_s=0.1)
    # both ends go, except the 0.1 s margin; the pause inside the speech stays
    assert abs(out.size - (2 * 16000 + 3200 + 2 * 1600)) <= 320
    assert np.array_equal(out[1600:1600 + 16000], speech)
    # nothing quiet at the ends: unchanged; a level change within the threshold: unchanged
    assert np.array_equal(trim_silence(speech, 35.0), speech)
    assert trim_silence(np.concatenate([speech * 0.1, speech]), 35.0).size == 32000
    # the gain of the recording does not move the cut
    assert np.allclose(trim_silence(wave * 50, 35.0), trim_silence(wave, 35.0) * 50)


def test_trimmed_pieces_cover_only_the_kept_audio():
    from faster_whisper.feature_extractor import FeatureExtractor

    rng = np.random.default_rng(2)
    speech = (0.1 * rng.normal(size=16000)).astype(np.float32)
    wave = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(16000, np.float32)])
    fe = FeatureExtractor()
    (_, n_all), = whisper_pieces(fe, wave, 5.0)
    (mel, n_trim), = whisper_pieces(fe, wave, 5.0, -20.0, trim_db=35.0)
    assert n_all == 150 and n_trim == 60  # 3 s -> 1 s of speech + 2 x 0.1 s margin
    assert mel.shape[1] == 500  # still padded to 5 s


# ---------------------------------------------------------------------- model folder


def test_written_audio_expert_round_trips_and_leaves_the_rest(tmp_path):
    dims = {"audio": 8, "text": 6, "face": 4}
    base = EmotionModel({"dims": dims, "fusions": {"concat": {}, "sum": {}},
                         "default_fusion": "sum", "provenance": {"audio": "old"}})
    base.save_pretrained(tmp_path, dtype="int8")
    before = EmotionModel.from_pretrained(tmp_path).state_dict()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = np.arange(40) % 7
    head = train_head(x, y, 7, config=TrainConfig(hidden=16, epochs=5, utterance_blocks=2))
    write_audio_expert(tmp_path, head, provenance="four corpora", report={"val_uar": 0.5})

    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["dtype"] == "int8"
    assert cfg["experts"]["audio"] == {"hidden": 16, "input_dropout": 0.0, "utterance_blocks": 2}
    assert cfg["provenance"]["audio"] == "four corpora"
    assert json.loads((tmp_path / "training_report.json").read_text())["audio"] == {
        "val_uar": 0.5}
    model = EmotionModel.from_pretrained(tmp_path)
    assert np.allclose(model.expert_proba("audio", x), predict_proba(head, x), atol=0.02)
    after = model.state_dict()
    for k, v in before.items():  # fusions and the other experts are untouched
        if not k.startswith("experts.audio."):
            assert torch.equal(after[k], v), k


# ---------------------------------------------------------------------------- short crops


def test_short_crop_is_a_window_of_the_speech_not_of_the_silence():
    from multimodal_emotion.training.short_crops import short_crop

    rng = np.random.default_rng(0)
    sr = 16000
    quiet, speech_part = 1e-4 * rng.normal(size=sr), 0.3 * rng.normal(size=3 * sr)
    wave = np.concatenate([quiet, speech_part, quiet]).astype(np.float32)
    lengths = []
    for seed in range(20):
        crop = short_crop(wave, seed)
        lengths.append(crop.size / sr)
        assert 0.5 <= crop.size / sr <= 1.5
        start = int(np.flatnonzero(wave == crop[0])[0])
        assert np.array_equal(wave[start:start + crop.size], crop)  # one contiguous window
        assert sr - 320 <= start and start + crop.size <= 4 * sr + 320  # inside the speech
        assert np.array_equal(short_crop(wave, seed), crop)  # the seed fixes it
    assert np.std(lengths) > 0.1  # lengths are drawn, not fixed
    word = np.concatenate([quiet, speech_part[: int(0.3 * sr)], quiet]).astype(np.float32)
    assert abs(short_crop(word, 0).size / sr - 0.3) < 0.05  # shorter speech: all of it


def test_short_crops_train_as_copies_and_are_scored_only_when_asked(monkeypatch, tmp_path):
    """load_speech_data adds each corpus's crops (every CROP_EVERY-th utterance) as copies
    marked short; the protocols score whole recordings unless asked for the crops, and
    train_short=False leaves the crops out of training."""
    from multimodal_emotion.training import audio, short_crops

    n = {"big": 12, "small": 6}

    def corpus(name, encoder, root, every=1, progress=True):
        i = np.arange(n[name])[::every]
        x = np.zeros((len(i), 8), np.float32)
        x[np.arange(len(i)), i % 3] = 3.0
        return {"X": x, "available": np.ones(len(i), bool), "label7": i % 3,
                "speaker": np.asarray([f"{name}:{k % 2}" for k in i])}

    def crops(name, encoder, root, every=1):
        d = corpus(name, encoder, root, every)
        return {"X": d["X"] + 0.5, "available": np.ones(len(d["X"]), bool)}

    monkeypatch.setattr(audio, "embed_speech_corpus", corpus)
    monkeypatch.setattr(short_crops, "embed_short_crops", crops)
    monkeypatch.setattr(short_crops, "CROP_EVERY", {"big": 3})  # both speakers
    d = speech.load_speech_data(tmp_path, encoder=object(), corpora=("big", "small"),
                                speeds=(), crops=True)
    assert (d.short <= d.copy).all() and d.copy.sum() == d.short.sum() == 4 + 6
    assert not speech.load_speech_data(tmp_path, encoder=object(), corpora=("big",),
                                       speeds=(), crops=False).short.any()
    for short in (False, True):
        train, test = loco_split(d, "small", short)
        assert set(d.corpus[test]) == {"small"} and (d.short[test] == short).all()
        assert test.sum() == 6 and "small" not in set(d.corpus[train])
    fits: list[SpeechData] = []
    real_fit = speech.fit_expert

    def spy(data: SpeechData, *a, **k):
        fits.append(data)
        return real_fit(data, TrainConfig(hidden=0, epochs=2, patience=1))

    monkeypatch.setattr(speech, "fit_expert", spy)
    whole, short = speech.loco_uars(d, "small", train_short=False)
    assert not fits[-1].short.any() and 0.0 <= whole <= 1.0 and 0.0 <= short <= 1.0
    speech.loco_uars(d, "small")
    assert fits[-1].short.any()
    rows = (d.corpus == "big") & d.original
    scores = speech.grouped_cv_uars(d, "big", speaker_folds(d.speaker[rows], 2))
    assert len(scores) == 2 and all(len(s) == 2 for s in scores)
