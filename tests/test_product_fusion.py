"""The default fusion (a product of calibrated experts), calibration, Shapley explanations and
business label maps: exact properties, checked on small models and real-shaped numbers."""

import json

import numpy as np
import pytest
import torch

from multimodal_emotion.calibration import ExpertCalibration, expected_calibration_error, \
    fit_temperature, label_prior
from multimodal_emotion.errors import InputError, ModelError
from multimodal_emotion.explain import modality_shapley, shapley_values, word_occlusion
from multimodal_emotion.fusion import FUSIONS, keeps_single_modality
from multimodal_emotion.fusion.product import combine, fit_weights
from multimodal_emotion.label_maps import LabelMap, load_label_map
from multimodal_emotion.labels import LABELS
from multimodal_emotion.model import EmotionModel

DIMS = {"audio": 12, "text": 8, "face": 6}
SUBSETS = [("audio",), ("text",), ("face",), ("audio", "text"), ("audio", "face"),
           ("text", "face"), ("audio", "text", "face")]


def model(weights=None, calibration=None, seed=0):
    torch.manual_seed(seed)
    m = EmotionModel({"dims": DIMS, "experts": {k: {"hidden": 0} for k in DIMS},
                      "fusions": {"product": {"weights": weights or {}}, "sum": {}},
                      "calibration": calibration})
    for p in m.parameters():  # random, confident experts
        torch.nn.init.normal_(p, std=2.0)
    return m.eval()


def embeddings(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=d).astype(np.float32) for k, d in DIMS.items()}


CAL = {"temperature": {"audio": 2.0, "text": 0.7, "face": 1.3},
       "train_prior": {"text": [0.47, 0.17, 0.07, 0.11, 0.03, 0.03, 0.12]}}


@pytest.mark.parametrize("weights", [None, {"audio": 0.3, "text": 2.5, "face": 0.8}])
@pytest.mark.parametrize("only", list(DIMS))
def test_one_modality_gives_exactly_that_experts_answer(only, weights):
    m = model(weights, CAL)
    emb = embeddings()
    fused, experts = m.predict(emb, {k: k == only for k in DIMS})
    assert experts[only] is not None and all(experts[k] is None for k in DIMS if k != only)
    np.testing.assert_allclose(fused, experts[only], atol=1e-5)
    assert abs(fused.sum() - 1) < 1e-5


def test_no_modality_gives_no_answer():
    fused, experts = model(None, CAL).predict(embeddings(), {k: False for k in DIMS})
    assert fused is None and all(v is None for v in experts.values())


def test_two_agreeing_experts_are_surer_than_either_and_weights_matter():
    lt = torch.log(torch.full((7,), 1 / 7))
    q = torch.log(torch.tensor([[0.1, 0.6, 0.05, 0.05, 0.05, 0.1, 0.05]] * 3))[None]
    mask = torch.tensor([[True, True, False]])
    both = combine(q, mask, lt, torch.ones(3)).exp()[0]
    assert both[1] > 0.6 and abs(both.sum() - 1) < 1e-6
    damped = combine(q, mask, lt, torch.tensor([0.5, 0.5, 1.0])).exp()[0]
    np.testing.assert_allclose(damped, q[0, 0].exp(), atol=1e-6)  # two halves = one expert
    assert torch.isnan(combine(q, torch.zeros(1, 3, dtype=torch.bool), lt, torch.ones(3))).all()


def test_prior_correction_removes_a_trained_in_bias():
    """A text head trained where 47 % is neutral says 'neutral' too easily; corrected to a
    uniform target, evidence equal to its training prior says nothing."""
    cal = ExpertCalibration(LABELS, {}, {"text": CAL["train_prior"]["text"]})
    logits = torch.log(torch.tensor(CAL["train_prior"]["text"]))
    q = cal.log_proba("text", logits).exp()
    np.testing.assert_allclose(q.numpy(), np.full(7, 1 / 7), atol=1e-5)


