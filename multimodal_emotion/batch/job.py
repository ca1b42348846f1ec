"""One input, one result line: what every batch worker runs, whichever backend started it.

A worker builds its analyzer once (:func:`load_analyzer`, the expensive part: Whisper, the
sentence encoder and the face models) and then calls :func:`analyze_line` per file. The line is
exactly what ``mer analyze --json`` prints for that file, error lines included, and it is made
in the worker so that serialization runs in parallel and only a string crosses back.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

from ..errors import MediaError, ModelError


class Analyzer(Protocol):
    """What a worker needs of :class:`~multimodal_emotion.recognizer.EmotionRecognizer`."""

    def analyze(self, source: Any, fusion: str | None = None, *, labels: Any = None,
                explain_words: bool = False) -> Any: ...


@dataclass(frozen=True)
class AnalyzeSpec:
    """The ``mer analyze`` options a batch passes to every worker (picklable, so it travels
    to worker processes and Ray actors). ``labels`` is an already loaded
    :class:`~multimodal_emotion.label_maps.LabelMap`: a bad map fails before any worker starts,
    and cluster nodes need not see the YAML file."""

    model: str | None = None
    fusion: str | None = None
    window_s: float = 10.0
    fps: float = 4.0
    max_duration_s: float | None = 3600.0
    labels: Any = None
    explain: bool = False


# Builds an analyzer from a spec; must be picklable (a module-level function or class) because
# it is sent to each worker. Tests inject one that needs no model weights.
AnalyzerFactory = Callable[[AnalyzeSpec], Analyzer]


def load_recognizer(spec: AnalyzeSpec) -> Analyzer:
    """The default factory: the model folder ``spec.model`` (``None``: the shipped one)."""
    from ..recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(spec.model, window_s=spec.window_s, fps=spec.fps,
                                             max_duration_s=spec.max_duration_s)


class Result(NamedTuple):
    """A finished input as it crosses back to the writer: its line, the error kind (``None``
    when it was analyzed) and, on a worker's first result only, the seconds the worker spent
    loading its models (``None`` otherwise), so a run can report the one-off cost."""

    path: str
    line: str
    error: str | None
    load_s: float | None = None


def error_line(path: str, kind: str, message: str) -> str:
    """The line ``mer analyze --json`` prints for an input it could not analyze."""
    return json.dumps({"path": path, "error": kind, "message": message})


def analyze_line(analyzer: Analyzer, spec: AnalyzeSpec, path: str) -> Result:
    """Analyze ``path``: its JSON line, or an error line. Unreadable media is the file's fault
    and becomes ``unreadable_media``; a model problem is every file's and is raised (the run
    stops); anything else is recorded as ``internal_error`` with its type, so one odd file
    does not end a run of thousands, and the summary and exit code still say it happened."""
    try:
        pred = analyzer.analyze(path, fusion=spec.fusion, labels=spec.labels,
                                explain_words=spec.explain)
    except MediaError as exc:
        return Result(path, error_line(path, "unreadable_media", str(exc)), "unreadable_media")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded per file, see the docstring
        return Result(path, error_line(path, "internal_error", f"{type(exc).__name__}: {exc}"),
                      "internal_error")
    return Result(path, json.dumps(pred.to_dict()), None)


class Worker:
    """A loaded analyzer plus what both backends share: the model load, timed once and
    reported with the first result, and torch's thread count, so that N workers share the
    cores instead of each taking them all (``threads``; ``None`` leaves torch's default)."""

    def __init__(self, spec: AnalyzeSpec, factory: AnalyzerFactory | None = None,
                 threads: int | None = None) -> None:
        # as in `mer`'s main: weights ship in packages, never ask a hub (a Ray node does not
        # inherit the driver's environment)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        t0 = time.perf_counter()
        self.spec = spec
        self.analyzer = (factory or load_recognizer)(spec)
        self._load_s: float | None = time.perf_counter() - t0
        if threads and "torch" in sys.modules:  # a factory without torch does not load it
            sys.modules["torch"].set_num_threads(threads)

    def __call__(self, path: str) -> Result:
        result = analyze_line(self.analyzer, self.spec, path)
        load_s, self._load_s = self._load_s, None
        return result._replace(load_s=load_s)
