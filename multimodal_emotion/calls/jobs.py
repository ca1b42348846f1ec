"""Call jobs for the HTTP API: a call is too long for one request, so it is stored, queued,
analyzed by one background worker, and fetched later.

Each job is a folder ``<root>/<id>/`` holding ``job.json`` (status, progress, options; small,
rewritten atomically: a temporary file then ``os.replace``, so a crash never leaves half a
state), the uploaded media until it has been analyzed (then it is deleted: the result is what
is kept), and ``result.json``. :meth:`JobStore.delete` removes the folder, whatever state the
job is in (a running one stops at its next turn).

Restart: a server that stops cleanly (:meth:`JobStore.stop`) halts the running job at its next
turn and puts it back in the queue, media and all. A job found ``running`` when the store opens
was cut off by a crash: it is marked ``failed`` with a message saying so, and its media is
deleted. Jobs ``queued`` are queued again, in the order they were submitted.

Ids are 32 random hex digits: a job's result holds what a customer said, and its id is the only
key to it besides the API key. Finished jobs are deleted ``keep_s`` after they finish
(``MER_CALL_KEEP_H``), so results do not pile up forever.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import MediaError, MerError

log = logging.getLogger("multimodal_emotion.calls")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MEDIA = "media"
STATE = "job.json"
RESULT = "result.json"
INTERRUPTED = ("the server stopped while this call was being analyzed; submit it again")

# runner(media_path, options, progress(done, total, at_s, duration), should_stop) -> result
Runner = Callable[[Path, Mapping[str, Any], Callable[..., None], Callable[[], bool]],
                  dict[str, Any]]


def write_json_atomic(path: Path, data: Any) -> None:
    """``path`` holds either its old content or all of ``data``, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class JobStore:
    """Jobs on disk under ``root`` and the one worker thread that runs them."""

    def __init__(self, root: str | os.PathLike, runner: Runner, max_waiting: int = 8,
                 ready: Callable[[], bool] = lambda: True, progress_every_s: float = 0.5,
                 keep_s: float | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.runner, self.max_waiting, self.ready = runner, max_waiting, ready
        self.keep_s = keep_s  # finished jobs older than this are deleted (None: kept)
        self.progress_every_s = progress_every_s
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._deleted: set[str] = set()
        self._waiting = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._recover()
        self.expire()

    # -- state on disk ---------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def _read(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self._dir(job_id) / STATE).read_text())
        except (KeyError, OSError, json.JSONDecodeError):
            return None

    def _write(self, job_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            folder = self._dir(job_id)
            if job_id in self._deleted or not folder.is_dir():
                return
            write_json_atomic(folder / STATE, state)

    def _recover(self) -> None:
        """Fail the jobs a stopped server was running; queue again the ones it had queued."""
        queued = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or not JOB_ID.match(folder.name):
                continue
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            state = self._read(folder.name)
            if state is None:  # never finished being created: nothing to keep
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if state["status"] == "running":
                state.update(status="failed", error={"error": "interrupted",
                                                     "message": INTERRUPTED},
                             finished=time.time())
                (folder / MEDIA).unlink(missing_ok=True)
                self._write(folder.name, state)
                log.info("call job %s was running when the server stopped: marked failed",
                         folder.name)
            elif state["status"] == "queued":
                if (folder / MEDIA).is_file():
                    queued.append((state.get("created", 0.0), folder.name))
                else:
                    state.update(status="failed", error={"error": "interrupted",
                                                         "message": INTERRUPTED})
                    self._write(folder.name, state)
        for _, job_id in sorted(queued):
            self._waiting += 1
            self._queue.put(job_id)

    def expire(self, now: float | None = None) -> int:
        """Delete finished jobs (done or failed) that finished more than ``keep_s`` ago: a
        result holds what a customer said, and nobody may come back for it. Returns how many
        were deleted. Runs when the store opens and at each submission."""
        if self.keep_s is None:
            return 0
        now = time.time() if now is None else now
        gone = 0
        for folder in self.root.iterdir():
            if not JOB_ID.match(folder.name):
                continue
            state = self._read(folder.name)
            if state and state.get("status") in ("done", "failed") \
                    and now - float(state.get("finished") or state.get("created") or now) \
                    > self.keep_s:
                gone += self.delete(folder.name)
        if gone:
            log.info("deleted %d finished call job(s) older than %g h", gone, self.keep_s / 3600)
        return gone

    # -- the API's operations --------------------------------------------------------------
    def full(self) -> bool:
        with self._lock:
            return self._waiting >= self.max_waiting

    def submit(self, media: Path, filename: str | None, options: Mapping[str, Any]
               ) -> dict[str, Any]:
        """Move the uploaded ``media`` into a new job and queue it. Raises :class:`JobsFull`."""
        self.expire()
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise JobsFull(self.max_waiting)
            job_id = secrets.token_hex(16)
            folder = self._dir(job_id)
            folder.mkdir()
            os.replace(media, folder / MEDIA)
            state = {"id": job_id, "status": "queued", "created": time.time(),
                     "filename": filename, "options": dict(options),
                     "progress": {"turns_done": 0, "turns_total": None, "fraction": 0.0}}
            self._write(job_id, state)
            self._waiting += 1
        self._queue.put(job_id)
        return state

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's state (with ``result`` once done), or ``None`` for an unknown id."""
        state = self._read(job_id)
        if state is None:
            return None
        if state["status"] == "done":
            try:
                state["result"] = json.loads((self._dir(job_id) / RESULT).read_text())
            except (OSError, json.JSONDecodeError):
                return None  # deleted between the two reads
        return state

    def delete(self, job_id: str) -> bool:
        """Remove every file of the job; a running job stops at its next turn."""
        with self._lock:
            try:
                folder = self._dir(job_id)
            except KeyError:
                return False
            if not folder.is_dir():
                return False
            self._deleted.add(job_id)
            shutil.rmtree(folder, ignore_errors=True)
            return True

    # -- the worker ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mer-calls", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            while not self.ready() and not self._stop.is_set():
                time.sleep(0.1)  # a job resumed at start waits for the models
            with self._lock:
                self._waiting -= 1
            if self._stop.is_set():
                return
            try:
                self._run(job_id)
            except Exception:  # noqa: BLE001 -- one bad job must not stop the worker
                log.exception("call job %s failed unexpectedly", job_id)

    def _run(self, job_id: str) -> None:
        state = self._read(job_id)
        if state is None or job_id in self._deleted or state["status"] != "queued":
            return
        folder = self._dir(job_id)
        state.update(status="running", started=time.time())
        self._write(job_id, state)
        last = [0.0]

        def progress(done: int, total: int, at_s: float, duration: float) -> None:
            state["progress"] = {"phase": "turns" if total == 0 else "emotion",
                                 "turns_done": done, "turns_total": total or None,
                                 "seconds_done": round(at_s, 2), "duration": round(duration, 2),
                                 "fraction": round(done / total, 4) if total else 0.0}
            now = time.monotonic()
            if now - last[0] >= self.progress_every_s or (total and done == total):
                last[0] = now
                self._write(job_id, state)

        try:
            result = self.runner(folder / MEDIA, state.get("options", {}), progress,
                                 lambda: job_id in self._deleted or self._stop.is_set())
        except InterruptedError:
            if job_id not in self._deleted:  # the server is stopping: queued again, with its
                state.update(status="queued",  # media, for the next start to resume
                             progress={"turns_done": 0, "turns_total": None, "fraction": 0.0})
                state.pop("started", None)
                self._write(job_id, state)
            return
        except MediaError as exc:
            state.update(status="failed", error={"error": "unreadable_media",
                                                 "message": _hide(str(exc), folder)})
        except MerError as exc:
            state.update(status="failed", error={"error": "invalid_request" if
                                                 exc.exit_code == 2 else "internal_error",
                                                 "message": _hide(str(exc), folder)})
        except Exception as exc:  # noqa: BLE001 -- reported in the job, logged with its trace
            log.exception("call job %s failed", job_id)
            state.update(status="failed", error={"error": "internal_error",
                                                 "message": f"{type(exc).__name__}: "
                                                            f"{_hide(str(exc), folder)}"})
        else:
            with self._lock:
                if job_id in self._deleted or not folder.is_dir():
                    return
                write_json_atomic(folder / RESULT, result)
            state["status"] = "done"
        self._finish(job_id, state)

    def _finish(self, job_id: str, state: dict[str, Any]) -> None:
        state["finished"] = time.time()
        with self._lock:
            folder = self._dir(job_id)
            (folder / MEDIA).unlink(missing_ok=True)  # analyzed: the media is not kept
            self._write(job_id, state)


class JobsFull(MerError):
    """As many calls as allowed already wait for the worker."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} calls are already waiting to be analyzed; retry later")


def _hide(message: str, folder: Path) -> str:
    """Error text without the server's folders."""
    return message.replace(str(folder / MEDIA), "the upload").replace(str(folder), "the job")
