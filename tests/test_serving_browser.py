"""The web page in a real browser: headless Debian Chromium driven by Playwright, against a live
uvicorn with the real shipped model. Saves ``docs/serve_page.png``.

Playwright's own browser download is never used (it needs the network); ``.ci/run`` installs
Debian's ``chromium`` when it is missing. Skips only when that binary or the ``playwright``
package is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multimodal_emotion import LABELS
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.live import serve_in_thread
from multimodal_emotion.serving.settings import Settings

CHROMIUM = os.environ.get("MER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# The README's screenshot; refreshed only on request (MER_UPDATE_SCREENSHOT=1), so a test run
# leaves the working tree clean. Otherwise the screenshot goes to the test's temp folder.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve_page.png"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; .ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def real_rec():
    from multimodal_emotion import EmotionRecognizer

    return EmotionRecognizer.from_pretrained()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def server(real_rec, tmp_path):
    uploads = tmp_path / "uploads"
    app = create_app(lambda: real_rec, Settings(upload_dir=str(uploads)))
    with serve_in_thread(app) as url:
        yield url
    assert [p for p in uploads.rglob("*") if p.is_file()] == []


def bar_widths(page) -> list[float]:
    return page.eval_on_selector_all(
        ".bar-fill", "els => els.map(e => e.getBoundingClientRect().width)")


def test_page_analyzes_the_demo_clip_and_draws_bars(page, server, demo_clip, tmp_path):
    page.goto(server)
    page.wait_for_selector("#status.pill-ok", timeout=30_000)
    page.set_input_files("#file", str(demo_clip))  # choosing a file starts the analysis
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    label = page.text_content("#fused-label") or ""
    assert any(label.startswith(name) for name in LABELS), label
    cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.modality)")
    assert cards == ["fused", "audio", "text", "face"]
    widths = bar_widths(page)
    assert len(widths) == 4 * len(LABELS) and all(w > 0 for w in widths)
    assert max(widths) > 50  # the winning label's bar is clearly drawn
    assert "happy" in (page.text_content("#transcript") or "").lower()
    assert "/ " in (page.text_content("#facts") or "")  # faces found: n / m frames
    assert page.is_hidden("#error") and page.is_hidden("#progress")
    # which modality decided: a signed Shapley bar per modality, and the experts side by side
    assert page.is_visible("#why-box")
    rows = page.eval_on_selector_all(".why-row", "els => els.map(e => e.dataset.modality)")
    assert rows == ["audio", "text", "face"]
    fills = page.eval_on_selector_all(".why-fill",
                                      "els => els.map(e => e.getBoundingClientRect().width)")
    assert max(fills) > 5
    assert "agree" in (page.text_content("#agreement") or "")
    assert "%" in (page.text_content("#fused-label .conf") or "")
    shot = DOCS_SCREENSHOT if os.environ.get("MER_UPDATE_SCREENSHOT") == "1" \
        else tmp_path / "serve_page.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert 10_000 < shot.stat().st_size < 300_000


def test_page_shows_the_timeline_of_a_long_clip_and_readable_errors(page, server, long_clip,
                                                                    tmp_path):
    page.goto(server)
    page.wait_for_selector("#status.pill-ok", timeout=30_000)
    page.set_input_files("#file", str(long_clip))
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    segments = page.eval_on_selector_all(".seg", "els => els.map(e => e.className)")
    assert len(segments) >= 2 and all(any(f"c-{n}" in c for n in LABELS) for c in segments)
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are meeting notes, not a video\n" * 30)
    page.set_input_files("#file", str(fake))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    text = page.text_content("#error") or ""
    assert "not a supported audio or video" in text and "415" in text, text


def test_page_asks_for_the_api_key_when_the_server_needs_one(page, real_rec, tmp_path,
                                                             demo_clip):
    app = create_app(lambda: real_rec, Settings(upload_dir=str(tmp_path), api_key="k3y"))
    with serve_in_thread(app) as url:
        page.goto(url)
        page.wait_for_selector("#key-row:not([hidden])", timeout=30_000)
        page.set_input_files("#file", str(demo_clip))
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        assert "401" in (page.text_content("#error") or "")
        page.fill("#api-key", "k3y")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=120_000)
        assert len(bar_widths(page)) == 4 * len(LABELS)


def test_page_uploads_a_call_and_shows_its_report(page, tmp_path):
    """The call panel with the light fakes of test_calls (no model): upload, progress, the
    report in its sandboxed frame, then delete."""
    from test_calls import AGENT, CUSTOMER, FakeFinder, LoudnessRecognizer, stereo_turns, \
        write_stereo

    wav = write_stereo(tmp_path / "call.wav", AGENT, CUSTOMER, 35.0)
    finder = FakeFinder(stereo_turns())
    app = create_app(LoudnessRecognizer, Settings(upload_dir=str(tmp_path / "up"),
                                                  data_dir=str(tmp_path / "data")),
                     call_turns=(finder.find, finder.roles))
    with serve_in_thread(app) as url:
        page.goto(url)
        page.wait_for_selector("#status.pill-ok", timeout=30_000)
        page.set_input_files("#call-file", str(wav))
        page.select_option("#call-agent-channel", "left")
        page.click("#call-go")
        page.wait_for_selector("#call-report:not([hidden])", timeout=30_000)
        assert "1 escalation" in page.text_content("#call-status")
        report = page.frame_locator("#call-report")
        assert "Call report: call.wav" in report.locator("h1").text_content()
        assert report.locator("svg rect").count() > 8
        page.click("#call-delete")
        page.wait_for_function("document.getElementById('call-status').textContent"
                               ".startsWith('Deleted')")
    assert [p for p in (tmp_path / "data" / "calls").glob("*/*") if p.is_file()] == []
