"""``mer export onnx OUT``: a model folder that runs on onnxruntime, without torch.

What is exported (each piece checked against torch on a probe input; the largest difference is
recorded in ``config.json`` under ``onnx.check``):

* ``audio.onnx``: the Whisper encoder (PyTorch rebuild of the packaged CTranslate2 weights,
  :mod:`..encoders.whisper_torch`), returning the layers the audio expert pools and, when the
  transcriber decodes from it (both are the packaged tiny.en), the final layer; an audio
  encoder on another Whisper (``model_path: base``) is cut after its last listed layer, as the
  torch recognizer runs it (``final_layer=False``); the time axis is dynamic.
* ``text/model.onnx`` + ``tokenizer.json``: the sentence encoder with its LoRA adapters merged
  (the merge happens when :class:`..encoders.text.HFTextEncoder` loads); batch and length dynamic.
* ``face.onnx``: the face CNN up to its embedding (the detector stays mediapipe/OpenCV).
* ``heads/<modality>[.<domain>].onnx``: the expert heads. Calibration and the product fusion are
  numbers in ``config.json`` and a few lines of numpy in :mod:`..onnx_model`.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). Why not
the default dynamo exporter: it needs the extra ``onnxscript`` package, and the TorchScript one
exports all four graphs here with dynamic shapes and matches torch to ~1e-5; it is deprecated
in torch 2.x but present in 2.13, and the dynamo path is one argument away when it goes.

Int8, per encoder, where ``bench/onnx.py`` measured that it pays (:data:`DEFAULT_INT8`, the
README's Edge export table): ``dynamic`` (``onnxruntime.quantization.quantize_dynamic``: int8
weights and int8 activations quantised at run time) or ``weights`` (int8 weights with one scale
per row behind ``DequantizeLinear``: a quarter of the file, float arithmetic; onnxruntime
dequantises on every call, which bench/onnx.py measured at 1.4-1.9x the float text latency).
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ModelError
from ..model import EmotionModel
from ..model_dir import DEFAULT_MODEL_DIR, ONNX_FORMAT

OPSET = 17
ENCODERS = ("audio", "text", "face")
METHODS = ("dynamic", "weights")
# How each encoder ships, from bench/onnx.py (README, Edge export; 200 real items each). Text:
# "weights" (int8 storage with per-row scales, float compute: 4x smaller, 97 % of MELD labels
# the same, accuracy 54.0 %, as torch's; 1.4x slower per utterance), because
# dynamic int8 wrecks the tuned MPNet (MELD accuracy 54.0 -> 13.5 %: its activations have
# outliers one uint8 scale per tensor cannot hold). Face: float; its convolutions stay float
# under dynamic int8, which is then neither smaller (4.8 vs 5.0 MB) nor faster. Audio: float;
# dynamic int8 is faster (733 vs 863 ms) and 2.4x smaller but changed 4 of 200 RAVDESS labels
# (accuracy 97.0 -> 96.0 %): `--int8 audio` where 21 MB and 15 % matter more than that.
DEFAULT_INT8: dict[str, str | None] = {"audio": None, "text": "weights", "face": None}


class _WhisperLayers(nn.Module):
    """``mel [1, n_mels, T] -> (layers [L, 1, T/2, d], final [1, T/2, d])``; without ``final``
    only ``(layers,)``, and the blocks after the last listed layer are not in the graph."""

    def __init__(self, encoder: nn.Module, layers: list[int], final: bool = True) -> None:
        super().__init__()
        self.encoder, self.layers, self.final = encoder, list(layers), bool(final)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = self.encoder(mel, None if self.final else max(self.layers))
        layers = torch.stack([states[i] for i in self.layers])
        return (layers, states[-1]) if self.final else (layers,)


class _TokenStates(nn.Module):
    """``input_ids, attention_mask [B, T] -> hidden [B, T, D]`` (last hidden state)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _FaceEmbedding(nn.Module):
    def __init__(self, cnn: nn.Module) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.cnn.embed(faces)


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: list[str], outputs: list[str], axes: dict[str, dict[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # tracer and deprecation warnings: noise for a user
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from ..encoders.onnx_runtime import load_session

    return load_session(path).run(None, feeds)


def _quantize(path: Path) -> None:
    """Replace ``path`` by its dynamic int8 version (MatMul/Gemm weights per channel; convs
    stay float: ConvInteger is slower than float convolution on onnxruntime's CPU kernels)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"])
    tmp.replace(path)


def _weights_int8(path: Path, min_size: int = 4096) -> int:
    """Store ``path``'s large MatMul weights and Gather tables as int8 with one float scale per
    output column (per row for a table) behind a ``DequantizeLinear``; the arithmetic stays
    float. Returns how many tensors were replaced."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    axes: dict[str, int] = {}  # weight name -> the axis that keeps its own scale
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            axes[node.input[1]] = 1
        elif node.op_type == "Gather" and node.input[0] in inits:
            axes[node.input[0]] = 0
    dequant = []
    for name, axis in axes.items():
        w = numpy_helper.to_array(inits[name])
        if w.ndim != 2 or w.dtype != np.float32 or w.size < min_size:
            continue
        scale = (np.abs(w).max(axis=1 - axis) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / (scale[:, None] if axis == 0 else scale[None])), -127, 127)
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(q.astype(np.int8), name + "_int8"),
                                  numpy_helper.from_array(scale, name + "_scale"),
                                  numpy_helper.from_array(np.zeros(len(scale), np.int8),
                                                          name + "_zero")])
        dequant.append(helper.make_node("DequantizeLinear", [name + "_int8", name + "_scale",
                                                             name + "_zero"], [name], axis=axis))
    nodes = dequant + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    return len(dequant)


