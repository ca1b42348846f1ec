"""The audio expert across speakers, languages and studios: three recipes compared.

A: the RAVDESS-only recipe on the old encoder (Whisper tiny.en layers 1-4, log-mel padded to
10 s, levels as recorded). B: the 4-corpus recipe on that encoder (an MLP early-stopped on
held-out speakers; nEMO every third utterance): an expert shipped before. C: the shipped
recipe (``training.speech``): Whisper base layers 1-4, each utterance scaled to a -20 dBFS
active level, log-mel padded to 5 s, all 4,481 nEMO utterances plus 0.9x and 1.1x speed copies
of the training side (``training.speed_perturb``; never scored), each of the 8 pooled blocks
z-scored within the utterance, and a strongly penalised linear probe. Corpora
(``multimodal_emotion.datasets.speech_corpora``, cached embeddings):
RAVDESS (English, 7 canonical classes, calm merged into neutral, 24 actors), nEMO (Polish,
6 classes, 9 actors), CASIA (Mandarin, 6 classes, 4 speakers), URDU (talk shows, 4 classes,
29 speaker ids).

Protocols, all speaker-independent; an MLP head early-stops on whole held-out speakers of its
own training rows (``training.speech.validation_speakers``), never on test rows:

* within corpus: k folds grouped by speaker (RAVDESS: the data README's 6 folds of 4 actors;
  nEMO 3, CASIA 2, URDU 3 folds, speakers assigned greedily by clip count). The 4-corpus
  recipes train on the other folds *plus the other three corpora*; A on the corpus's RAVDESS
  folds only (it is RAVDESS-only, so on the other corpora every clip is an unseen speaker and
  its figure is its expert refitted on actors 1-20).
* leave-one-corpus-out (LOCO): train on the other three corpora, test on every clip of the
  held-out one.
* argmax is restricted to the labels the scored corpus has (the usual cross-corpus practice:
  a corpus without disgust is neither helped nor hurt by a "disgust" answer); chance UAR is
  1 / that number.

``--select`` first compares heads on C's embeddings by the mean LOCO UAR over the four
folds (the choice is made on it): the previous MLP and the linear probe at several penalties,
cell-balanced or not. ``--ablation`` gives C's LOCO without its speed copies, without its block
z-score, and without both (the expert shipped before them). ``--confusion`` prints, for each
held-out corpus, where the shipped recipe's LOCO answers go (an offset shows as one column);
``--offsets`` gives LOCO with and without the training corpora's offsets projected out of the
probe, and the within-corpus speaker folds with them. ``--short`` scores LOCO and the RAVDESS
folds on short crops (0.5-1.5 s of each held-out utterance's speech, ``training.short_crops``:
the length of a single word) beside the whole recordings, for the recipe without and with such
crops of the training side (``--short-share W``: only the latter, each crop weighted W).

    python bench/speech_corpora.py [--select | --select-only [--select-c C ...]] [--no-previous]
        [--ablation]
        [--levels] [--encoder-time N] [--confusion] [--offsets] [--short [--short-share W]]
        [--ravdess8 | --ravdess8-only] [--data DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.ravdess import ravdess_folds  # noqa: E402
from multimodal_emotion.datasets.speech_corpora import LANGUAGES, SPEECH_CORPORA  # noqa: E402
from multimodal_emotion.heads import TrainConfig, predict_proba, train_head  # noqa: E402
from multimodal_emotion.labels import LABELS  # noqa: E402
from multimodal_emotion.metrics import confusion_matrix, uar  # noqa: E402
from multimodal_emotion.training.audio import default_audio_encoder  # noqa: E402
from multimodal_emotion.training.short_crops import CROP_SECONDS  # noqa: E402
from multimodal_emotion.training.speech import (EXPERT_CONFIG, MLP_CONFIG,  # noqa: E402
                                                PREVIOUS_EVERY, ExpertConfig, SpeechData,
                                                fit_expert, grouped_cv_uar,
                                                grouped_cv_uars, head_uar,
                                                load_speech_data, loco_predictions,
                                                loco_split, loco_uar,
                                                previous_encoder, restricted_predict,
                                                speaker_folds)

WITHIN_FOLDS = {"nemo": 3, "casia": 2, "urdu": 3}
# The shipped RAVDESS-only recipe (training/default_model.py before issue 14): actors 1-20,
# early-stopped on 21-24, inverse-frequency class weights, no per-utterance normalisation.
OLD_CONFIG = TrainConfig(hidden=256, dropout=0.5, epochs=300, patience=30, seed=0)
OLD_VAL_ACTORS = (21, 22, 23, 24)
# The shipped probe without its per-utterance block z-score: the expert before it, which the
# ablation and the silence-trim table (measured before it) run.
UNNORMALISED_CONFIG = replace(EXPERT_CONFIG, utterance_blocks=0)


def folds_of(data: SpeechData, corpus: str) -> np.ndarray:
    """Speaker-grouped folds of ``corpus``'s original rows (RAVDESS: the protocol's actor
    folds); a speaker's speed copies follow the speaker (``grouped_cv_uar``)."""
    spk = data.speaker[(data.corpus == corpus) & data.original]
    if corpus == "ravdess":
        return ravdess_folds([int(s.split(":")[1]) for s in spk])
    return speaker_folds(spk, WITHIN_FOLDS[corpus])


