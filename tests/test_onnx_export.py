"""``mer export onnx``: a tiny model folder (the packaged Whisper tiny.en's first two layers, a
random 32-wide MPNet, a random small face CNN, small heads) is exported once; each ONNX piece must
give torch's numbers, the CLI and ``from_pretrained`` must run the folder, and the folder must
analyze a clip in a process where torch and transformers cannot be imported. A second folder
whose audio expert reads Whisper base's first two layers (as the shipped recipe does, with its
5 s pad and -20 dBFS loudness) must export those layers only and run on language ID's base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from multimodal_emotion.cli import main
from multimodal_emotion.encoders import create
from multimodal_emotion.export.onnx import export_onnx, parse_int8
from multimodal_emotion.errors import InputError, ModelError
from multimodal_emotion.labels import LABELS
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.model_dir import load_model
from test_audio_base import AUDIO as BASE_AUDIO, speechlike
from test_text import _tiny_bert

REPO = Path(__file__).resolve().parents[1]
LAYERS = [1, 2]
DIMS = {"audio": 2 * 384 * len(LAYERS), "text": 32, "face": 16}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PyTorch model folder whose every part is small (Whisper tiny.en is the packaged one)."""
    return _model_folder(tmp_path_factory.mktemp("tiny_model"),
                         {"name": "whisper", "layers": LAYERS}, DIMS, {"enabled": False})


def _model_folder(d: Path, audio: dict, dims: dict[str, int], language: dict) -> Path:
    """A small PyTorch model folder in ``d``: the ``audio`` encoder entry (embedding width in
    ``dims``), a random MPNet, a random face CNN and random heads; ``language``: its entry."""
    from multimodal_emotion.encoders.face import FaceCNN

    text = _tiny_bert(d / "mpnet", layers=2, kind="mpnet")
    torch.manual_seed(0)
    cnn = FaceCNN(channels=(4, 8), embed_dim=dims["face"]).eval()
    for bn in (m for m in cnn.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d)):
        bn.running_mean.normal_(0, 0.1)  # non-trivial statistics, so BN folding is tested
        bn.running_var.uniform_(0.5, 1.5)
    (d / "face_cnn").mkdir()
    save_file({k: v.contiguous() for k, v in cnn.state_dict().items()},
              str(d / "face_cnn" / "model.safetensors"))
    (d / "face_cnn" / "config.json").write_text(json.dumps(
        {"architecture": cnn.config(), "labels": list(LABELS)}))
    model = EmotionModel({
        "dims": dims,
        # the audio expert z-scores its pooled blocks per utterance, as the shipped one does
        "experts": {"audio": {"hidden": 8, "utterance_blocks": 2 * len(audio.get("layers", [1]))},
                    "text": {"hidden": 0}, "face": {"hidden": 0}},
        "expert_domains": {"text": "spoken"},
        "domain_experts": {"text": {"written": {"hidden": 0}}},
        "fusions": {"product": {"weights": {"audio": 0.7, "text": 1.2, "face": 0.9}},
                    "sum": {}},
        "default_fusion": "product",
        "calibration": {"temperature": {"audio": 2.0, "text": 1.3, "face": 0.8},
                        "train_prior": {"text": [0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.1]},
                        "prior_power": {"text": 0.9}},
        "encoders": {"audio": audio,
                     "transcriber": {"name": "faster-whisper"},
                     "language": language,
                     "text": {"name": "hf", "model": str(text)},
                     "face": {"name": "blazeface-cnn", "checkpoint": "face_cnn",
                              "flip_tta": True}},
    })
    for p in model.parameters():  # heads away from their zero-ish initial state
        torch.nn.init.normal_(p, 0, 0.05)
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def onnx_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "onnx"
    export_onnx(out, tiny_dir, parse_int8("none"))
    return out


def test_exported_folder_says_what_it_holds(onnx_dir: Path) -> None:
    cfg = json.loads((onnx_dir / "config.json").read_text())
    assert cfg["format"] == "multimodal-emotion-onnx/1"
    assert {cfg["encoders"][m]["name"] for m in ("audio", "text", "face")} == {
        "whisper-onnx", "text-onnx", "face-onnx"}
    assert cfg["encoders"]["transcriber"]["name"] == "faster-whisper"  # not torch: unchanged
    assert list(cfg["fusions"]) == ["product"]
    assert cfg["onnx"]["heads"] == {"audio": "heads/audio.onnx", "text": "heads/text.onnx",
                                    "face": "heads/face.onnx",
                                    "text/written": "heads/text.written.onnx"}
    assert all(v < 1e-3 for v in cfg["onnx"]["check"].values()), cfg["onnx"]["check"]
    assert not list(onnx_dir.rglob("*.safetensors"))