def transcriber_decodes_audio(encoders_cfg: dict[str, Any]) -> bool:
    """True when the transcriber decodes from the audio encoder's final layer: the recognizer
    shares one Whisper between them only when the audio encoder's is the packaged tiny.en and
    the transcriber is the default faster-whisper one (tiny.en too). Otherwise (an audio
    encoder on base: the transcriber stays tiny.en with its own encoder pass) nobody reads it."""
    from ..encoders.whisper_models import whisper_model_label

    acfg = encoders_cfg.get("audio", {})
    tcfg = encoders_cfg.get("transcriber", {"name": "faster-whisper"})
    return whisper_model_label(acfg.get("model_path")) == whisper_model_label("tiny.en") \
        and tcfg.get("name") == "faster-whisper" and not tcfg.get("model_path")


def export_audio(model_cfg: dict[str, Any], out: Path) -> tuple[dict[str, Any], float]:
    """``audio.onnx`` and the ``whisper-onnx`` encoder entry; returns (entry, max |diff|).
    The graph has a ``final`` output only when :func:`transcriber_decodes_audio`."""
    from ..encoders.whisper_torch import WhisperEncoderTorch

    acfg = dict(model_cfg["encoders"].get("audio", {}))
    if acfg.get("name") != "whisper" or not acfg.get("layers"):
        raise ModelError(f"only the layered Whisper audio encoder exports to ONNX, not "
                         f"{acfg.get('name')!r} without layers")
    encoder = WhisperEncoderTorch.from_ct2(acfg.get("model_path"))
    final = transcriber_decodes_audio(model_cfg["encoders"])
    wrapper = _WhisperLayers(encoder, acfg["layers"], final).eval()
    mel = torch.from_numpy(np.random.default_rng(0).standard_normal((1, encoder.n_mels, 300),
                                                                    dtype=np.float32))
    path = out / "audio.onnx"
    outputs, axes = ["layers"], {"mel": {2: "frames"}, "layers": {2: "steps"}}
    if final:
        outputs.append("final")
        axes["final"] = {1: "steps"}
    _export(wrapper, (mel,), path, ["mel"], outputs, axes)
    with torch.inference_mode():
        ref = wrapper(mel)
    got = _run(path, {"mel": mel.numpy()})
    diff = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))
    entry = {"name": "whisper-onnx", "checkpoint": "audio.onnx", "layers": list(acfg["layers"])}
    entry.update({k: acfg[k] for k in ("model_path", "pad_to_s", "loudness_dbfs", "trim_db",
                                       "cpu_threads", "compute_type") if k in acfg})
    return entry, diff