def old_expert(data: SpeechData):
    """The shipped recipe refitted: RAVDESS actors 1-20, stopped on 21-24."""
    rav = data.rows(data.corpus == "ravdess")
    actor = np.asarray([int(s.split(":")[1]) for s in rav.speaker])
    val = np.isin(actor, OLD_VAL_ACTORS)
    return train_head(rav.X[~val], rav.y[~val], len(LABELS), rav.X[val], rav.y[val], OLD_CONFIG)


def with_calm(data: SpeechData, root: Path) -> SpeechData:
    """The same rows with RAVDESS calm as an 8th class (index 7), for the 8-class protocol."""
    from multimodal_emotion.datasets.ravdess import RAVDESS_8_LABELS
    from multimodal_emotion.training.audio import default_audio_encoder, embed_ravdess

    arrays = embed_ravdess(default_audio_encoder(), root)  # same rows, same order (cached)
    calm = arrays["label8"][arrays["available"]] == RAVDESS_8_LABELS.index("calm")
    y = data.y.copy()
    rav = np.where(data.corpus == "ravdess")[0]
    # the originals, then each speed's copies, each block in the originals' order
    blocks = len(rav) // len(calm)
    if blocks * len(calm) != len(rav) or \
            not (data.y[rav].reshape(blocks, -1) == data.y[rav][:len(calm)]).all():
        raise SystemExit("RAVDESS copies do not follow their originals row for row")
    y[rav[np.tile(calm, blocks)]] = len(LABELS)
    return SpeechData(data.X, y, data.speaker, data.corpus, data.copy)


def corpus_uar(head, data: SpeechData, corpus: str) -> float:
    m = (data.corpus == corpus) & data.original
    return head_uar(head, data.X[m], data.y[m])