def test_each_piece_gives_torchs_numbers(tiny_dir: Path, onnx_dir: Path, demo_clip: Path
                                         ) -> None:
    from multimodal_emotion import media
    from multimodal_emotion.recognizer import build_encoder

    cfg_t = json.loads((tiny_dir / "config.json").read_text())["encoders"]
    cfg_o = json.loads((onnx_dir / "config.json").read_text())["encoders"]
    clip = media.load(demo_clip)
    # audio: the pooled layers
    a_t = build_encoder("audio", cfg_t["audio"], tiny_dir)
    a_o = build_encoder("audio", {**cfg_o["audio"], "whisper_model": a_t.whisper_model},
                        onnx_dir)
    et, eo = a_t.encode(clip), a_o.encode(clip)
    assert eo.available and eo.embedding.shape == (DIMS["audio"],)
    assert np.allclose(et.embedding, eo.embedding, atol=1e-4)
    assert np.allclose(et.sequence, eo.sequence, atol=1e-4)
    # text: same tokens, same states, same pooled vector
    t_t = build_encoder("text", cfg_t["text"], tiny_dir)
    t_o = build_encoder("text", cfg_o["text"], onnx_dir)
    texts = ["I am so happy to see you", "no", "why would you do that to me " * 40]
    assert np.allclose(t_t.embed_texts(texts), t_o.embed_texts(texts), atol=1e-5)
    (vt, st), (vo, so) = t_t.embed_with_sequence(texts[0]), t_o.embed_with_sequence(texts[0])
    assert st.shape == so.shape and np.allclose(vt, vo, atol=1e-5)
    # face: the clip's followed face, flip TTA included, and raw FER-style uint8 faces
    f_t = build_encoder("face", cfg_t["face"], tiny_dir)
    f_o = build_encoder("face", cfg_o["face"], onnx_dir)
    ft, fo = f_t.encode(clip), f_o.encode(clip)
    assert fo.available and fo.extras == ft.extras
    assert np.allclose(ft.embedding, fo.embedding, atol=1e-5)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    assert np.allclose(f_t.encode_images(faces), f_o.encode_images(faces), atol=1e-5)
    # heads, calibration and the product: every subset, as the Shapley explanation asks
    m_t, m_o = EmotionModel.from_pretrained(tiny_dir), load_model(onnx_dir)
    rng = np.random.default_rng(1)
    emb = {m: rng.standard_normal(d).astype(np.float32) for m, d in DIMS.items()}
    avail = {"audio": True, "text": True, "face": True}
    (sub_t, exp_t), (sub_o, exp_o) = m_t.subset_predict(emb, avail), m_o.subset_predict(emb, avail)
    assert sub_t.keys() == sub_o.keys() and len(sub_o) == 7
    for s in sub_t:
        assert np.allclose(sub_t[s], sub_o[s], atol=1e-5), s
    for m in DIMS:
        assert np.allclose(exp_t[m], exp_o[m], atol=1e-5)
    x = rng.standard_normal((3, DIMS["text"])).astype(np.float32)
    assert np.allclose(m_t.expert_proba("text", x, "written"),
                       m_o.expert_proba("text", x, "written"), atol=1e-5)
    with pytest.raises(InputError, match="not in this exported model"):
        m_o.subset_predict(emb, avail, fusion="sum")