def test_prior_power_undoes_exactly_the_bias_a_head_learned():
    """A head whose logits carry 0.6 x log(train prior) on top of the evidence: the fitted
    correction strength is about 0.6, and a strength of 0 leaves the head as it is."""
    from multimodal_emotion.calibration import fit_prior_power

    rng = np.random.default_rng(0)
    prior = np.array([0.4, 0.3, 0.15, 0.1, 0.03, 0.01, 0.01])
    y = rng.integers(0, 7, 6000)  # balanced held-out rows
    evidence = rng.normal(size=(6000, 7))
    evidence[np.arange(6000), y] += 2.0
    logits = evidence + 0.6 * np.log(prior)
    b = fit_prior_power(logits, y, prior.tolist())
    assert 0.5 < b < 0.7
    cal = ExpertCalibration(LABELS, {}, {"face": prior.tolist()}, prior_power={"face": 0.0})
    z = torch.as_tensor(logits[:5], dtype=torch.float32)
    np.testing.assert_allclose(cal.log_proba("face", z), torch.log_softmax(z, -1), atol=1e-5)
    with pytest.raises(ModelError):
        ExpertCalibration(LABELS, {}, {}, prior_power={"face": 3.0})


def test_temperature_fit_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 7)) * 1.5
    p = torch.softmax(torch.as_tensor(true_logits), -1).numpy()
    y = np.array([rng.choice(7, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # a head three times too sure
    assert 2.6 < t < 3.4
    before = expected_calibration_error(torch.softmax(torch.as_tensor(true_logits * 3), -1)
                                        .numpy(), y)
    after = expected_calibration_error(torch.softmax(torch.as_tensor(true_logits * 3 / t), -1)
                                       .numpy(), y)
    assert after < before / 2


def test_ece_of_a_perfectly_calibrated_and_of_a_wrong_sure_model():
    y = np.zeros(10, int)
    assert expected_calibration_error(np.eye(7)[y], y) == 0
    assert expected_calibration_error(np.eye(7)[np.ones(10, int)], y) == 1


def test_calibration_round_trips_through_a_model_folder(tmp_path):
    m = model({"audio": 0.5}, CAL)
    m.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["calibration"]["temperature"]["audio"] == 2.0
    assert cfg["fusions"]["product"]["weights"]["audio"] == 0.5
    back = EmotionModel.from_pretrained(tmp_path)
    emb = embeddings(3)
    on = {k: True for k in DIMS}
    np.testing.assert_allclose(back.predict(emb, on)[0], m.predict(emb, on)[0], atol=1e-6)


@pytest.mark.parametrize("bad", [{"temperature": {"audio": 0.0}},
                                 {"temperature": {"audio": float("nan")}},
                                 {"train_prior": {"text": [1, 2]}}])
def test_a_broken_calibration_is_a_model_error(bad):
    with pytest.raises(ModelError):
        model(None, bad)


def test_without_calibration_experts_are_the_raw_softmax():
    m = model()
    emb = embeddings()
    _, experts = m.predict(emb, {k: True for k in DIMS})
    raw = m.expert_proba("face", emb["face"][None])[0]
    np.testing.assert_allclose(experts["face"], raw, atol=1e-6)


def test_fitted_weights_damp_redundant_experts():
    """Two copies of one sure, often-wrong expert: the product double-counts them; the fitted
    weights bring the pair back towards one expert's confidence."""
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), y] += 1.2
    lq = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float32), -1)
    log_q = torch.stack([lq, lq, lq], 1)
    mask = torch.tensor([[True, True, False]] * n)
    lt = torch.log(torch.full((7,), 1 / 7))
    w = fit_weights(log_q, mask, torch.as_tensor(y), lt, l2=0.0)
    assert 0.35 < w[0] < 0.65 and 0.35 < w[1] < 0.65
    assert w[2] == 1.0  # never present: left where it started