def fmt(values: list[float]) -> str:
    return f"{np.mean(values) * 100:5.1f} ± {np.std(values) * 100:4.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="data root (default $MER_DATA)")
    ap.add_argument("--select", action="store_true", help="compare normalisations on LOCO first")
    ap.add_argument("--ravdess8", action="store_true",
                    help="also RAVDESS 6-fold with 8 classes (calm apart; an 8-way head)")
    ap.add_argument("--ravdess8-only", action="store_true",
                    help="only the 8-class RAVDESS row (skips the table)")
    ap.add_argument("--levels", action="store_true",
                    help="only the active level (dBFS) of every 20th clip per corpus")
    ap.add_argument("--encoder-time", type=int, default=0, metavar="N",
                    help="only: the previous and the shipped encoder's time per clip on N "
                         "RAVDESS clips (1 thread, after one warm-up clip)")
    ap.add_argument("--select-only", action="store_true", help="only the --select table")
    ap.add_argument("--ablation", action="store_true",
                    help="only: LOCO of the shipped recipe with and without its speed copies and "
                         "its per-utterance block z-score")
    ap.add_argument("--select-c", type=float, nargs="+", default=None, metavar="C",
                    help="only these linear-probe penalties in the --select table")
    ap.add_argument("--offsets", action="store_true",
                    help="only LOCO with and without the corpus offsets projected out, and "
                         "within-corpus UAR with them")
    ap.add_argument("--short", action="store_true",
                    help="the recipe with and without short crops (training.short_crops): "
                         "LOCO and RAVDESS folds on whole recordings and on short crops")
    ap.add_argument("--short-share", type=float, default=None, metavar="W",
                    help="with --short: only the row with crops, each crop weighted W")
    ap.add_argument("--confusion", action="store_true",
                    help="only the shipped recipe's LOCO confusion of each held-out corpus")
    ap.add_argument("--no-previous", action="store_true",
                    help="skip recipe B (the previous shipped expert; its MLP folds are slow)")
    ap.add_argument("--trim-db", type=float, default=None, metavar="DB",
                    help="only: LOCO (and RAVDESS 6-fold) of the shipped recipe against the same "
                         "with leading/trailing silence DB under the active level trimmed")
    ap.add_argument("--nemo-every", type=int, default=1, metavar="N",
                    help="with --trim-db: every N-th nEMO utterance (encoder time)")
    args = ap.parse_args(argv)
    args.select = args.select or args.select_only
    torch.set_num_threads(1)
    t0 = time.time()
    if args.levels:
        levels(args.data or default_data_root())
        return
    if args.encoder_time:
        encoder_time(args.data or default_data_root(), args.encoder_time)
        return
    root = args.data or default_data_root()
    if args.trim_db is not None:
        trim_table(root, args.trim_db, args.nemo_every, t0)
        return
    # recipe C: the shipped encoder, every utterance (--short: with the crops, to score them)
    data = load_speech_data(root, crops=True if args.short else None)
    n_labels = {c: len(np.unique(data.y[data.corpus == c])) for c in SPEECH_CORPORA}
    print("rows:", {c: int(((data.corpus == c) & data.original).sum()) for c in SPEECH_CORPORA},
          "speed copies (training only):",
          {c: int(((data.corpus == c) & data.copy & ~data.short).sum()) for c in SPEECH_CORPORA},
          "speakers:", {c: len(np.unique(data.speaker[data.corpus == c])) for c in SPEECH_CORPORA},
          "labels:", n_labels, flush=True)

    if args.ravdess8_only:
        ravdess8(data, args.data or default_data_root(), t0)
        return
    if args.ablation:
        ablation(data, t0)
        return
    if args.confusion:
        confusion(data, t0)
        return
    if args.offsets:
        offsets(data, t0)
        return
    if args.short:
        short_table(data, t0, args.short_share)
        return
    loco: dict[str, float] = {}
    if args.select:
        print("\n== choice of head: LOCO UAR (%), argmax restricted ==")
        print(f"{'variant':<44}" + "".join(f"{c:>9}" for c in SPEECH_CORPORA) + "     mean")
        variants = [("MLP, early-stopped (the previous head)", MLP_CONFIG, True)]
        variants = variants if args.select_c is None else []
        variants += [(f"linear, C = {c:g}", replace(EXPERT_CONFIG, C=c), True)
                     for c in (args.select_c or (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2))]
        if args.select_c is None:
            variants += [(f"linear, C = {EXPERT_CONFIG.C:g}, class weights only",
                          EXPERT_CONFIG, False)]
        for name, cfg, balance in variants:
            res = {c: loco_uar(data, c, cfg, balance) for c in SPEECH_CORPORA}
            if cfg == EXPERT_CONFIG and balance:
                loco = res
            print(f"{name:<44}" + "".join(f"{res[c] * 100:9.1f}" for c in SPEECH_CORPORA)
                  + f"{np.mean(list(res.values())) * 100:9.1f}", flush=True)
    if args.select_only:
        print(f"{time.time() - t0:.0f} s", flush=True)
        return
    if not loco:
        loco = {c: loco_uar(data, c, EXPERT_CONFIG) for c in SPEECH_CORPORA}

    # the old expert: its recipe on its own encoder's embeddings
    # the previous encoder, nEMO every third (A and B)
    old_data = load_speech_data(root, previous_encoder(), every=PREVIOUS_EVERY, speeds=())
    old = old_expert(old_data)
    old_cross = {c: corpus_uar(old, old_data, c) for c in SPEECH_CORPORA if c != "ravdess"}
    old_rav = grouped_cv_uar(old_data, "ravdess", folds_of(old_data, "ravdess"), OLD_CONFIG,
                             balance=False, others=False)
    new_within = {c: grouped_cv_uar(data, c, folds_of(data, c), EXPERT_CONFIG)
                  for c in SPEECH_CORPORA}
    # the previous shipped expert: the 4-corpus recipe on the old encoder
    nan = [float("nan")]
    prev_within = {c: nan if args.no_previous else
                   grouped_cv_uar(old_data, c, folds_of(old_data, c), MLP_CONFIG)
                   for c in SPEECH_CORPORA}
    prev_loco = {c: nan[0] if args.no_previous else loco_uar(old_data, c, MLP_CONFIG)
                 for c in SPEECH_CORPORA}

    print("\n== UAR (%), speaker-independent; argmax restricted to each corpus's labels ==")
    print(f"{'corpus':<20}{'chance':>7}  {'A within':>13}  {'B within':>13}  {'C within':>13}"
          f"  {'A LOCO':>7}  {'B LOCO':>7}  {'C LOCO':>7}  {'C-chance':>8}  folds")
    for c in SPEECH_CORPORA:
        k = len(np.unique(folds_of(data, c)))
        ow = fmt(old_rav) if c == "ravdess" else f"{old_cross[c] * 100:5.1f} (all)"
        ol = "   -" if c == "ravdess" else f"{old_cross[c] * 100:7.1f}"
        print(f"{c + ' (' + LANGUAGES[c] + ')':<20}{100 / n_labels[c]:7.1f}  {ow:>13}  "
              f"{fmt(prev_within[c]):>13}  {fmt(new_within[c]):>13}  {ol:>7}  "
              f"{prev_loco[c] * 100:7.1f}  {loco[c] * 100:7.1f}  "
              f"{(loco[c] - 1 / n_labels[c]) * 100:+8.1f}  {k}")
    print(f"\nA = the RAVDESS-only recipe (actors 1-20, stopped on 21-24) on the old encoder "
          f"(tiny.en layers 1-4); its RAVDESS cell is the same recipe on the 6 actor folds.\n"
          f"B = the 4-corpus recipe on the old encoder (nEMO every third utterance).\n"
          f"C = the shipped recipe (recipe.ENCODERS['audio'], training.speech: {data.X.shape[1]}-d; "
          f"training rows, originals + speed copies, "
          f"{dict((c, int((data.corpus == c).sum())) for c in SPEECH_CORPORA)}).\n"
          f"{time.time() - t0:.0f} s", flush=True)
    if args.ravdess8:
        ravdess8(data, args.data or default_data_root(), t0)