def test_cli_exports_and_analyzes(tiny_dir: Path, tmp_path: Path, demo_clip: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli_onnx"
    assert main(["export", "onnx", str(out), "--model", str(tiny_dir), "--int8", "text"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["onnx"]["int8"] == {
        "audio": None, "text": "dynamic", "face": None}
    # the int8 text graph: quantised MatMuls, and nearly the float encoder's vectors
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "text" / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}, "text graph was not quantised"
    fl = create("text", "hf", model=json.loads((tiny_dir / "config.json").read_text())
                ["encoders"]["text"]["model"])
    q = create("text", "text-onnx", checkpoint=str(out / "text"))
    texts = ["I am so happy to see you", "that is terrible news"]
    a, b = fl.embed_texts(texts), q.embed_texts(texts)
    cos = (a * b).sum(1)
    # int8 rounding moves the vectors (the int8 graph ran, not a float one), but only a little:
    # how little depends on the CPU (with AVX-512 VNNI the cosine rounds to 1.0 in float32), so
    # the vectors themselves are compared, not the cosine against 1
    assert (cos > 0.98).all(), cos
    assert np.abs(a - b).max() > 1e-6, np.abs(a - b).max()
    assert main(["analyze", "--json", "--model", str(out), str(demo_clip)]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["label"] in LABELS and d["fusion"] == "product"
    assert all(d["modalities"][m]["available"] for m in ("audio", "text", "face"))
    # bad arguments: one line, exit 2; nothing written over an existing folder
    assert main(["export", "onnx", str(out), "--model", str(tiny_dir)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["export", "onnx", str(tmp_path / "x"), "--int8", "gpu"]) == 2
    assert main(["export", "onnx", str(tmp_path / "x"), "--int8", "text=int4"]) == 2
    assert not (tmp_path / "x").exists()


def test_weight_only_int8_is_a_quarter_and_keeps_the_vectors(tiny_dir: Path, onnx_dir: Path,
                                                             tmp_path: Path) -> None:
    """``text=weights`` (the default for text): int8 tables and matrices, float arithmetic."""
    import shutil

    from multimodal_emotion.export.onnx import _weights_int8

    folder = tmp_path / "text"
    shutil.copytree(onnx_dir / "text", folder)
    before = (folder / "model.onnx").stat().st_size
    assert _weights_int8(folder / "model.onnx") > 0
    assert (folder / "model.onnx").stat().st_size < 0.4 * before
    fl = create("text", "text-onnx", checkpoint=str(onnx_dir / "text"))
    q = create("text", "text-onnx", checkpoint=str(folder))
    texts = ["I am so happy to see you", "that is terrible news"]
    a, b = fl.embed_texts(texts), q.embed_texts(texts)
    cos = (a * b).sum(1)
    assert (cos > 0.995).all(), cos
    assert np.abs(a - b).max() > 1e-6, np.abs(a - b).max()  # int8 weights: the vectors move


def _analyze_without_torch(folder: Path, clip: Path, checks: str = "") -> dict:
    """``from_pretrained(folder).analyze(clip)`` in a process where ``import torch`` (and
    ``transformers``) fails; ``checks``: more lines run on ``rec`` before the analysis
    (``loads[0]``: how many faster-whisper models were built)."""
    script = (
        "import json, sys\n"
        "sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import faster_whisper\n"
        "loads, _init = [0], faster_whisper.WhisperModel.__init__\n"
        "def counted(self, *a, **k):\n"
        "    loads[0] += 1\n"
        "    _init(self, *a, **k)\n"
        "faster_whisper.WhisperModel.__init__ = counted\n"
        "from multimodal_emotion import EmotionRecognizer\n"
        f"rec = EmotionRecognizer.from_pretrained({str(folder)!r})\n"
        f"{checks}"
        f"d = rec.analyze({str(clip)!r}, explain_words=True).to_dict()\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')"
        " and sys.modules[m] is not None]\n"
        "print(json.dumps(d))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_from_pretrained_runs_without_torch(onnx_dir: Path, demo_clip: Path) -> None:
    """The exported folder analyzes a clip in a process where ``import torch`` (and
    ``transformers``) fails: the torch-free install path."""
    # tiny.en, loaded once: one model serves the audio front end and the transcriber, which
    # decodes the graph's final layer (Whisper's encoder runs once per clip)
    checks = ("audio = rec.audio.wrapped\n"
              "assert loads[0] == 1, loads\n"
              "assert audio.final_layer and rec._shares_whisper\n"
              "assert rec.transcriber.wrapped.model is audio.whisper_model\n")
    d = _analyze_without_torch(onnx_dir, demo_clip, checks)
    assert d["label"] in LABELS
    assert sum(d["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert all(d["modalities"][m]["available"] for m in ("audio", "text", "face"))
    assert "happy" in d["modalities"]["text"]["transcript"].lower()
    ex = d["explanation"]
    assert ex["base"] + sum(ex["contributions"].values()) == pytest.approx(
        d["probabilities"][d["label"]], abs=1e-4)


# --------------------------------------------------------------- an audio expert on Whisper base

BASE_DIMS = {**DIMS, "audio": 2 * 512 * len(BASE_AUDIO["layers"])}


@pytest.fixture(scope="module")
def base_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(PyTorch folder, its export) with the audio expert on base's layers, language ID on."""
    src = _model_folder(tmp_path_factory.mktemp("base_model"), BASE_AUDIO, BASE_DIMS, {})
    out = tmp_path_factory.mktemp("exported_base") / "onnx"
    export_onnx(out, src, parse_int8("none"))
    return src, out


def test_base_audio_exports_its_layers_only_and_gives_torchs_numbers(
        base_dirs: tuple[Path, Path]) -> None:
    """Nobody decodes base's final layer (the transcriber is tiny.en), so the graph stops
    after the last listed block; the front end (5 s pad, -20 dBFS) is torch's, clip by clip."""
    import onnx

    from multimodal_emotion.recognizer import build_encoder

    src, out = base_dirs
    cfg_t = json.loads((src / "config.json").read_text())["encoders"]
    cfg_o = json.loads((out / "config.json").read_text())
    assert cfg_o["onnx"]["check"]["audio"] < 1e-3
    a_cfg = cfg_o["encoders"]["audio"]
    assert {k: a_cfg[k] for k in BASE_AUDIO if k != "name"} == {
        k: v for k, v in BASE_AUDIO.items() if k != "name"}
    graph = onnx.load(str(out / "audio.onnx")).graph
    assert [o.name for o in graph.output] == ["layers"]
    # blocks 1..2 of 6, each with two layer norms; no later block, no final layer norm
    assert sum(n.op_type == "LayerNormalization" for n in graph.node) == \
        2 * max(BASE_AUDIO["layers"])
    a_t = build_encoder("audio", cfg_t["audio"], src)
    a_o = build_encoder("audio", {**a_cfg, "whisper_model": a_t.whisper_model}, out)
    assert not a_o.final_layer and a_o.dim == BASE_DIMS["audio"]
    # quiet and short (padded to 5 s), loud and longer than the pad
    for wave in (0.05 * speechlike(1.5), 3.0 * speechlike(6.5, seed=1)):
        et, eo = a_t.encode_audio(wave), a_o.encode_audio(wave)
        assert eo.available and "whisper_encoder_output" not in eo.extras
        np.testing.assert_allclose(eo.embedding, et.embedding, atol=1e-4)
        np.testing.assert_allclose(eo.sequence, et.sequence, atol=1e-4)
    # the loudness target is applied: the same speech 20 dB quieter embeds the same
    wave = speechlike(1.5, seed=2)
    np.testing.assert_allclose(a_o.encode_audio(0.1 * wave).embedding,
                               a_o.encode_audio(wave).embedding, atol=1e-4)
    # and the silence trim: more silence around the same speech embeds the same, in both
    quiet = np.zeros(8000, np.float32)  # 0.5 s; 0.2 s below: both on the 20 ms grid
    for enc in (a_t, a_o):
        np.testing.assert_allclose(enc.encode_audio(np.concatenate([quiet, wave])).embedding,
                                   enc.encode_audio(np.concatenate([quiet[:3200], wave])
                                                    ).embedding, atol=1e-4)
    with pytest.raises(ModelError, match="no final layer"):
        build_encoder("audio", {**a_cfg, "whisper_model": a_t.whisper_model,
                                "final_layer": True}, out)


def test_base_audio_folder_runs_on_language_ids_base_without_torch(
        base_dirs: tuple[Path, Path], demo_clip: Path) -> None:
    """One copy of base (language ID's serves the audio front end), tiny.en transcribes with
    its own encoder pass, and the clip is analyzed in a process without torch."""
    checks = ("audio = rec.audio.wrapped\n"
              "assert audio.whisper_model is rec.language.base and not audio.final_layer\n"
              "assert loads[0] == 2, loads\n"  # tiny.en and base, each once
              "assert rec.transcriber.wrapped.model is not audio.whisper_model\n"
              "assert not rec._shares_whisper\n")
    d = _analyze_without_torch(base_dirs[1], demo_clip, checks)
    assert d["label"] in LABELS
    assert all(d["modalities"][m]["available"] for m in ("audio", "text", "face"))
    assert d["modalities"]["text"]["language"] == "en"
    assert "happy" in d["modalities"]["text"]["transcript"].lower()
