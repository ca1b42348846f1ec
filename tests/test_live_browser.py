"""The live page (issue 17) in a real browser: headless Debian Chromium with fake capture
devices fed from the demo clip (converted to Y4M video and WAV audio with PyAV), against a live
uvicorn whose recognizer is a light stand-in (the page's plumbing is under test here: capture,
PCM16 at 16 kHz, JPEG frames, the WebSocket, the bars and the timeline; the model is tested
elsewhere). Skips only when the Chromium binary or playwright is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion import LABELS
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.live import serve_in_thread
from multimodal_emotion.serving.settings import Settings
from multimodal_emotion.types import Clip, ModalityView, Prediction

# Chromium, its flags, playwright and the page fixture (which fails a test on any JavaScript
# error) are the analysis page's test's; importing them skips this module as that one skips.
from test_serving_browser import CHROMIUM, CHROMIUM_ARGS, page, sync_api  # noqa: E402,F401

# a picture of the page with the stand-in recognizer (its labels are not the model's), written
# only on request (as test_serving_browser.py does)
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "live_page.png"
pytest.importorskip("websockets", reason="uvicorn needs websockets for /v1/stream")


class LoudnessRecognizer:
    """Answers from what reached it: the label follows the window's loudness (speech and pauses
    give different ones), the face view counts the frames. Records every clip."""

    fps, window_s, model_dir = 2.0, 10.0, "fake-model"

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.model = SimpleNamespace(default_fusion="product", fusions={"product": None})
        self.clips: list[Clip] = []

    def analyze_segment(self, clip: Clip, fusion: str | None = None) -> Prediction:
        self.clips.append(clip)
        rms = 0.0 if clip.audio is None else float(np.sqrt(np.mean(clip.audio ** 2)))
        k = min(len(LABELS) - 1, int(rms * 40))
        probs = {n: (0.64 if i == k else 0.06) for i, n in enumerate(LABELS)}
        n = 0 if clip.frames is None else len(clip.frames)
        views = {"audio": ModalityView(clip.audio is not None, LABELS[k], probs),
                 "text": ModalityView(False, None, None, "no transcript in this test"),
                 "face": ModalityView(n > 0, LABELS[k] if n else None, probs if n else None,
                                      None if n else "no frames", {"frames": n})}
        return Prediction(LABELS[k], probs, views, "product", clip.duration, confidence=0.64)


def fake_devices(clip: Path, out: Path) -> tuple[Path, Path]:
    """The clip as Chromium's fake camera (Y4M, 4:2:0) and microphone (16-bit WAV)."""
    import av

    y4m, wav = out / "clip.y4m", out / "clip.wav"
    with av.open(str(clip)) as src, av.open(str(y4m), "w", format="yuv4mpegpipe") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("rawvideo", rate=int(round(float(vin.average_rate or 25))))
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        for frame in src.decode(vin):
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)
    with av.open(str(clip)) as src, av.open(str(wav), "w", format="wav") as dst:
        aout = dst.add_stream("pcm_s16le", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for frame in src.decode(src.streams.audio[0]):
            for f in resampler.resample(frame):
                for packet in aout.encode(f):
                    dst.mux(packet)
        for packet in aout.encode():
            dst.mux(packet)
    return y4m, wav


@pytest.fixture(scope="module")
def browser(demo_clip, tmp_path_factory):
    y4m, wav = fake_devices(demo_clip, tmp_path_factory.mktemp("devices"))
    args = CHROMIUM_ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required"]
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield b
        b.close()


def test_live_page_streams_camera_and_microphone_and_shows_changing_results(page, tmp_path):
    rec = LoudnessRecognizer()
    app = create_app(lambda: rec, Settings(upload_dir=str(tmp_path), stream_window_s=2.0,
                                           stream_hop_s=1.0))
    with serve_in_thread(app) as url:
        page.goto(url + "/live")
        page.wait_for_selector("#status.pill-ok", timeout=30_000)
        page.click("#start")
        page.wait_for_function(
            "document.querySelectorAll('#live-timeline .seg').length >= 6", timeout=60_000)
        titles = page.eval_on_selector_all("#live-timeline .seg", "els => els.map(e => e.title)")
        label = page.text_content("#live-label") or ""
        assert any(label.startswith(n) for n in LABELS), label
        cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.modality)")
        assert cards == ["fused", "audio", "text", "face"]
        widths = page.eval_on_selector_all(
            ".bar-fill", "els => els.map(e => e.getBoundingClientRect().width)")
        assert len(widths) == 3 * len(LABELS)  # fused, audio, face (text: its reason)
        assert max(widths) > 5 * min(widths)  # the window's label stands out
        shot = DOCS_SCREENSHOT if os.environ.get("MER_UPDATE_SCREENSHOT") == "1" \
            else tmp_path / "live_page.png"
        page.screenshot(path=str(shot), full_page=True)
        page.click("#stop")
        page.wait_for_function("document.getElementById('status').textContent"
                               ".startsWith('stopped')", timeout=30_000)
        assert page.is_hidden("#error")
    # results arrive and change: the windows' labels follow the speech and its pauses
    assert len({t.split(": ")[1].split(" ")[0] for t in titles}) >= 2, titles
    # what reached the server: 2 s of 16 kHz audio per window (speech, not silence), frames
    full = [c for c in rec.clips if abs(c.duration - 2.0) < 1e-6]
    assert len(full) >= 5
    assert all(c.audio is not None and abs(len(c.audio) - 2 * 16000) <= 1 for c in full), \
        [(c.duration, None if c.audio is None else len(c.audio)) for c in full][-4:]
    assert max(float(np.abs(c.audio).max()) for c in full) > 0.05
    assert sum(c.frames is not None and len(c.frames) >= 2 for c in full) >= 4
    assert full[1].frames.shape[1:] == (240, 320, 3)
