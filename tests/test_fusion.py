"""Fusion strategies: shapes, masking semantics, and that training makes them learn."""

import numpy as np
import pytest
import torch

from multimodal_emotion.fusion import FUSIONS, create
from multimodal_emotion.fusion.strategies import pool_sequence
from multimodal_emotion.training.fusion import FusionTrainConfig, ModalityPool, sample_triples, \
    train_fusion, fusion_predict

DIMS = {"audio": 12, "text": 8, "face": 6}
# strategies that map embeddings to logits (``product`` combines experts' answers instead:
# tests/test_product_fusion.py)
LEARNED = sorted(n for n, f in FUSIONS.items() if not getattr(f, "decision_level", False))


def batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, d, generator=g) for m, d in DIMS.items()}


@pytest.mark.parametrize("name", LEARNED)
def test_every_strategy_maps_embeddings_and_mask_to_logits(name):
    f = create(name, dims=DIMS, n_classes=7).eval()
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]]).bool()
    out = f(batch(), mask)
    assert out.shape == (5, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", LEARNED)
def test_a_masked_modality_has_no_influence(name):
    """Whatever numbers sit in a masked slot, the output must not change."""
    f = create(name, dims=DIMS, n_classes=7).eval()
    mask = torch.tensor([[1, 0, 1]] * 3).bool()
    a, b = batch(3, 0), batch(3, 0)
    b["text"] = torch.randn(3, DIMS["text"]) * 100
    assert torch.allclose(f(a, mask), f(b, mask), atol=1e-5)


def test_attention_uses_sequences_and_ignores_invalid_steps():
    f = create("attention", dims=DIMS, n_classes=7, seq_tokens=4).eval()
    mask = torch.ones(2, 3).bool()
    emb = batch(2)
    seq = torch.randn(2, 4, DIMS["audio"])
    valid = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]]).bool()
    base = f(emb, mask, {"audio": (seq, valid)})
    seq2 = seq.clone()
    seq2[:, 2:] = 1e3  # invalid steps
    assert torch.allclose(base, f(emb, mask, {"audio": (seq2, valid)}), atol=1e-5)
    seq3 = seq.clone()
    seq3[:, 0] += 5  # a valid step changes the answer
    assert not torch.allclose(base, f(emb, mask, {"audio": (seq3, valid)}), atol=1e-4)


def test_pool_sequence_keeps_short_sequences_unrepeated():
    out, valid = pool_sequence(torch.arange(6.).reshape(2, 3), 4)
    assert valid.tolist() == [True, True, False, False]
    assert out[:2].tolist() == [[0, 1, 2], [3, 4, 5]] and out[2:].abs().sum() == 0
    out, valid = pool_sequence(torch.arange(8.).reshape(8, 1), 4)
    assert valid.all() and out[:, 0].tolist() == [0.5, 2.5, 4.5, 6.5]


def _pools(seed=0):
    rng = np.random.default_rng(seed)
    pools = {}
    for m, d in DIMS.items():
        y = rng.integers(0, 7, 600)
        x = rng.normal(size=(600, d)).astype(np.float32)
        x[np.arange(600), y % d] += 2.5  # each modality weakly informative on its own
        pools[m] = ModalityPool(x[:450], y[:450], x[450:], y[450:])
    return pools


def test_neutral_text_slots_keep_the_triples_label():
    pools = _pools()
    emb, mask, y, _ = sample_triples(pools, 2000, "train", 0.0, np.random.default_rng(2),
                                     {"text": 0.5})
    text_labels = {tuple(r): c for r, c in zip(pools["text"].x_train, pools["text"].y_train)}
    shown = np.array([text_labels[tuple(r)] for r in emb["text"]])
    emotional = y != 0
    assert 0.4 < (shown[emotional] == 0).mean() < 0.6  # about half show a neutral sentence
    assert ((shown == y) | (shown == 0)).all()  # never another emotion
    audio_labels = {tuple(r): c for r, c in zip(pools["audio"].x_train, pools["audio"].y_train)}
    assert all(audio_labels[tuple(r)] == c for r, c in zip(emb["audio"], y))


def test_triples_share_labels_and_dropout_keeps_one_modality():
    pools = _pools()
    emb, mask, y, _ = sample_triples(pools, 500, "train", 0.6, np.random.default_rng(1))
    assert mask.any(1).all() and (~mask).any()
    for i, m in enumerate(pools):
        assert (emb[m][~mask[:, i]] == 0).all()
    assert set(np.unique(y)) == set(range(7))


