"""The Ray adapter: the same per-file work as the local pool, run by a Ray Data actor pool so
that it spreads over a cluster. The only module that imports Ray (lazily: ``mer`` works
without it).

Each actor builds one :class:`~multimodal_emotion.batch.job.Worker` (models loaded once per
actor) and turns batches of paths into result lines; the driver iterates the results as they
stream back and writes them itself, so the results file lives with the driver and only paths
and short strings cross the cluster. Inputs must be readable at the same absolute path on every
node (shared storage); see README, "Batch".
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Iterator

from .. import errors
from ..errors import InputError, MerError
from .job import AnalyzerFactory, AnalyzeSpec, Result, Worker

# A Ray Data block is what an actor takes at a time and what comes back to the driver at once,
# so one file per block (results stream back file by file, as from the local pool) up to this
# many blocks; past it blocks hold several files, keeping the driver's bookkeeping bounded
# (one file takes a second or more, a block costs Ray milliseconds).
MAX_BLOCKS = 10_000
FATAL = "__fatal__"  # the error kind of a row that carries an error which must stop the run


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra, not only ray core
    except ImportError:
        raise InputError("--ray needs Ray Data: pip install 'multimodal-emotion[ray]' (on the "
                         "driver and on every node of the cluster)") from None
    return ray


class RayWorker:
    """A Ray Data callable class: one per actor, models loaded in ``__init__`` (once)."""

    def __init__(self, spec: AnalyzeSpec, factory: AnalyzerFactory | None, threads: int) -> None:
        self._error: BaseException | None = None
        try:
            self.worker: Worker | None = Worker(spec, factory, threads)
        except Exception as exc:  # noqa: BLE001 - sent back by the first batch
            self.worker, self._error = None, exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        try:
            if self.worker is None:
                raise self._error or MerError("batch actor was not initialised")
            results = [self.worker(str(p)) for p in batch["path"]]
        except MerError as exc:
            # Ray Data hands the driver its own exception types with ours only as text, so a
            # model problem travels as data and is raised again, as itself, by the driver
            results = [Result(str(p), json.dumps({"type": type(exc).__name__,
                                                  "message": str(exc)}), FATAL)
                       for p in batch["path"]]
        return {"path": [r.path for r in results], "line": [r.line for r in results],
                "error": [r.error or "" for r in results],
                "load_s": [math.nan if r.load_s is None else r.load_s for r in results]}


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``"auto"``, ``"host:6379"``, ``"ray://head:10001"``)
    or, for ``"local"``, whatever ``ray.init()`` finds (``RAY_ADDRESS``, a ``ray start`` on
    this machine) or starts here; ``False`` when Ray was already initialised by the caller (a
    test, a notebook), which then owns its shutdown."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    if address == "local":
        ray.init(**kwargs)
    else:
        ray.init(address=address, **kwargs)
    return True


def ray_results(paths: list[str], spec: AnalyzeSpec, factory: AnalyzerFactory | None,
                workers: int | None, address: str, cpus_per_worker: float = 1.0
                ) -> Iterator[Result]:
    """Results of ``paths`` as Ray Data streams them back from ``workers`` actors (``None``:
    as many as the cluster's CPUs hold at ``cpus_per_worker`` each)."""
    ray = _import_ray()
    started = connect(address)
    try:
        if workers is None:
            cpus = ray.cluster_resources().get("CPU", 1.0)
            workers = max(1, int(cpus // cpus_per_worker))
        workers = min(workers, len(paths))
        ray.data.DataContext.get_current().enable_progress_bars = False  # the CLI draws one
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # not its per-dataset INFO
        # ... nor a warning that its bars are off (2.60 logs it from this internal module)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        ds = ray.data.from_items([{"path": p} for p in paths],
                                 override_num_blocks=min(len(paths), MAX_BLOCKS))
        ds = ds.map_batches(RayWorker, fn_constructor_args=(spec, factory,
                                                            max(1, math.ceil(cpus_per_worker))),
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
                            num_cpus=cpus_per_worker)
        for row in ds.iter_rows():
            if row["error"] == FATAL:
                raise _fatal(json.loads(row["line"]))
            load = float(row["load_s"])
            yield Result(str(row["path"]), str(row["line"]), str(row["error"]) or None,
                         None if math.isnan(load) else load)
    finally:
        if started:
            ray.shutdown()


def _fatal(info: dict[str, str]) -> MerError:
    """An actor's model problem as the exception of ours it was (ModelError: exit 4)."""
    cls = getattr(errors, info.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, MerError)):
        cls = MerError
    return cls(info.get("message", "a batch actor failed"))