def ablation(data: SpeechData, t0: float) -> None:
    """LOCO UAR of the shipped recipe without each of its two newest parts, on the same rows."""
    variants = [
        ("originals, no block z-score (the expert before)", data.rows(data.original),
         UNNORMALISED_CONFIG),
        ("originals + block z-score", data.rows(data.original), EXPERT_CONFIG),
        ("speed copies, no block z-score", data, UNNORMALISED_CONFIG),
        ("**speed copies + block z-score (shipped)**", data, EXPERT_CONFIG),
    ]
    loco_table(f"linear probe C = {EXPERT_CONFIG.C:g}, cells balanced",
               "training rows, normalisation", variants)
    print(f"{time.time() - t0:.0f} s", flush=True)


def loco_table(title: str, first_column: str,
               variants: list[tuple[str, SpeechData, ExpertConfig]]) -> None:
    """One markdown row of LOCO UAR (%) per ``(name, rows, config)``, each corpus held out."""
    print(f"\n== LOCO UAR (%), {title}; original recordings scored ==")
    print(f"| {first_column} | " + " | ".join(SPEECH_CORPORA) + " | mean |")
    print("| --- " * (len(SPEECH_CORPORA) + 2) + "|")
    for name, d, cfg in variants:
        res = [loco_uar(d, c, cfg) * 100 for c in SPEECH_CORPORA]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in res) + f" | {np.mean(res):.1f} |",
              flush=True)


