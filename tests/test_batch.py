"""``mer batch`` (issue 19, part 2): many files in, one JSON line per file out, resumable, on
spawned worker processes or a local Ray cluster.

A fake recognizer stands in for the models so the runs take seconds: it decodes each file for
real (``media.load``, so a corrupt file raises the real error) and answers with fixed
probabilities as a real :class:`Prediction`. It is passed to the workers as a factory, the same
way the CLI passes the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion import media
from multimodal_emotion.batch import AnalyzeSpec, Batch, job, list_inputs, read_existing
from multimodal_emotion.batch.job import analyze_line
from multimodal_emotion.batch.results import ResultWriter
from multimodal_emotion.cli import main
from multimodal_emotion.errors import InputError, MediaError, ModelError
from multimodal_emotion.labels import LABELS
from multimodal_emotion.types import Prediction

LOADS_ENV = "MER_TEST_BATCH_LOADS"  # a file each fake worker appends its pid to when it loads


class FakeRecognizer:
    """Real decoding, fixed answer; a path containing 'boom' raises an unexpected error."""

    def __init__(self, spec: AnalyzeSpec) -> None:
        self.spec = spec
        if os.environ.get(LOADS_ENV):
            with open(os.environ[LOADS_ENV], "a") as f:
                f.write(f"{os.getpid()}\n")

    def analyze(self, source, fusion=None, *, labels=None, explain_words=False) -> Prediction:
        if "boom" in str(source):
            raise RuntimeError("something odd")
        clip = media.load(source, fps=self.spec.fps, max_duration=self.spec.max_duration_s)
        probs = {name: (0.4 if name == "happy" else 0.1) for name in LABELS}
        pred = Prediction("happy", probs, {}, fusion or "product", clip.duration,
                          timings_ms={"decode": 1.0, "total": 2.0}, path=str(source))
        return pred


def fake_factory(spec: AnalyzeSpec) -> FakeRecognizer:
    return FakeRecognizer(spec)


def broken_factory(spec: AnalyzeSpec) -> FakeRecognizer:
    raise ModelError("model folder /nowhere not found")


def write_wav(path: Path, seconds: float = 0.3, seed: int = 0) -> Path:
    """A real 16 kHz mono PCM WAV of noise."""
    pcm = (np.random.default_rng(seed).normal(size=int(16000 * seconds)) * 3000).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture()
def clips(tmp_path: Path, corrupt_file: Path) -> Path:
    """A folder: two readable WAVs (one in a subfolder), one corrupt MP4, and files a walk must
    leave alone (a CSV, a hidden WAV)."""
    d = tmp_path / "clips"
    write_wav(d / "a.wav", seed=1)
    write_wav(d / "sub" / "b.wav", seed=2)
    (d / "c.mp4").write_bytes(corrupt_file.read_bytes())
    (d / "notes.csv").write_text("path\nx.wav\n")
    write_wav(d / ".hidden.wav")
    return d


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# -- listing ----------------------------------------------------------------------------------
def test_folders_are_walked_for_media_and_manifests_are_read(clips: Path, tmp_path: Path):
    a, b, c = (str(clips / n) for n in ("a.wav", "sub/b.wav", "c.mp4"))
    assert list_inputs([clips]) == [a, c, b]  # sorted walk: files of a folder, then subfolders
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text(f"label,path\nhappy,clips/a.wav\nsad,{b}\n,\n")
    txt_manifest = clips / "sub" / "list.txt"
    txt_manifest.write_text("# one path a line, relative to this file\nb.wav\n\n../c.mp4\n")
    missing = tmp_path / "missing.mp4"
    assert list_inputs([csv_manifest, txt_manifest, missing, a]) == [a, b, c, str(missing)]


def test_a_csv_manifest_needs_a_path_column(tmp_path: Path):
    m = tmp_path / "m.csv"
    m.write_text("label,file\nhappy,a.wav\n")
    with pytest.raises(InputError, match="'path' column"):
        list_inputs([m])


# -- the results file -------------------------------------------------------------------------
def test_a_partial_last_line_is_cut_off_and_a_whole_one_kept(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    good = json.dumps({"path": "/a.wav", "label": "happy"}) + "\n" + \
        json.dumps({"path": "/b.wav", "error": "unreadable_media", "message": "x"}) + "\n"
    out.write_text(good + '{"path": "/c.wav", "lab')  # a crash mid-write
    seen = read_existing(out)
    assert seen.done == {"/a.wav"} and seen.failed == {"/b.wav"}
    assert seen.repaired_bytes == len('{"path": "/c.wav", "lab')
    assert out.read_text() == good
    out.write_text(good + json.dumps({"path": "/c.wav"}))  # whole, only the newline missing
    assert read_existing(out).done == {"/a.wav", "/c.wav"}
    assert out.read_text().endswith('"/c.wav"}\n')


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"path": "/a.wav"}\nname,label\n{"path": "/b.wav"}\n')
    with pytest.raises(InputError, match="line 2 is not a result line"):
        read_existing(out)


def test_two_runs_cannot_write_one_file(tmp_path: Path):
    with ResultWriter(tmp_path / "r.jsonl"):
        with pytest.raises(InputError, match="another `mer batch`"):
            ResultWriter(tmp_path / "r.jsonl")


def test_each_kind_of_failure_becomes_its_line(clips: Path):
    spec, rec = AnalyzeSpec(), FakeRecognizer(AnalyzeSpec())
    path = str(clips / "c.mp4")
    r = analyze_line(rec, spec, path)
    with pytest.raises(MediaError) as exc:  # the same message `mer analyze` prints
        media.load(path)
    assert r.error == "unreadable_media"
    assert json.loads(r.line) == {"path": path, "error": "unreadable_media",
                                  "message": str(exc.value)}
    boom = analyze_line(rec, spec, "/x/boom.wav")
    assert json.loads(boom.line)["message"] == "RuntimeError: something odd"
    assert boom.error == "internal_error"
    ok = analyze_line(rec, spec, str(clips / "a.wav"))
    assert ok.error is None and json.loads(ok.line) == rec.analyze(clips / "a.wav").to_dict()


# -- runs on worker processes -----------------------------------------------------------------
def test_a_run_resumes_where_it_stopped(clips: Path, tmp_path: Path):
    out = tmp_path / "r.jsonl"
    s = Batch([clips], out).run(AnalyzeSpec(), workers=1, factory=fake_factory)
    assert (s.done, s.failed, s.skipped, s.errors) == (2, 1, 0, {"unreadable_media": 1})
    assert len(s.load_s) == 1 and s.files_per_s > 0
    first = lines(out)
    assert {d["path"] for d in first} == set(list_inputs([clips]))
    assert {d["label"] for d in first if "error" not in d} == {"happy"}
    # a crash mid-write, then a new file: only the new file is analyzed
    with out.open("a") as f:
        f.write('{"path": "/cut/short", "la')
    write_wav(clips / "d.wav", seed=3)
    batch = Batch([clips], out)
    assert batch.todo == [str(clips / "d.wav")] and batch.summary.repaired_bytes > 0
    s = batch.run(AnalyzeSpec(), workers=1, factory=fake_factory)
    assert (s.done, s.failed, s.skipped, s.earlier_failures) == (1, 0, 3, 1)
    assert lines(out)[:3] == first and lines(out)[3]["path"] == str(clips / "d.wav")
    # --retry-failed: the corrupt file is tried again (and fails again); a later line wins
    s = Batch([clips], out, retry_failed=True).run(AnalyzeSpec(), workers=1,
                                                    factory=fake_factory)
    assert (s.done, s.failed, s.skipped) == (0, 1, 3)
    assert len(lines(out)) == 5


def test_two_workers_each_load_the_models_once(clips: Path, tmp_path: Path, monkeypatch):
    for i in range(6):
        write_wav(clips / f"more{i}.wav", seed=10 + i)
    loads = tmp_path / "loads.txt"
    monkeypatch.setenv(LOADS_ENV, str(loads))
    out = tmp_path / "r.jsonl"
    s = Batch([clips], out).run(AnalyzeSpec(fps=2.0), workers=2, factory=fake_factory)
    assert (s.done, s.failed) == (8, 1) and len(lines(out)) == 9
    pids = loads.read_text().split()
    assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids)  # once per process, not per file
    assert os.getpid() not in map(int, pids)  # the parent only writes
    assert len(s.load_s) <= len(pids)


def test_a_model_that_does_not_load_stops_the_run(clips: Path, tmp_path: Path):
    with pytest.raises(ModelError, match="/nowhere"):
        Batch([clips], tmp_path / "r.jsonl").run(AnalyzeSpec(), workers=1,
                                                  factory=broken_factory)


# -- the shell --------------------------------------------------------------------------------
def test_cli_writes_lines_prints_a_summary_and_says_failures(clips: Path, tmp_path: Path,
                                                            monkeypatch, capsys):
    monkeypatch.setattr(job, "load_recognizer", fake_factory)
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(clips), "--out", str(out), "--workers", "1"]) == 3
    err = capsys.readouterr().err
    assert "done 2, skipped 0, failed 1 (unreadable_media 1)" in err and "files/s" in err
    assert "\r" not in err  # stderr is not a terminal here: no progress bar
    assert len(lines(out)) == 3
    assert main(["batch", str(clips), "--out", str(out), "--quiet"]) == 0  # all done before
    assert capsys.readouterr().err == "" and len(lines(out)) == 3


def test_cli_refuses_an_input_taken_for_a_ray_address(clips: Path, tmp_path: Path, capsys):
    code = main(["batch", "--ray", str(clips), str(clips / "a.wav"), "--out",
                 str(tmp_path / "r.jsonl")])
    assert code == 2 and "not a Ray address" in capsys.readouterr().err


# -- Ray ----------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, at import
def test_a_local_ray_cluster_analyzes_two_files(clips: Path, tmp_path: Path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install '.[ray]'")
    pytest.importorskip("ray.data")
    # Ray's workers inherit this environment: they must import this module (the factory)
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [here, str(Path(job.__file__).parents[2]), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             logging_level="ERROR")
    try:
        out = tmp_path / "r.jsonl"
        s = Batch([clips / "a.wav", clips / "c.mp4"], out).run(
            AnalyzeSpec(), workers=2, ray="local", factory=fake_factory)
    finally:
        ray.shutdown()
    assert (s.done, s.failed, s.errors) == (1, 1, {"unreadable_media": 1})
    assert 1 <= len(s.load_s) <= 2
    by_path = {d["path"]: d for d in lines(out)}
    assert by_path[str(clips / "a.wav")]["label"] == "happy"
    assert by_path[str(clips / "c.mp4")]["error"] == "unreadable_media"


def test_a_ray_actor_that_cannot_load_stops_the_run_with_our_error():
    """Ray Data gives the driver its own exception types, so the actor sends a model problem
    back as a row, and the driver raises it as itself (no cluster needed to check that)."""
    from multimodal_emotion.batch.ray_backend import FATAL, RayWorker, _fatal

    rows = RayWorker(AnalyzeSpec(), broken_factory, 1)({"path": np.array(["/x.wav"])})
    assert rows["error"] == [FATAL]
    err = _fatal(json.loads(rows["line"][0]))
    assert isinstance(err, ModelError) and "/nowhere" in str(err)
    ok = RayWorker(AnalyzeSpec(), fake_factory, 1)({"path": np.array(["/x/boom.wav"])})
    assert ok["error"] == ["internal_error"] and ok["path"] == ["/x/boom.wav"]


def test_ray_is_imported_only_by_a_ray_run(clips: Path, tmp_path: Path, monkeypatch):
    code = ("import sys, multimodal_emotion.cli, multimodal_emotion.batch; "
            "print('ray' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(job.__file__).parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(InputError, match=r"pip install 'multimodal-emotion\[ray\]'"):
        Batch([clips / "a.wav"], tmp_path / "r.jsonl").run(AnalyzeSpec(), ray="local",
                                                           factory=fake_factory)
