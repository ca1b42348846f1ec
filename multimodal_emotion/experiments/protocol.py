"""Speaker-independent splits: who trains, who stops training, who is tested.

Three disjoint sets of *speakers* per run. Test speakers come from the protocol (a fold, or the
corpus's own test split) and are never seen before scoring; validation speakers, which decide
early stopping and any model choice, are drawn from the training speakers only, anew per seed.
:func:`check_split` asserts all of that and every run passes through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .config import ProtocolConfig
from .data import ExperimentData


@dataclass(frozen=True)
class Split:
    fold: int
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def name(self) -> str:
        return f"fold{self.fold}-seed{self.seed}"


def speaker_folds(groups: np.ndarray, k: int) -> np.ndarray:
    """Fold index per item: speakers sorted, then dealt round-robin into ``k`` folds."""
    speakers = sorted(set(groups.tolist()))
    if len(speakers) < k:
        raise InputError(f"{len(speakers)} speakers cannot make {k} speaker-independent folds")
    of = {s: i % k for i, s in enumerate(speakers)}
    return np.asarray([of[g] for g in groups.tolist()])


def _val_speakers(train_groups: np.ndarray, amount: float, rng: np.random.Generator
                  ) -> np.ndarray:
    speakers = np.asarray(sorted(set(train_groups.tolist())))
    n = int(round(amount * len(speakers))) if amount < 1 else int(amount)
    n = min(max(n, 1), len(speakers) - 1)
    if n < 1:
        raise InputError("need at least two training speakers to hold one out for validation")
    return rng.choice(speakers, n, replace=False)


def make_splits(data: ExperimentData, protocol: ProtocolConfig, seeds: list[int]
                ) -> list[Split]:
    """Every (fold, seed) run of the protocol, in order."""
    idx = np.arange(len(data.y))
    splits = []
    if protocol.kind == "given":
        if data.split is None:
            raise InputError(f"{data.name} has no given train/test split; use speaker-kfold")
        outer = [(0, idx[data.split == "train"], idx[data.split == "test"])]
    else:
        fold = data.fold if data.fold is not None else speaker_folds(data.groups,
                                                                     protocol.folds)
        if data.fold is not None and int(fold.max()) + 1 != protocol.folds:
            raise InputError(f"{data.name} has its own {int(fold.max()) + 1} speaker folds; "
                             f"set protocol.folds to that")
        outer = [(f, idx[fold != f], idx[fold == f]) for f in range(protocol.folds)]
    for f, train_all, test in outer:
        for seed in seeds:
            rng = np.random.default_rng([seed, f])
            val_spk = _val_speakers(data.groups[train_all], protocol.val_speakers, rng)
            is_val = np.isin(data.groups[train_all], val_spk)
            split = Split(f, seed, train_all[~is_val], train_all[is_val], test)
            check_split(data, split)
            splits.append(split)
    return splits


def check_split(data: ExperimentData, split: Split) -> None:
    """Raise unless train, validation and test are non-empty and share no item or speaker."""
    sets = {"train": split.train, "val": split.val, "test": split.test}
    for name, rows in sets.items():
        if len(rows) == 0:
            raise InputError(f"{split.name}: empty {name} set")
    spk = {k: set(data.groups[v].tolist()) for k, v in sets.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if spk[a] & spk[b]:
            raise AssertionError(f"{split.name}: speakers in both {a} and {b}: "
                                 f"{sorted(spk[a] & spk[b])[:5]}")