def offsets(data: SpeechData, t0: float) -> None:
    """The shipped probe with and without the training corpora's offset directions projected
    out (``heads.group_offset_directions``), on the same rows; then each corpus's speaker folds
    with them."""
    kept = replace(EXPERT_CONFIG, remove_group_offsets=False)
    loco_table(f"linear probe C = {EXPERT_CONFIG.C:g}, speed copies, block z-score, cells "
               f"balanced", "corpus offsets",
               [("kept (the expert before)", data, kept),
                ("**projected out (shipped)**", data, EXPERT_CONFIG)])
    print("\nwithin corpus, speaker folds (the other folds + the other corpora in training), "
          "offsets projected out:")
    for c in SPEECH_CORPORA:
        within = grouped_cv_uar(data, c, folds_of(data, c), EXPERT_CONFIG)
        print(f"{c}: {fmt(within)} ({len(within)} folds)", flush=True)
    print(f"{time.time() - t0:.0f} s", flush=True)


def short_table(data: SpeechData, t0: float, share: float | None = None) -> None:
    """The shipped recipe trained without and with the short crops, each scored on whole
    recordings and on the short crops of the same held-out speakers or corpus; ``share``: only
    the row with crops, each weighted ``share`` of a recording (``short_crops.CROP_SHARE``)."""
    from multimodal_emotion.training import short_crops

    n_crops = {c: int(((data.corpus == c) & data.short).sum()) for c in SPEECH_CORPORA}
    print(f"\nshort crops per corpus {n_crops}, each {CROP_SECONDS[0]:g}-{CROP_SECONDS[1]:g} s "
          f"of its utterance's speech (training.short_crops)")
    print("\n== UAR (%), argmax restricted; LOCO = the corpus held out, RAVDESS = its 6 actor "
          "folds with the other corpora in training ==")
    print("| training side | scored on | " + " | ".join(f"{c} LOCO" for c in SPEECH_CORPORA)
          + " | LOCO mean | RAVDESS 6-fold |")
    print("| --- " * (len(SPEECH_CORPORA) + 4) + "|")
    folds = folds_of(data, "ravdess")
    variants = [("without short crops (shipped)", False), ("with short crops", True)]
    if share is not None:
        short_crops.CROP_SHARE = share
        variants = [(f"with short crops, each weighted {share:g}", True)]
    crowding = []
    for name, train_short in variants:
        loco, top = {}, {}
        for c in SPEECH_CORPORA:  # one expert per held-out corpus, scored both ways
            both = loco_predictions(data, c, EXPERT_CONFIG, train_short=train_short)
            for short, (y, pred) in zip((False, True), both):
                loco[c, short] = uar(y, pred)
                label, n = np.unique(pred, return_counts=True)
                top[c, short] = f"{LABELS[label[n.argmax()]]} {100 * n.max() / len(pred):.0f}"
        crowding.append((name, top))
        ravs = grouped_cv_uars(data, "ravdess", folds, EXPERT_CONFIG, train_short=train_short)
        for short, (scored, rav) in enumerate(zip(("whole recordings", "short crops"), ravs)):
            vals = [loco[c, bool(short)] * 100 for c in SPEECH_CORPORA]
            print(f"| {name} | {scored} | " + " | ".join(f"{v:.1f}" for v in vals)
                  + f" | {np.mean(vals):.1f} | {fmt(rav)} |", flush=True)
    print("\n== LOCO: the most frequent answer on the held-out corpus, % of its clips "
          "(whole recordings / short crops) ==")
    print("| training side | " + " | ".join(SPEECH_CORPORA) + " |")
    print("| --- " * (len(SPEECH_CORPORA) + 1) + "|")
    for name, top in crowding:
        print(f"| {name} | " + " | ".join(f"{top[c, False]} / {top[c, True]}"
                                         for c in SPEECH_CORPORA) + " |")
    print(f"{time.time() - t0:.0f} s", flush=True)


