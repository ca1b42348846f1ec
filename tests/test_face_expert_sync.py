"""sync_face_expert: the shipped model's face expert is the face CNN's own head, and syncing
after a CNN change rewrites exactly that head and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from multimodal_emotion.model import DEFAULT_MODEL_DIR, EmotionModel
from multimodal_emotion.training.face_cnn import sync_face_expert


def test_shipped_expert_is_in_sync_and_a_new_head_is_copied(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    shipped = (model_dir / "model.safetensors").read_bytes()
    sync_face_expert(model_dir)  # the shipped CNN's head is already the expert
    assert (model_dir / "model.safetensors").read_bytes() == shipped

    cnn_file = model_dir / "face_cnn" / "model.safetensors"
    cnn = load_file(str(cnn_file))
    cnn["head.1.weight"] = torch.flip(cnn["head.1.weight"], dims=[0]).contiguous()  # new head
    save_file(cnn, str(cnn_file))
    config_before = (model_dir / "config.json").read_text()
    before = load_file(str(model_dir / "model.safetensors"))
    change = sync_face_expert(model_dir)
    after = load_file(str(model_dir / "model.safetensors"))
    assert change["net.1.weight"] > 0.01
    assert (model_dir / "config.json").read_text() == config_before
    assert [k for k in after if not torch.equal(after[k], before[k])] and all(
        k.startswith("experts.face.") for k in after if not torch.equal(after[k], before[k]))
    expert = EmotionModel.from_pretrained(model_dir).experts["face"].net[-1].weight
    assert torch.allclose(expert, cnn["head.1.weight"].float(), atol=2e-2)
