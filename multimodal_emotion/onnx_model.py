"""The trained part of an exported model folder, on onnxruntime and numpy: no torch.

:class:`OnnxEmotionModel` answers the calls :class:`~.recognizer.EmotionRecognizer` makes of
:class:`~.model.EmotionModel` (``subset_predict``, ``expert_logits``, calibrated expert
probabilities, ...). The expert heads are small ONNX graphs (``heads/<modality>.onnx``); the
calibration (:class:`~.calibration.ExpertCalibration`, numpy methods) and the product fusion
(:func:`product_combine`, a few lines of numpy: the same formula as
:func:`.fusion.product.combine`) are plain numbers from ``config.json``. Only the ``product``
fusion is exported: the learned fusions were trained on synthetic triples and are not the
default (see README, Fusion).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .calibration import ExpertCalibration
from .encoders.onnx_runtime import load_session
from .errors import InputError, ModelError
from .explain import modality_subsets
from .labels import LABELS
from .model_dir import ONNX_FORMAT, read_config

FUSION = "product"


def product_combine(log_q: np.ndarray, mask: np.ndarray, log_target: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """Fused log-probabilities ``[B, C]`` from calibrated expert log-probabilities ``log_q``
    ``[B, M, C]``, ``mask`` ``[B, M]``, the target log-prior ``[C]`` and the modality weights
    ``[M]``: ``log f = log pi + sum_m a_m (log q_m - log pi)``, renormalised, where a lone
    expert always counts once; rows with no modality are NaN."""
    m = mask.astype(np.float32)
    several = (m.sum(1, keepdims=True) >= 2).astype(np.float32)
    a = m * (several * weights[None] + (1 - several))
    z = log_target + (a[..., None] * (log_q - log_target)).sum(1)
    z = z - z.max(-1, keepdims=True)
    out = z - np.log(np.exp(z).sum(-1, keepdims=True))
    out[m.sum(1) == 0] = np.nan
    return out


class OnnxEmotionModel:
    """Expert heads (ONNX) + calibration + product fusion from an exported folder."""

    def __init__(self, config: dict[str, Any], directory: Path, threads: int | None = None
                 ) -> None:
        self.config = config
        self.labels: list[str] = list(config.get("labels", LABELS))
        self.dims: dict[str, int] = {m: int(d) for m, d in config["dims"].items()}
        self.modalities = list(self.dims)
        self.expert_domains: dict[str, str] = dict(config.get("expert_domains", {}))
        self.calibration = ExpertCalibration.from_config(self.labels, config.get("calibration"))
        fcfg = config.get("fusions", {}).get(FUSION)
        if fcfg is None:
            raise ModelError(f"{directory}: an exported folder needs the {FUSION!r} fusion")
        weights = fcfg.get("weights") or {}
        self.weights = np.asarray([float(weights.get(m, 1.0)) for m in self.modalities],
                                  np.float32)
        self.fusions = {FUSION: fcfg}  # the recognizer lists and checks names only
        heads = config.get("onnx", {}).get("heads", {})
        self._heads = {}
        for key, rel in heads.items():  # "audio", "text", "text/written", ...
            self._heads[key] = load_session(directory / rel, threads)
        missing = [m for m in self.modalities if m not in self._heads]
        if missing:
            raise ModelError(f"{directory}: config.json names no ONNX head for {missing}")
        self.directory = directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, threads: int | None = None
                        ) -> "OnnxEmotionModel":
        directory = Path(directory)
        config = read_config(directory)
        if config["format"] != ONNX_FORMAT:
            raise ModelError(f"{directory} is a PyTorch model folder; load it with "
                             "EmotionModel.from_pretrained")
        return cls(config, directory, threads)

    # -- what the recognizer asks ------------------------------------------------------------
    @property
    def default_fusion(self) -> str:
        return FUSION

    @property
    def seq_tokens(self) -> int:
        return 0

    def keeps_single_modality(self, fusion: str | None = None) -> bool:
        return (fusion or FUSION) == FUSION

    def domains(self, modality: str) -> list[str]:
        own = [self.expert_domains[modality]] if modality in self.expert_domains else []
        return own + [k.split("/", 1)[1] for k in self._heads if k.startswith(modality + "/")]

    def _head(self, modality: str, domain: str | None = None) -> Any:
        if domain is None or domain == self.expert_domains.get(modality):
            return self._heads[modality]
        key = f"{modality}/{domain}"
        if key not in self._heads:
            raise InputError(f"the {modality} expert has no {domain!r} head; it has "
                             f"{self.domains(modality) or ['one head, no domains']}")
        return self._heads[key]

    def head_logits(self, modality: str, x: np.ndarray, domain: str | None = None
                    ) -> np.ndarray:
        """Raw logits ``[N, C]`` of a batch of embeddings ``[N, D]``."""
        x = np.ascontiguousarray(np.asarray(x, np.float32).reshape(-1, self.dims[modality]))
        return self._head(modality, domain).run(None, {"x": x})[0]

    def expert_proba(self, modality: str, x: np.ndarray, domain: str | None = None
                     ) -> np.ndarray:
        z = self.head_logits(modality, x, domain)
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    def calibrated_expert_proba(self, modality: str, x: np.ndarray) -> np.ndarray:
        return np.exp(self.calibration.log_proba_array(modality, self.head_logits(modality, x)))

    def expert_logits(self, embeddings: dict[str, np.ndarray], available: dict[str, bool]
                      ) -> dict[str, np.ndarray | None]:
        return {m: (self.head_logits(m, embeddings[m])[0].astype(np.float32)
                    if available.get(m, False) else None) for m in self.modalities}

    def predict(self, embeddings: dict[str, np.ndarray], available: dict[str, bool],
                fusion: str | None = None, sequences: Any = None
                ) -> tuple[np.ndarray | None, dict[str, np.ndarray | None]]:
        present = tuple(m for m in self.modalities if available.get(m, False))
        subsets, experts = self.subset_predict(embeddings, available, fusion, sequences,
                                               subsets=[present] if present else [])
        return subsets.get(present), experts

    def subset_predict(self, embeddings: dict[str, np.ndarray], available: dict[str, bool],
                       fusion: str | None = None, sequences: Any = None,
                       subsets: list[tuple[str, ...]] | None = None
                       ) -> tuple[dict[tuple[str, ...], np.ndarray],
                                  dict[str, np.ndarray | None]]:
        """Fused probabilities for subsets of the available modalities (every non-empty one by
        default, for the Shapley explanation) and the calibrated expert probabilities."""
        if (fusion or FUSION) != FUSION:
            raise InputError(f"fusion {fusion!r} is not in this exported model; it has "
                             f"[{FUSION!r}]")
        present = [m for m in self.modalities if available.get(m, False)]
        log_q = {}
        for m in present:
            vec = np.asarray(embeddings[m], np.float32).reshape(-1)
            if vec.shape[0] != self.dims[m]:
                raise InputError(f"{m} embedding has {vec.shape[0]} values; model expects "
                                 f"{self.dims[m]}")
            log_q[m] = self.calibration.log_proba_array(m, self.head_logits(m, vec))[0]
        experts = {m: (np.exp(log_q[m]) if m in log_q else None) for m in self.modalities}
        subsets = modality_subsets(present, subsets)
        if not subsets:
            return {}, experts
        n = len(self.labels)
        stacked = np.stack([log_q.get(m, np.zeros(n, np.float32)) for m in self.modalities])
        mask = np.asarray([[m in s for m in self.modalities] for s in subsets])
        fused = np.exp(product_combine(np.broadcast_to(stacked, (len(subsets), *stacked.shape)),
                                       mask, self.calibration.log_target_array(), self.weights))
        return {s: fused[i].astype(np.float32) for i, s in enumerate(subsets)}, experts