def confusion(data: SpeechData, t0: float) -> None:
    """Where each held-out corpus's clips go: a corpus read with an offset (nEMO as sad, CASIA
    as happy) shows as one column that takes every row, not as scattered errors."""
    for c in SPEECH_CORPORA:
        train, test = loco_split(data, c)
        head = fit_expert(data.rows(train), EXPERT_CONFIG)
        y = data.y[test]
        allowed = np.unique(y)
        pred = restricted_predict(predict_proba(head, data.X[test]), allowed)
        cm = confusion_matrix(y, pred, len(LABELS))[np.ix_(allowed, allowed)]
        names = [LABELS[a] for a in allowed]
        print(f"\n{c} held out: LOCO UAR {uar(y, pred) * 100:.1f} %; % of each true label's "
              f"{len(y)} clips given each label (rows sum to 100)")
        print("| true \\ answered | " + " | ".join(names) + " |")
        print("| --- " * (len(names) + 1) + "|")
        for name, row in zip(names, cm):
            shares = " | ".join(f"{v:.0f}" for v in 100 * row / row.sum())
            print(f"| {name} ({row.sum()}) | {shares} |", flush=True)
    print(f"{time.time() - t0:.0f} s", flush=True)


def trim_table(root: Path, trim_db: float, nemo_every: int, t0: float) -> None:
    """The recipe with and without the silence trim, on the same rows; the recipe as it was when
    this was measured (no speed copies, no block z-score)."""
    every = {"nemo": nemo_every} if nemo_every > 1 else {}
    # the shipped embeddings are cached for every nEMO utterance: take every N-th row of them
    # (every utterance is available, so these are the rows the trimmed run embeds; checked)
    full = load_speech_data(root, speeds=())
    nemo = np.flatnonzero(full.corpus == "nemo")
    keep = np.ones(len(full.y), bool)
    keep[nemo] = False
    keep[nemo[::nemo_every]] = True
    rows: dict[str, tuple[list[float], list[float]]] = {}
    for name, data in (("shipped (no trim)", full.rows(keep)),
                       (f"trim at -{trim_db:g} dB", None)):
        if data is None:
            data = load_speech_data(root, default_audio_encoder(1, trim_db=trim_db), every=every,
                                    speeds=())
            base = full.rows(keep)
            if not (np.array_equal(data.y, base.y) and np.array_equal(data.speaker, base.speaker)):
                raise SystemExit("the trimmed run's rows are not the shipped run's rows")
        loco = [loco_uar(data, c, UNNORMALISED_CONFIG) * 100 for c in SPEECH_CORPORA]
        rav = grouped_cv_uar(data, "ravdess", folds_of(data, "ravdess"),
                             UNNORMALISED_CONFIG)
        rows[name] = (loco, rav)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n== LOCO UAR (%), linear probe C = {EXPERT_CONFIG.C:g}; rows as the shipped recipe"
          f"{'' if not every else f', every {nemo_every}-th nEMO utterance'} ==")
    print(f"{'encoder':<24}" + "".join(f"{c:>9}" for c in SPEECH_CORPORA) + "     mean"
          + "   RAVDESS 6-fold")
    for name, (loco, rav) in rows.items():
        print(f"{name:<24}" + "".join(f"{v:9.1f}" for v in loco) + f"{np.mean(loco):9.1f}"
              + f"   {fmt(rav)}")
    print(f"{time.time() - t0:.0f} s", flush=True)