def test_every_fusion_says_whether_it_keeps_a_lone_experts_answer():
    assert keeps_single_modality("product")
    assert not any(keeps_single_modality(n) for n in FUSIONS if n != "product")


# -- explanations ------------------------------------------------------------------------
def test_shapley_values_of_a_known_game():
    v = {frozenset(): 0, frozenset("a"): 1, frozenset("b"): 2, frozenset("ab"): 6}
    phi = shapley_values(["a", "b"], lambda s: v[frozenset(s)])
    assert phi == pytest.approx({"a": 2.5, "b": 3.5})


@pytest.mark.parametrize("fusion", ["product", "sum"])
@pytest.mark.parametrize("present", [("audio", "text", "face"), ("audio", "face"), ("text",)])
def test_contributions_add_up_to_the_fused_probability(fusion, present):
    m = model(None, CAL)
    avail = {k: k in present for k in DIMS}
    subsets, _ = m.subset_predict(embeddings(1), avail, fusion)
    assert set(map(frozenset, subsets)) == {frozenset(s) for s in SUBSETS if set(s) <= set(present)}
    full = subsets[tuple(k for k in DIMS if k in present)]
    k = int(full.argmax())
    contrib = modality_shapley(k, subsets, 1 / 7, list(DIMS))
    assert sum(contrib.values()) + 1 / 7 == pytest.approx(float(full[k]), abs=1e-6)
    assert all(contrib[mod] == 0 for mod in DIMS if mod not in present)


def test_word_occlusion_finds_the_word_that_carries_the_label():
    def score(texts):  # probability of "angry" rises with the word "furious"
        return np.array([0.8 if "furious" in t else 0.2 for t in texts])

    words = word_occlusion("I am furious about the bill", score, top=2)
    assert words[0] == {"word": "furious", "effect": pytest.approx(0.6)}
    assert word_occlusion("", score) == []


# -- business labels -----------------------------------------------------------------------
SATISFACTION = """
name: satisfaction
labels:
  satisfied: [happy, surprised]
  neutral: [neutral]
  frustrated: [angry, sad, disgust, fear]
"""


def test_label_map_sums_probabilities_into_categories():
    lm = LabelMap.parse(SATISFACTION)
    probs = dict(zip(LABELS, [0.3, 0.1, 0.2, 0.2, 0.1, 0.05, 0.05]))
    out = lm.apply(probs)
    assert out["scheme"] == "satisfaction"
    assert out["probabilities"] == pytest.approx({"satisfied": 0.15, "neutral": 0.3,
                                                  "frustrated": 0.55})
    assert out["label"] == "frustrated"  # though "neutral" is the top single emotion
    arr = lm.apply_array(np.array([list(probs.values())]))
    assert arr.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("text, message", [
    ("labels: {good: [happy]}", "belong to no category"),
    ("labels: {a: [happy, sad], b: [sad, neutral, angry, fearful, disgust, surprised]}",
     "in both"),
    ("labels: {a: [joyous]}", "not one of"),
    ("- just a list", "mapping"),
    ("labels: {a: [happy", "not valid"),
])
def test_a_bad_label_map_says_what_is_wrong(text, message):
    with pytest.raises(InputError, match=message):
        LabelMap.parse(text)


def test_label_map_from_a_file_and_from_json(tmp_path):
    p = tmp_path / "map.yaml"
    p.write_text(SATISFACTION)
    assert load_label_map(str(p)).categories["frustrated"] == ("angry", "sad", "disgust",
                                                               "fearful")
    as_json = json.dumps(LabelMap.parse(SATISFACTION).to_dict())
    assert load_label_map(as_json) == load_label_map(str(p))
    with pytest.raises(InputError):
        load_label_map(str(tmp_path / "missing.yaml"))


def test_label_prior_is_smoothed_frequencies():
    p = label_prior(np.array([0, 0, 1]), 3, smoothing=1.0)
    assert p == pytest.approx([0.5, 1 / 3, 1 / 6])
