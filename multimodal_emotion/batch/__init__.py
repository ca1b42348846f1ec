"""Batch analysis: many files in, one JSON line per file out, resumable, on local worker
processes or a Ray cluster (``mer batch``). See :class:`~.runner.Batch`."""

from .inputs import MEDIA_SUFFIXES, list_inputs, read_manifest
from .job import AnalyzeSpec, Result, load_recognizer
from .results import ResultWriter, read_existing
from .runner import Batch, Summary, default_workers

__all__ = ["AnalyzeSpec", "Batch", "MEDIA_SUFFIXES", "Result", "ResultWriter", "Summary",
           "default_workers", "list_inputs", "load_recognizer", "read_existing", "read_manifest"]