def encoder_time(root: Path, n: int) -> None:
    """Milliseconds per clip of ``encode_audio`` for the previous encoder and the shipped one (as
    the recognizer builds it: stopped after its last layer), on ``n`` RAVDESS clips spread over
    the corpus, interleaved so both see the same machine load."""
    from multimodal_emotion.datasets.ravdess import load_ravdess, read_audio
    from multimodal_emotion.training.audio import default_audio_encoder

    encoders = {"previous (tiny.en L1-4, 10 s pad)": previous_encoder(),
                "shipped (base L1-4, 5 s pad, -20 dBFS)": default_audio_encoder(final_layer=False)}
    records = load_ravdess(root)
    waves = [read_audio(r.path) for r in records[:: max(1, len(records) // n)][:n]]
    times: dict[str, list[float]] = {k: [] for k in encoders}
    for enc in encoders.values():
        enc.encode_audio(waves[0])
    for w in waves:
        for k, enc in encoders.items():
            t = time.perf_counter()
            enc.encode_audio(w)
            times[k].append((time.perf_counter() - t) * 1000)
    secs = np.mean([len(w) / 16000 for w in waves])
    print(f"| encoder | ms per clip: median (mean) | clips of {secs:.1f} s on average |")
    print("| --- | --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {np.median(v):.0f} ({np.mean(v):.0f}) | {len(v)} |")


def levels(root: Path, step: int = 20) -> None:
    """Each corpus's active level (``encoders.audio_features.active_level_dbfs``: the 95th
    percentile of 20 ms RMS) over every ``step``-th clip: what loudness normalisation removes."""
    from multimodal_emotion.datasets.ravdess import read_audio
    from multimodal_emotion.datasets.speech_corpora import load_speech_corpus
    from multimodal_emotion.encoders.audio_features import active_level_dbfs

    print("| corpus | clips | active level, dBFS: 10th / 50th / 90th percentile |")
    print("| --- | --- | --- |")
    for c in SPEECH_CORPORA:
        lv = [active_level_dbfs(read_audio(r.path)) for r in load_speech_corpus(c, root)[::step]]
        p10, p50, p90 = np.percentile(lv, [10, 50, 90])
        print(f"| {c} | {len(lv)} | {p10:.1f} / {p50:.1f} / {p90:.1f} |", flush=True)


def ravdess8(data: SpeechData, root: Path, t0: float) -> None:
    """RAVDESS's 6 actor folds with 8 classes, an 8-way head: recipe A on the shipped
    encoder's embeddings, recipe C on ``data`` (the shipped one's)."""
    d8 = with_calm(data, root)
    old8d = with_calm(load_speech_data(root, previous_encoder(), every=PREVIOUS_EVERY,
                                       speeds=()), root)
    old8 = grouped_cv_uar(old8d, "ravdess", folds_of(old8d, "ravdess"), OLD_CONFIG,
                          balance=False, others=False, n_classes=8)
    new8 = grouped_cv_uar(d8, "ravdess", folds_of(d8, "ravdess"), EXPERT_CONFIG,
                          n_classes=8)
    print(f"\nRAVDESS 6-fold, 8 classes (calm apart): A {fmt(old8)}, C {fmt(new8)}; "
          f"chance 12.5\n{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
