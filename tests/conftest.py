"""Session-wide fixtures: demo media built once per test session from pip-installable parts
(eSpeak NG speech, the skimage astronaut face, PyAV encoders), so tests need no shipped clip,
plus ``data_root`` for the optional real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multimodal_emotion import demo

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every generated file of the session."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def demo_clip(media_dir: Path) -> Path:
    """MP4 (H.264 + AAC 16 kHz), a real frontal face and happy speech, about 5 s long."""
    return demo.make_demo_clip(media_dir / "demo.mp4", seconds=5.0)


@pytest.fixture(scope="session")
def long_clip(media_dir: Path) -> Path:
    """25 s face + repeated speech MP4, for windowing / segment tests."""
    return demo.make_demo_clip(media_dir / "long.mp4", seconds=25.0, fps=10, size=(160, 120))


@pytest.fixture(scope="session")
def silent_clip(media_dir: Path) -> Path:
    """Face video with an audio track that is digital silence (3 s)."""
    return demo.make_silent_clip(media_dir / "silent.mp4", seconds=3.0)


@pytest.fixture(scope="session")
def no_face_clip(media_dir: Path) -> Path:
    """Speech over a faceless photograph (skimage coffee cup), 5 s."""
    return demo.make_demo_clip(media_dir / "no_face.mp4", seconds=5.0, face=False)


@pytest.fixture(scope="session")
def no_audio_clip(media_dir: Path) -> Path:
    """Face video with no audio stream at all, 3 s."""
    return demo.make_demo_clip(media_dir / "no_audio.mp4", seconds=3.0, audio=False)


@pytest.fixture(scope="session")
def audio_only_wav(media_dir: Path) -> Path:
    """The demo sentence as 16 kHz mono PCM WAV, no video."""
    return demo.make_audio_file(media_dir / "speech.wav", fmt="wav")


@pytest.fixture(scope="session")
def corrupt_file(media_dir: Path) -> Path:
    """An .mp4 that is deterministic garbage bytes (no container at all)."""
    import numpy as np

    p = media_dir / "corrupt.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


@pytest.fixture(scope="session")
def truncated_clip(demo_clip: Path, media_dir: Path) -> Path:
    """The first 40% of the demo MP4: the header is there, the 'moov' index usually is not
    (it is written at the end), so it must fail cleanly, not hang or crash."""
    data = demo_clip.read_bytes()
    p = media_dir / "truncated.mp4"
    p.write_bytes(data[: int(len(data) * 0.4)])
    return p


@pytest.fixture(scope="session")
def empty_file(media_dir: Path) -> Path:
    """A zero-byte .mp4."""
    p = media_dir / "empty.mp4"
    p.write_bytes(b"")
    return p


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real data (``$MER_DATA``, else ``<repo>/../shared/data``); skips when absent so
    a fresh machine or CI still passes."""
    root = Path(os.environ.get("MER_DATA") or REPO_ROOT.parent / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}; set MER_DATA")
    return root
