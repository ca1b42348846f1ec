"""The trainable part of the pipeline: one expert head per modality and the fusion strategies.

Encoders stay outside (they are big, frozen, and come from other packages); this module holds
what *we* trained on top of their embeddings. A checkpoint is a folder with ``config.json``
(architecture, encoder choices, labels, provenance) and ``model.safetensors`` (tensors only, no
pickle). Encoders with weights of their own (the face CNN) sit in sub-folders of the same shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import fusion as fusion_registry
from .calibration import ExpertCalibration
from .errors import InputError, ModelError
from .explain import modality_subsets
from .fusion.strategies import pool_sequence
from .heads import ClassifierHead
from .labels import LABELS
from .quantization import dequantise, quantise_int8

from .model_dir import DEFAULT_MODEL_DIR, FORMAT  # noqa: F401  (re-exported)


class EmotionModel(nn.Module):
    """Expert heads (``experts[modality]``) and fusion strategies (``fusions[name]``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.labels: list[str] = list(config.get("labels", LABELS))
        self.dims: dict[str, int] = dict(config["dims"])
        self.modalities = list(self.dims)
        n = len(self.labels)
        self.experts = nn.ModuleDict({
            m: ClassifierHead(self.dims[m], n, **config.get("experts", {}).get(m, {}))
            for m in self.modalities
        })
        # A modality may have heads for other input domains on the same embedding: the text
        # expert reads clip transcripts (spoken dialogue, ``expert_domains["text"]``) and has a
        # second head for written text (``domain_experts["text"]["written"]``).
        self.expert_domains: dict[str, str] = dict(config.get("expert_domains", {}))
        self.domain_experts = nn.ModuleDict({
            m: nn.ModuleDict({d: ClassifierHead(self.dims[m], n, **kw)
                              for d, kw in heads.items()})
            for m, heads in config.get("domain_experts", {}).items()
        })
        # How to read each expert's logits (temperature, training prior, target prior): plain
        # numbers in config.json, identity for folders that have none (see ..calibration).
        self.calibration = ExpertCalibration.from_config(self.labels, config.get("calibration"))
        self.fusions = nn.ModuleDict()
        for name, fcfg in config.get("fusions", {}).items():
            kwargs = {k: v for k, v in fcfg.items() if k not in ("name", "dims", "n_classes")}
            self.fusions[name] = fusion_registry.create(name, dims=self.dims, n_classes=n,
                                                        **kwargs)

    @property
    def default_fusion(self) -> str:
        return self.config.get("default_fusion") or next(iter(self.fusions))

    @property
    def seq_tokens(self) -> int:
        att = self.fusions["attention"] if "attention" in self.fusions else None
        return int(getattr(att, "seq_tokens", 0))

    # -- inference -------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, embeddings: dict[str, np.ndarray], available: dict[str, bool],
                fusion: str | None = None,
                sequences: dict[str, np.ndarray | None] | None = None
                ) -> tuple[np.ndarray | None, dict[str, np.ndarray | None]]:
        """Fused probabilities and each available modality's calibrated expert probabilities
        for one clip.

        Returns ``(None, ...)`` when no modality is available: there is nothing to fuse, and
        inventing a distribution would be a fake answer.
        """
        present = tuple(m for m in self.modalities if available.get(m, False))
        subsets, experts = self.subset_predict(embeddings, available, fusion, sequences,
                                               subsets=[present] if present else [])
        return subsets.get(present), experts

    @torch.inference_mode()
    def subset_predict(self, embeddings: dict[str, np.ndarray], available: dict[str, bool],
                       fusion: str | None = None,
                       sequences: dict[str, np.ndarray | None] | None = None,
                       subsets: list[tuple[str, ...]] | None = None
                       ) -> tuple[dict[tuple[str, ...], np.ndarray],
                                  dict[str, np.ndarray | None]]:
        """Fused probabilities for several subsets of the available modalities at once (every
        non-empty subset by default: what an exact Shapley explanation needs; at most 7 rows
        of one small batch), and the calibrated expert probabilities."""
        self.eval()
        name = fusion or self.default_fusion
        if name not in self.fusions:
            raise InputError(f"fusion {name!r} is not in this model; it has {sorted(self.fusions)}")
        emb = {}
        for m in self.modalities:
            vec = np.asarray(embeddings.get(m, np.zeros(self.dims[m])), np.float32).reshape(-1)
            if vec.shape[0] != self.dims[m]:
                raise InputError(f"{m} embedding has {vec.shape[0]} values; model expects "
                                 f"{self.dims[m]}")
            emb[m] = torch.from_numpy(vec)[None]
        present = [m for m in self.modalities if available.get(m, False)]
        log_q = {m: self.calibration.log_proba(m, self.experts[m](emb[m]))[0]
                 for m in present}
        experts = {m: (log_q[m].exp().numpy() if m in log_q else None)
                   for m in self.modalities}
        subsets = modality_subsets(present, subsets)
        if not subsets:
            return {}, experts
        mask = torch.tensor([[m in s for m in self.modalities] for s in subsets])
        fusion_module = self.fusions[name]
        if getattr(fusion_module, "decision_level", False):
            n = len(self.labels)
            stacked = torch.stack([log_q[m] if m in log_q else torch.zeros(n)
                                   for m in self.modalities])
            fused = fusion_module.combine(stacked[None].expand(len(subsets), -1, -1), mask,
                                          self.calibration.log_target()).exp()
        else:
            batch = {m: e.expand(len(subsets), -1) for m, e in emb.items()}
            seqs = self._sequences(name, sequences, len(subsets))
            fused = torch.softmax(fusion_module(batch, mask, seqs), -1)
        return {s: fused[i].numpy() for i, s in enumerate(subsets)}, experts

    def _sequences(self, name: str, sequences: dict[str, np.ndarray | None] | None,
                   batch: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
        if not (sequences and self.seq_tokens and name == "attention"):
            return None
        seqs = {}
        for m, seq in sequences.items():
            if seq is not None and len(seq) and m in self.dims:
                pooled, valid = pool_sequence(torch.as_tensor(seq, dtype=torch.float32),
                                              self.seq_tokens)
                seqs[m] = (pooled[None].expand(batch, -1, -1), valid[None].expand(batch, -1))
        return seqs

    def keeps_single_modality(self, fusion: str | None = None) -> bool:
        """Whether ``fusion`` answers exactly as the lone expert when one modality is there."""
        return bool(getattr(self.fusions[fusion or self.default_fusion],
                            "keeps_single_modality", False))

    def domains(self, modality: str) -> list[str]:
        """The input domains ``modality`` has a head for; the first is the one clips use."""
        own = [self.expert_domains[modality]] if modality in self.expert_domains else []
        extra = list(self.domain_experts[modality]) if modality in self.domain_experts else []
        return own + extra

    def expert_head(self, modality: str, domain: str | None = None) -> nn.Module:
        """The head for ``modality`` text/audio/faces from ``domain`` (``None``: the clip
        head, ``experts[modality]``)."""
        if domain is None or domain == self.expert_domains.get(modality):
            return self.experts[modality]
        if modality in self.domain_experts and domain in self.domain_experts[modality]:
            return self.domain_experts[modality][domain]
        raise InputError(f"the {modality} expert has no {domain!r} head; it has "
                         f"{self.domains(modality) or ['one head, no domains']}")

    @torch.inference_mode()
    def expert_proba(self, modality: str, x: np.ndarray, domain: str | None = None
                     ) -> np.ndarray:
        """One modality's expert probabilities for a batch of embeddings ``[N, D]``, from the
        head for ``domain`` (:meth:`expert_head`)."""
        self.eval()
        head = self.expert_head(modality, domain)
        return torch.softmax(head(torch.as_tensor(x, dtype=torch.float32)), -1).numpy()

    @torch.inference_mode()
    def expert_logits(self, embeddings: dict[str, np.ndarray], available: dict[str, bool]
                      ) -> dict[str, np.ndarray | None]:
        """Each available modality's raw clip-expert logits ``[C]`` (``None`` when masked):
        what calibration and the product's weights act on, kept so ``mer adapt`` and the
        server's feedback store can refit those numbers without the media."""
        self.eval()
        out: dict[str, np.ndarray | None] = {}
        for m in self.modalities:
            if not available.get(m, False):
                out[m] = None
                continue
            x = torch.as_tensor(np.asarray(embeddings[m], np.float32).reshape(1, -1))
            out[m] = self.experts[m](x)[0].numpy().astype(np.float32)
        return out

    @torch.inference_mode()
    def calibrated_expert_proba(self, modality: str, x: np.ndarray) -> np.ndarray:
        """The clip expert's calibrated probabilities for a batch ``[N, D]``: what analyze
        shows as the modality's own answer and what ``product`` fusion multiplies."""
        self.eval()
        logits = self.experts[modality](torch.as_tensor(x, dtype=torch.float32))
        return self.calibration.log_proba(modality, logits).exp().numpy()

    # -- checkpoint IO --------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, dtype: str = "float32") -> None:
        """Write ``config.json`` + ``model.safetensors``. ``dtype="float16"`` halves the file,
        ``"int8"`` (weight-only, per-row scales; see :mod:`..quantization`; the shipped model
        uses it) quarters it; loading always gives fp32 parameters, so fp32 storage round-trips
        exactly and the others to within their rounding."""
        if dtype not in ("float32", "float16", "int8"):
            raise InputError(f"dtype must be float32, float16 or int8, not {dtype!r}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = dict(self.config)
        config["format"] = FORMAT
        config["fusions"] = {n: f.config() for n, f in self.fusions.items()}
        config["dtype"] = dtype
        if not self.calibration.is_identity or "calibration" in config:
            config["calibration"] = self.calibration.to_config()
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if dtype == "int8":
            tensors = quantise_int8(self.state_dict())
        else:
            half = dtype == "float16"
            tensors = {k: (v.detach().half() if half and v.is_floating_point() else v.detach())
                       .contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": FORMAT})

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None) -> "EmotionModel":
        directory = Path(directory) if directory else DEFAULT_MODEL_DIR
        cfg_path, weights = directory / "config.json", directory / "model.safetensors"
        if not cfg_path.exists() or not weights.exists():
            raise ModelError(f"{directory}: not a model folder (needs config.json and "
                             f"model.safetensors)")
        try:
            config = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{cfg_path}: invalid JSON ({exc})") from exc
        if config.get("format") != FORMAT:
            raise ModelError(f"{cfg_path}: format {config.get('format')!r}, expected {FORMAT!r}")
        model = cls(config)
        try:
            model.load_state_dict(dequantise(load_file(str(weights))))
        except RuntimeError as exc:
            raise ModelError(f"{weights}: weights do not match config.json ({exc})") from exc
        model.eval()
        return model
