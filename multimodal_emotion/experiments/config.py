"""Experiment configs: one YAML or TOML file says what is compared, on what, and how.

A config is plain data (dataclasses below) so the exact settings of a run can be written next to
its results and read back; ``--set key=value`` overrides any field from the command line with a
YAML-parsed value (``--set seeds=[0] --set protocol.folds=3``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError


@dataclass
class ProtocolConfig:
    """``speaker-kfold``: the corpus's own speaker folds (RAVDESS 6 x 4 actors) or ``folds``
    groups of speakers; ``given``: the corpus's own train/test split (CMU-MOSI). Validation for
    early stopping comes from training speakers only: ``val_speakers`` of them (a fraction when
    below 1), drawn per seed."""

    kind: str = "speaker-kfold"
    folds: int = 6
    val_speakers: float = 4


@dataclass
class TrainSettings:
    epochs: int = 80
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 12
    width: int = 256
    dropout: float = 0.3
    modality_dropout: float = 0.2  # chance each modality is masked per training sample
    label_smoothing: float = 0.05
    class_weighted: bool = True
    threads: int = 1
    clip_sigma: float | None = 5.0  # clip standardised inputs (training-set statistics)
    # After early stopping picks the epoch count on the validation speakers, retrain on
    # training + validation speakers for that many epochs (test speakers still unseen).
    refit: bool = True


@dataclass
class ExperimentConfig:
    name: str
    dataset: str
    modalities: dict[str, dict[str, Any]]
    fusions: list[str] = field(default_factory=lambda: ["product", "concat", "sum", "attention",
                                                        "late"])
    fusion_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    unimodal: bool = True
    linear_probe: bool = True  # logistic regression on the concatenated pooled features
    reference: dict[str, Any] = field(default_factory=dict)
    missing_modality: bool = True
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: TrainSettings = field(default_factory=TrainSettings)
    speaker_norm: bool = False
    metric: str = "uar"  # headline metric: ranks strategies and picks the paired test's pair
    seq_tokens: int = 4
    data: str | None = None
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    return yaml.safe_load(text) or {}


def set_field(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise InputError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, value = assignment.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise InputError(f"--set {key}: {p} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config; unknown keys are errors (a typo must not be ignored)."""
    raw = dict(raw)
    try:
        protocol = ProtocolConfig(**raw.pop("protocol", {}))
        train = TrainSettings(**raw.pop("train", {}))
        cfg = ExperimentConfig(protocol=protocol, train=train, **raw)
    except TypeError as exc:
        raise InputError(f"bad experiment config: {exc}") from exc
    for m, spec in cfg.modalities.items():
        if not isinstance(spec, dict) or "source" not in spec:
            raise InputError(f"modality {m!r} needs a 'source' (an encoder or feature name)")
    from ..fusion import FUSIONS

    unknown = [f for f in cfg.fusions if f not in FUSIONS]
    if unknown:
        raise InputError(f"unknown fusion(s) {unknown}; choose from {sorted(FUSIONS)}")
    if cfg.protocol.kind not in ("speaker-kfold", "given"):
        raise InputError("protocol.kind must be 'speaker-kfold' or 'given'")
    from .metrics import SCALARS

    if cfg.metric not in SCALARS:
        raise InputError(f"metric must be one of {SCALARS}")
    if not cfg.seeds:
        raise InputError("seeds must name at least one seed")
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()
                ) -> ExperimentConfig:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such config file")
    try:
        raw = _parse_file(path)
    except Exception as exc:  # yaml / toml syntax errors
        raise InputError(f"{path}: cannot parse ({exc})") from exc
    raw.setdefault("name", path.stem)
    for o in overrides:
        set_field(raw, o)
    return from_dict(raw)