@pytest.mark.parametrize("name", LEARNED)
def test_training_beats_chance_and_fusion_beats_one_modality(name):
    torch.manual_seed(0)
    pools = _pools()
    rng = np.random.default_rng(0)
    train = sample_triples(pools, 2000, "train", 0.3, rng)
    val = sample_triples(pools, 500, "val", 0.0, rng)
    f = create(name, dims=DIMS, n_classes=7)
    # late's experts are single linear layers: 10 short epochs need a larger step to get there
    lr = 1e-2 if name == "late" else FusionTrainConfig.lr
    rep = train_fusion(f, train, val, FusionTrainConfig(epochs=10, patience=10, batch_size=128,
                                                        lr=lr))
    assert rep["val_uar"] > 0.6  # chance is 1/7
    emb, mask, y, _ = val
    only_face = mask.copy()
    only_face[:, :2] = False
    acc_all = (fusion_predict(f, emb, mask).argmax(1) == y).mean()
    acc_one = (fusion_predict(f, emb, only_face).argmax(1) == y).mean()
    assert acc_all > acc_one + 0.1


def test_attention_trains_with_sequences_carried_by_the_triples():
    torch.manual_seed(0)
    pools = _pools()
    rng = np.random.default_rng(0)
    for m, p in pools.items():  # sequences: two noisy copies of the embedding, 3 valid of 4
        def seq(x):
            s = np.repeat(x[:, None], 4, 1) + rng.normal(size=(len(x), 4, x.shape[1]))
            return s.astype(np.float32), np.array([[1, 1, 1, 0]] * len(x), bool)
        p.seq_train, p.seq_val = seq(p.x_train), seq(p.x_val)
    train = sample_triples(pools, 1500, "train", 0.3, rng)
    assert set(train[3]) == set(DIMS) and not train[3]["audio"][1][~train[1][:, 0]].any()
    val = sample_triples(pools, 400, "val", 0.0, rng)
    f = create("attention", dims=DIMS, n_classes=7, seq_tokens=4)
    rep = train_fusion(f, train, val, FusionTrainConfig(epochs=6, patience=6, batch_size=128))
    assert rep["val_uar"] > 0.5
    assert not torch.allclose(f.seq_norms["audio"].std, torch.ones(DIMS["audio"]))


def test_late_linear_expert_is_logistic_regression():
    """fit_classifier reaches scikit-learn's multinomial logistic regression optimum (same C,
    balanced class weights, standardised inputs): the same probabilities to 1e-3."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    x = rng.normal(size=(300, 6)) + np.eye(4, 6)[y] * 1.5
    x[y == 0] += 0.5  # unbalanced scale, so the penalty matters
    y[:40] = 3  # unbalanced classes, so the class weights matter
    c = 0.05
    ref = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, tol=1e-8)
    ref.fit(StandardScaler().fit_transform(x), y)
    f = create("late", dims={"audio": 6}, n_classes=4)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.from_numpy(y)
    f.fit_normalisation({"audio": xt}, torch.ones(300, 1, dtype=torch.bool))
    f.norms["audio"].std.copy_(xt.std(0, unbiased=False))  # scikit-learn's population std
    counts = torch.bincount(yt, minlength=4).float()
    f.fit_classifier("audio", xt, yt, l2=1 / (2 * c * 300),
                     class_weight=counts.sum() / (4 * counts))
    f.eval()
    with torch.no_grad():
        ours = f.unimodal_log_proba({"audio": xt}, torch.ones(300, 1, dtype=torch.bool))[:, 0]
    theirs = ref.predict_proba(StandardScaler().fit_transform(x))
    np.testing.assert_allclose(ours.exp().numpy(), theirs, atol=1e-3)


def test_late_calibration_trusts_the_informative_expert_and_skips_absent_ones():
    from multimodal_emotion.fusion.strategies import fit_modality_weights

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (400,), generator=g)
    good = torch.log_softmax(3.0 * torch.nn.functional.one_hot(y, 3).float()
                             + torch.randn(400, 3, generator=g), -1)
    noise = torch.log_softmax(3.0 * torch.randn(400, 3, generator=g), -1)
    mask = torch.ones(400, 2, dtype=torch.bool)
    w = fit_modality_weights(torch.stack([good, noise], 1), mask, y).exp()
    assert w[0] > 0.5 and w[1] < 0.1 * w[0]
    # a modality absent on every row cannot move its weight from where it started
    mask[:, 1] = False
    w = fit_modality_weights(torch.stack([good, noise], 1), mask, y).exp()
    assert w[1] == pytest.approx(1.0)