def export_text(model_cfg: dict[str, Any], model_dir: Path, out: Path
                ) -> tuple[dict[str, Any], float]:
    """``text/`` (graph, tokenizer, config) and the ``text-onnx`` entry."""
    from ..recognizer import build_encoder

    tcfg = model_cfg["encoders"].get("text", {"name": "minilm"})
    enc = build_encoder("text", tcfg, model_dir)  # LoRA adapters are merged on load
    folder = out / "text"
    folder.mkdir(parents=True, exist_ok=True)
    batch = enc.tokenizer(["I can't believe you did that!", "fine"], padding=True,
                          return_tensors="pt")
    wrapper = _TokenStates(enc.model).eval()
    args = (batch["input_ids"], batch["attention_mask"])
    _export(wrapper, args, folder / "model.onnx", ["input_ids", "attention_mask"], ["hidden"],
            {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
             "hidden": {0: "batch", 1: "tokens"}})
    enc.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps({
        "model": enc.model_id, "tuned_layers": enc.tuned_sha, "max_length": enc.max_length,
        "pad_id": int(enc.tokenizer.pad_token_id), "pad_token": enc.tokenizer.pad_token,
        "dim": enc.dim}, indent=2) + "\n")
    with torch.inference_mode():
        ref = wrapper(*args).numpy()
    got = _run(folder / "model.onnx", {"input_ids": args[0].numpy(),
                                       "attention_mask": args[1].numpy()})[0]
    valid = args[1].numpy().astype(bool)
    return {"name": "text-onnx", "checkpoint": "text"}, float(np.abs(got - ref)[valid].max())


def export_face(model_cfg: dict[str, Any], model_dir: Path, out: Path
                ) -> tuple[dict[str, Any], float]:
    """``face.onnx`` (the CNN's embedding) and the ``face-onnx`` entry."""
    from ..encoders.face import load_face_cnn

    fcfg = dict(model_cfg["encoders"].get("face", {}))
    if fcfg.get("name") != "blazeface-cnn":
        raise ModelError(f"only the blazeface-cnn face encoder exports to ONNX, not "
                         f"{fcfg.get('name')!r}")
    ckpt = fcfg.get("checkpoint")
    if isinstance(ckpt, str) and not Path(ckpt).is_absolute():
        ckpt = str(model_dir / ckpt)
    cnn, _ = load_face_cnn(ckpt)
    wrapper = _FaceEmbedding(cnn).eval()
    size = cnn.input_size
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 1, size, size),
                                                                  dtype=np.float32))
    path = out / "face.onnx"
    _export(wrapper, (x,), path, ["faces"], ["embedding"],
            {"faces": {0: "n"}, "embedding": {0: "n"}})
    with torch.inference_mode():
        ref = wrapper(x).numpy()
    diff = float(np.abs(_run(path, {"faces": x.numpy()})[0] - ref).max())
    entry = {"name": "face-onnx", "checkpoint": "face.onnx"}
    entry.update({k: fcfg[k] for k in ("max_frames", "flip_tta", "detector") if k in fcfg})
    return entry, diff


