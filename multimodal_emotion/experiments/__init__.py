"""Fusion experiments: compare concat, sum and attention fusion (and each modality alone, and a
classic reference) on real corpora, speaker-independent, with spread over folds and seeds.

    from multimodal_emotion.experiments import load_config, run_experiment
    results = run_experiment(load_config("bench/experiments/ravdess.yaml"), out="results/ravdess")

Pieces: :mod:`.config` (YAML/TOML), :mod:`.data` (modality sources, cached), :mod:`.protocol`
(speaker-disjoint train/val/test), :mod:`.trainer` (one row on one split), :mod:`.metrics`,
:mod:`.report` (tables and figures), :mod:`.runner` (all of it).
"""

from .config import ExperimentConfig, ProtocolConfig, TrainSettings, load_config
from .data import ExperimentData, ModalityData
from .runner import run_experiment

__all__ = ["ExperimentConfig", "ProtocolConfig", "TrainSettings", "ExperimentData",
           "ModalityData", "load_config", "run_experiment"]
