"""``mer batch``'s engine: list the inputs, skip what the results file already answers, run the
rest on worker processes (or a Ray cluster) that each load the models once, and append each
line as it arrives.

Why processes and not threads: one analysis is Python-heavy between the engines' GIL-free
parts, so a second process is what lets two cores (or sixteen) work at once; each pays the model
load once and then streams files. Only this (parent) process writes the results file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import MerError
from .inputs import list_inputs
from .job import AnalyzerFactory, AnalyzeSpec, Result, Worker
from .results import ResultWriter, read_existing


def default_workers() -> int:
    """One worker per two cores: an analysis already keeps about two busy (the face encoder
    runs in a thread beside audio and transcription), and each worker holds its own copy of
    the models (about 1.5 GB)."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass
class Summary:
    """How a run went: counts of this run, the time, and each worker's model load."""

    done: int = 0
    failed: int = 0
    skipped: int = 0  # already in the results file
    earlier_failures: int = 0  # error lines already there, not retried
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> count (this run)
    seconds: float = 0.0
    load_s: list[float] = field(default_factory=list)
    repaired_bytes: int = 0  # a partial last line cut off before appending

    @property
    def files_per_s(self) -> float:
        n = self.done + self.failed
        return n / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        parts = [f"done {self.done}", f"skipped {self.skipped}", f"failed {self.failed}"]
        if self.errors:
            parts[-1] += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) + ")"
        text = ", ".join(parts) + f"; {self.files_per_s:.2f} files/s over {self.seconds:.1f} s"
        if self.load_s:
            text += (f" (models loaded once per worker: {len(self.load_s)} x "
                     f"{sum(self.load_s) / len(self.load_s):.1f} s)")
        if self.earlier_failures:
            text += (f"; {self.earlier_failures} earlier failures left as they were "
                     "(--retry-failed to try them again)")
        return text


class Batch:
    """A results file opened for appending, with the inputs it still lacks.

    Opening takes the file's lock first, then reads it (cutting off a partial last line), so
    two runs cannot both decide what is left to do.
    """

    def __init__(self, items: Iterable[str | os.PathLike], out: str | os.PathLike, *,
                 retry_failed: bool = False) -> None:
        paths = list_inputs(items)
        self.out = Path(out)
        self.writer = ResultWriter(self.out)
        try:
            existing = read_existing(self.out)
        except BaseException:
            self.writer.close()
            raise
        skip = existing.done if retry_failed else existing.done | existing.failed
        self.todo = [p for p in paths if p not in skip]
        self.summary = Summary(skipped=len(paths) - len(self.todo),
                               earlier_failures=0 if retry_failed else
                               len(existing.failed & set(paths)),
                               repaired_bytes=existing.repaired_bytes)

    def run(self, spec: AnalyzeSpec, *, workers: int | None = None, ray: str | None = None,
            ray_cpus: float = 1.0, factory: AnalyzerFactory | None = None,
            on_result: Callable[[Result], None] | None = None) -> Summary:
        """Analyze every input still to do, once (the file is closed after). ``ray``: a Ray
        address instead of local processes (``"local"``: whatever ``ray.init()`` finds or
        starts), each actor reserving ``ray_cpus``. ``workers`` defaults to one per two local
        cores, or on Ray to as many actors as the cluster's CPUs hold. Each line is written
        and flushed as it arrives, before ``on_result`` sees it."""
        s = self.summary
        t0 = time.perf_counter()
        try:
            if not self.todo:
                return s
            if ray is not None:
                from .ray_backend import ray_results  # the only import of Ray

                results = ray_results(self.todo, spec, factory, workers, ray, ray_cpus)
            else:
                results = local_results(self.todo, spec, factory, workers or default_workers())
            for r in results:
                self.writer.write(r.line)
                if r.error is None:
                    s.done += 1
                else:
                    s.failed += 1
                    s.errors[r.error] = s.errors.get(r.error, 0) + 1
                if r.load_s is not None:
                    s.load_s.append(r.load_s)
                if on_result is not None:
                    on_result(r)
            return s
        finally:
            s.seconds = time.perf_counter() - t0
            self.writer.close()


# -- local worker processes -------------------------------------------------------------------
_worker: Worker | None = None
_init_error: BaseException | None = None


def _init_worker(spec: AnalyzeSpec, factory: AnalyzerFactory | None, threads: int) -> None:
    """Runs once in each worker process: load the models. A failure is kept and raised by the
    first task; raised here, the pool would only see a dead worker."""
    global _worker, _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        _worker = Worker(spec, factory, threads)
    except BaseException as exc:  # noqa: BLE001 - re-raised by _work
        _init_error = exc


def _work(path: str) -> Result:
    if _worker is None:
        raise _init_error or MerError("batch worker was not initialised")
    return _worker(path)


def local_results(paths: list[str], spec: AnalyzeSpec, factory: AnalyzerFactory | None,
                  workers: int) -> Iterator[Result]:
    """Results of ``paths`` in the order they finish, from ``workers`` spawned processes.

    Spawned, not forked: a fork of a process that already holds torch or OpenMP threads can
    deadlock, and spawn behaves the same on Linux and macOS. At most two inputs per worker are
    in flight, so memory stays flat whatever the number of inputs and an interrupt loses
    little.
    """
    workers = max(1, min(workers, len(paths)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(spec, factory, threads))
    todo = iter(paths)
    pending: set[Future[Result]] = set()

    def refill() -> None:
        while len(pending) < 2 * workers:
            path = next(todo, None)
            if path is None:
                return
            pending.add(pool.submit(_work, path))

    try:
        refill()
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
            refill()
    except BrokenProcessPool:
        raise MerError("a batch worker process died (out of memory, or a crash in a decoder); "
                       "finished lines are saved: rerun the same command to resume") from None
    except BaseException:  # an error or Ctrl-C: stop the workers now, not after their files
        # (3.14 has pool.terminate_workers(); before it, the processes are only reachable here)
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
