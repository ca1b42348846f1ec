"""``mer train``: reproduce the shipped default model from ``../shared/data``.

Order matters and is encoded here: the face CNN first (its embeddings feed everything after),
then embeddings of every corpus through exactly the shipped encoders (cached), expert heads,
the three fusion strategies on synthetic same-label triples, and finally a fused evaluation on
the only truly paired audio-visual clips we have (CREMA-D).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..datasets import default_data_root
from ..errors import InputError
from ..heads import predict_proba
from ..labels import LABELS
from ..metrics import classification_report
from ..model import DEFAULT_MODEL_DIR
from .fusion import FusionTrainConfig, ModalityPool, build_default_model, expert_from_linear, \
    write_training_report
from .recipe import ENCODERS
from .speech import AUDIO_PROVENANCE

AUDIO_VAL_ACTORS = (21, 22, 23, 24)  # fusion's held-out RAVDESS actors (audio pool)
SEQ_TOKENS = 4  # sequence summary tokens per modality for attention fusion
TEXT_SEQ_SUBSET = 16000  # text rows whose token sequences are computed for fusion training
# The winner of bench/text.py's grid for the earlier joint MiniLM head (chosen on a 10% split
# of train, never on dev); bench/text.py --text-encoder still refits a joint head with it.
TEXT_HEAD_GRID = {"hidden": 256, "dropout": 0.5, "input_dropout": 0.1, "class_power": 0.25}
# Each domain head's grid, chosen on the validation rows of the encoder tuning: the spoken
# (MELD) head is judged by weighted-F1, which class weighting hurts; the written (GoEmotions)
# head by macro-F1, which it helps.
TEXT_HEAD_GRIDS = {
    "spoken": [{"hidden": h, "dropout": 0.5, "input_dropout": 0.1, "class_power": p}
               for h in (0, 256) for p in (0.0, 0.25)],
    "written": [{"hidden": h, "dropout": 0.5, "input_dropout": 0.1, "class_power": p}
                for h in (0, 256) for p in (0.25, 0.5)],
}


def train_cli(args: argparse.Namespace) -> int:
    root = Path(args.data) if args.data else default_data_root()
    if not root.exists():
        raise InputError(f"data root {root} not found; pass --data or set MER_DATA")
    out = Path(args.out) if args.out else DEFAULT_MODEL_DIR
    torch.set_num_threads(1)  # small heads: one thread is faster than two fighting
    if args.what in ("all", "face"):
        from .face_cnn import sync_face_expert, train_face_cnn_stages
        from .recipe import FACE_CNN_AVERAGE_STAGES, FACE_CNN_STAGES

        stages = list(FACE_CNN_STAGES)
        if args.epochs:  # --epochs: the first (from scratch) stage's length
            stages[0] = {**stages[0], "epochs": args.epochs}
        train_face_cnn_stages(root, out / "face_cnn", stages, average=FACE_CNN_AVERAGE_STAGES,
                              seed=args.seed,
                              threads=torch.get_num_threads(),
                              labels=getattr(args, "face_labels", "fer2013"),
                              augment=getattr(args, "face_augment", "basic"))
        if args.what == "face" and (out / "model.safetensors").exists():
            # a model folder around it: its face expert is this CNN's head, recalibrated;
            # the fusions are kept (bench/face_fusion_check.py measures that they still suit)
            from .calibration import fit_calibration

            sync_face_expert(out)
            fit_calibration(root, out, ["face"])
    if args.what in ("all", "mfcc-lstm"):
        from .mfcc_lstm import train_mfcc_lstm

        train_mfcc_lstm(root, out / "mfcc_lstm", seed=args.seed)
    if args.what in ("all", "text-encoder"):
        from .text_encoder import train_text_encoder

        torch.set_num_threads(2)  # transformer layers: two threads do help here
        train_text_encoder(root, out / "text_encoder", seed=args.seed,
                           epochs=args.epochs or 3)
        torch.set_num_threads(1)
    if args.what in ("all", "heads"):
        train_heads(root, out, seed=args.seed)
    if args.what == "audio-expert":
        from .speech import train_audio_expert

        report = train_audio_expert(root, out, seed=args.seed)
        print(f"audio expert written into {out}: {report['rows']} rows; held out: "
              f"{report.get('val_uar', report.get('held_out'))}")
    if args.what in ("all", "heads", "audio-expert", "calibration"):
        from .calibration import fit_calibration

        fit_calibration(root, out)  # a new expert needs its temperature refitted
    return 0


def train_heads(root: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """Experts + fusions from cached embeddings; writes config.json, model.safetensors and
    training_report.json into ``out`` and returns the report."""
    t0 = time.time()
    pools, experts, report = {}, {}, {}
    pools["audio"], experts["audio"], report["audio"] = _audio(root, seed)
    pools["text"], experts["text"], report["text"], text_domains = _text(root, out, seed)
    pools["face"], experts["face"], report["face"] = _face(root, out, seed)
    provenance = {
        "audio": AUDIO_PROVENANCE,
        "text": "GoEmotions (Ekman, single-label rows) train + MELD train: LoRA adapters on "
                "the top 3 all-mpnet-base-v2 layers tuned with a written and a spoken head, "
                "then each domain's expert head on the tuned embeddings (spoken: MELD, used "
                "for clip transcripts; written: GoEmotions); chosen on 10% of GoEmotions train "
                "and 10% of MELD train dialogues",
        "face": "FER2013 Training (90% to train the CNN, 10% held out for model selection)",
        "fusion": "synthetic same-label triples (RAVDESS audio x GoEmotions/MELD text x FER2013 "
                  "face) with modality dropout; not a real audio-visual corpus",
    }
    model, fusion_report = build_default_model(pools, experts, ENCODERS, provenance,
                                               FusionTrainConfig(seed=seed),
                                               domain_experts={"text": text_domains},
                                               expert_domains={"text": "spoken"})
    # weight-only int8: ~4 MB instead of 7.6 (float16) or 15 (float32); the heads' fused and
    # expert scores move by less than 0.5 % (test_model checks the round trip)
    model.save_pretrained(out, dtype="int8")
    report.update(fusion_report)
    report["seconds"] = round(time.time() - t0, 1)
    write_training_report(out, report)
    return report


def _audio(root: Path, seed: int):
    """The audio expert on all four speech corpora (``training.speech``); fusion's audio pool
    stays RAVDESS (actors 1-20 / 21-24), the corpus whose clips the synthetic triples pair."""
    from .audio import default_audio_encoder, embed_ravdess, split_offsets
    from .speech import expert_with_report, load_speech_data

    encoder = default_audio_encoder()
    data = embed_ravdess(encoder, root)
    x, y, actor = data["X"], data["label7"], data["actor"]
    val = np.isin(actor, AUDIO_VAL_ACTORS)
    seq = _pooled(split_offsets(data["seq"], data["seq_offsets"]))
    head, report = expert_with_report(load_speech_data(root, encoder), seed)
    return ModalityPool(x[~val], y[~val], x[val], y[val], _rows(seq, ~val), _rows(seq, val)), \
        head, report


def _text(root: Path, out: Path, seed: int):
    """The text expert: one head per domain on the tuned encoder's embeddings. The spoken head
    (MELD train) is ``experts["text"]``, what clip transcripts go through; the written head
    (GoEmotions train) serves written text (``mer evaluate --dataset goemotions``)."""
    from ..recognizer import build_encoder
    from .text import fit_text_expert, joint_training_data, load_text_embeddings
    from .text_encoder import TEXT_DOMAINS, text_validation_rows

    if not (out / ENCODERS["text"]["checkpoint"] / "model.safetensors").exists():
        raise InputError(f"{out / 'text_encoder'} is missing: run `mer train text-encoder` "
                         f"(with the same --out) before `mer train heads`")
    enc = build_encoder("text", ENCODERS["text"], out)  # the tuned adapters in out/text_encoder
    d = joint_training_data(root, enc)
    x, y = d["X"], d["y"].astype(np.int64)
    # the rows the encoder's adapters were selected on: heads choose on them too
    is_val = text_validation_rows(root, d["corpus"], seed)
    heads, chosen = {}, {}
    for c, domain in enumerate(TEXT_DOMAINS):
        heads[domain], chosen[domain] = fit_text_expert(
            root, corpora=(c,), grid=TEXT_HEAD_GRIDS[domain], seed=seed, verbose=False,
            encoder=enc, val=is_val)
    dev: dict[str, Any] = {}
    for name in ("goemotions", "meld"):
        dx, dy = load_text_embeddings(name, "dev", root, enc)
        for domain, head in heads.items():
            rep = classification_report(dy, predict_proba(head, dx).argmax(1), LABELS)
            dev[f"{name} ({domain} head)"] = {"macro_f1": rep["macro_f1"],
                                             "weighted_f1": rep["weighted_f1"],
                                             "accuracy": rep["accuracy"]}
    # Fusion sees a label-stratified subset whose token sequences are computed (one more
    # encoder pass); the pooled embeddings of that subset come from the same pass.
    rng = np.random.default_rng(seed)
    tr, va = np.where(~is_val)[0], np.where(is_val)[0]
    sub_tr = np.sort(rng.permutation(tr)[:TEXT_SEQ_SUBSET])
    sub_va = np.sort(rng.permutation(va)[:TEXT_SEQ_SUBSET // 4])
    texts = _text_corpus(root)
    seq = _text_sequences(enc, [texts[i] for i in np.concatenate([sub_tr, sub_va])])
    n = len(sub_tr)
    pool = ModalityPool(x[sub_tr], y[sub_tr], x[sub_va], y[sub_va],
                        (seq[0][:n], seq[1][:n]), (seq[0][n:], seq[1][n:]))
    return pool, heads["spoken"], {"heads": chosen, "dev": dev}, {"written": heads["written"]}


def _face(root: Path, out: Path, seed: int):
    from ..recognizer import build_encoder
    from .face_cnn import fer2013_face_embeddings

    enc = build_encoder("face", ENCODERS["face"], out)  # exactly the shipped face encoder
    d = fer2013_face_embeddings(root, enc, out / ENCODERS["face"]["checkpoint"], seed)
    x, labels, usage, held = d["X"], d["labels"], d["usage"], d["held"]
    tr_mask = usage == "Training"
    # Fusion must not learn from faces the CNN was fitted on (their embeddings are
    # over-confident), so its face pool is the CNN's held-out 10%: 70% to fit, 30% to stop on.
    xh, yh = x[tr_mask][held], labels[tr_mask][held]
    order = np.random.default_rng(seed).permutation(len(yh))
    cut = int(0.7 * len(yh))
    # A still image is a one-step sequence (its own embedding); videos give one step per face.
    seq = _pooled([row[None] for row in xh])
    a, b = order[:cut], order[cut:]
    pool = ModalityPool(xh[a], yh[a], xh[b], yh[b], _rows(seq, a), _rows(seq, b))
    head = expert_from_linear(enc.model.head[-1])
    test = usage != "Training"
    rep = classification_report(labels[test], predict_proba(head, x[test]).argmax(1), LABELS)
    return pool, head, {"fer2013_test_accuracy": rep["accuracy"], "fer2013_test_uar": rep["uar"]}


def _pooled(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each ``[T, D]`` sequence pooled to ``SEQ_TOKENS`` steps exactly as at inference."""
    from ..fusion.strategies import pool_sequences

    return pool_sequences(seqs, SEQ_TOKENS)


def _rows(seq: tuple[np.ndarray, np.ndarray], idx) -> tuple[np.ndarray, np.ndarray]:
    return seq[0][idx], seq[1][idx]


def _text_corpus(root: Path) -> list[str]:
    """GoEmotions train + MELD train texts, in the order of the cached embeddings."""
    from .text import joint_training_texts

    return joint_training_texts(root)[0]


def _text_sequences(enc, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from ..cache import cached_arrays
    from .text import texts_sha

    def compute() -> dict[str, np.ndarray]:
        from tqdm import tqdm

        seqs, step = [], 1024
        for i in tqdm(range(0, len(texts), step), desc="text token sequences", unit="chunk",
                      mininterval=10):
            seqs += enc.token_sequences(texts[i:i + step])
        s, v = _pooled(seqs)
        return {"seq": s, "valid": v}

    out = cached_arrays("text-seq", {"encoder": enc.config(), "texts": texts_sha(texts),
                                     "tokens": SEQ_TOKENS}, compute)
    return out["seq"], out["valid"]