def export_heads(model: EmotionModel, out: Path) -> tuple[dict[str, str], float]:
    """``heads/*.onnx`` (``x [N, D] -> logits [N, C]``); returns ({key: file}, max |diff|)."""
    heads: dict[str, str] = {}
    diff = 0.0
    for m in model.modalities:
        for domain in [None] + [d for d in model.domains(m) if d != model.expert_domains.get(m)]:
            key, rel = (m, f"heads/{m}.onnx") if domain is None else \
                (f"{m}/{domain}", f"heads/{m}.{domain}.onnx")
            head = model.expert_head(m, domain).eval()
            x = torch.from_numpy(np.random.default_rng(0).standard_normal(
                (4, model.dims[m]), dtype=np.float32))
            _export(head, (x,), out / rel, ["x"], ["logits"], {"x": {0: "n"}, "logits": {0: "n"}})
            with torch.inference_mode():
                ref = head(x).numpy()
            diff = max(diff, float(np.abs(_run(out / rel, {"x": x.numpy()})[0] - ref).max()))
            heads[key] = rel
    return heads, diff


def export_onnx(out: str | Path, model_dir: str | Path | None = None,
                int8: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Export the model folder ``model_dir`` (default: the shipped one) to ``out`` (which must
    not exist or be empty). ``int8``: encoder -> ``"dynamic"``, ``"weights"`` or ``None``
    (float; default :data:`DEFAULT_INT8`). Returns the ``onnx`` section written into
    ``out/config.json``."""
    model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; choose a new one")
    int8 = dict(DEFAULT_INT8 if int8 is None else int8)
    unknown = sorted(set(int8) - set(ENCODERS))
    if unknown:
        raise InputError(f"int8 names unknown encoders {unknown}; choose from {list(ENCODERS)}")
    bad = {m: v for m, v in int8.items() if v not in (None, *METHODS)}
    if bad:
        raise InputError(f"int8 methods must be one of {list(METHODS)}, not {bad}")
    model = EmotionModel.from_pretrained(model_dir)
    if "product" not in model.fusions:
        raise ModelError(f"{model_dir} has no product fusion; only product is exported")
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = copy.deepcopy(model.config)
        entries, check = {}, {}
        entries["audio"], check["audio"] = export_audio(cfg, out)
        entries["text"], check["text"] = export_text(cfg, model_dir, out)
        entries["face"], check["face"] = export_face(cfg, model_dir, out)
        heads, check["heads"] = export_heads(model, out)
        files = {"audio": out / "audio.onnx", "text": out / "text" / "model.onnx",
                 "face": out / "face.onnx"}
        for m in ENCODERS:
            if int8.get(m) == "dynamic":
                _quantize(files[m])
            elif int8.get(m) == "weights":
                _weights_int8(files[m])
        section = {
            "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False), "
                        f"opset {OPSET}",
            "source": str(model_dir.name), "heads": heads,
            "int8": {m: int8.get(m) for m in ENCODERS},
            "check": {k: float(f"{v:.3g}") for k, v in check.items()},
            "check_note": "largest |onnx - torch| on a probe input, float graphs before int8",
        }
        cfg["encoders"] = {**cfg.get("encoders", {}), **entries}
        cfg["fusions"] = {"product": model.fusions["product"].config()}
        cfg["default_fusion"] = "product"
        cfg["calibration"] = model.calibration.to_config()
        cfg["format"] = ONNX_FORMAT
        cfg.pop("dtype", None)
        cfg["onnx"] = section
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written folder that looks complete
        raise
    return section


def parse_int8(text: str) -> dict[str, str | None]:
    """``"default"``, ``"none"``, ``"all"`` (dynamic int8 everywhere) or a comma list of
    encoders, each optionally ``=dynamic`` or ``=weights`` (``"audio,text=weights"``; a bare
    name means dynamic)."""
    text = text.strip().lower()
    if text == "default":
        return dict(DEFAULT_INT8)
    if text in ("none", "all"):
        return {m: "dynamic" if text == "all" else None for m in ENCODERS}
    out: dict[str, str | None] = {m: None for m in ENCODERS}
    for part in (t.strip() for t in text.split(",")):
        name, _, method = part.partition("=")
        if name not in ENCODERS or (method or "dynamic") not in METHODS:
            raise InputError(f"--int8 takes default, none, all or a list of {list(ENCODERS)} "
                             f"(each optionally =dynamic or =weights), not {text!r}")
        out[name] = method or "dynamic"
    return out
