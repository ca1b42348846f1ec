"""Load test of ``mer serve``: N concurrent clients upload 5-second clips for a fixed time.

Starts ``mer serve`` on a free loopback port (or targets ``--url``), waits for ``/healthz``,
sends one warm-up request, then runs ``--clients`` threads that each upload the clip to
``POST /v1/analyze`` back to back for ``--duration`` seconds. Prints requests, requests/s,
latency percentiles, errors by status, and the server's resident memory (RSS from
``/proc/<pid>/status``) after loading, after warm-up, at the end, and its peak.

Target (issue 4, 2 CPU cores): 4 clients, p95 <= 3 s, zero errors, memory flat.

    .venv/bin/python bench/serve_load.py                       # 4 clients, 300 s
    .venv/bin/python bench/serve_load.py --duration 60 --clients 4
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8000 --pid 1234
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from tqdm import tqdm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="target a running server instead of starting one")
    p.add_argument("--pid", type=int, help="the server's pid, for memory (with --url)")
    p.add_argument("--clip", help="clip to upload (default: a 5 s demo clip built here)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    p.add_argument("--fusion", default=None)
    p.add_argument("--model", default=None, help="model folder for the started server")
    p.add_argument("--api-key", default=os.environ.get("MER_API_KEY"))
    args = p.parse_args()

    clip = Path(args.clip) if args.clip else _demo_clip()
    data = clip.read_bytes()
    server = None
    url, pid = args.url, args.pid
    if url is None:
        server, url = _start_server(args)
        pid = server.pid
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    try:
        load_s = _wait_ready(url, server)
        mem = MemorySampler(pid)
        mem.start()
        rss_loaded = mem.now()
        with httpx.Client(timeout=120, headers=headers) as client:
            warm = _post(client, url, clip.name, data, args.fusion)
        if warm[0] != 200:
            print(f"warm-up request failed: HTTP {warm[0]} {warm[2]}", file=sys.stderr)
            return 1
        rss_warm = mem.now()
        load_start = time.monotonic()
        results, elapsed = _load(url, clip.name, data, args, headers)
        rss_end = mem.now()
        mem.stop()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    trend = [mem.at(load_start + q * elapsed) for q in (0.25, 0.5, 0.75)] + [rss_end]
    _report(results, elapsed, args, clip, len(data), load_s, rss_loaded, rss_warm, trend, mem)
    return 0


def _demo_clip() -> Path:
    from multimodal_emotion.demo import make_demo_clip

    path = Path(tempfile.mkdtemp()) / "load5s.mp4"
    make_demo_clip(path, seconds=5.0)
    return path


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.setdefault("MER_QUEUE_SIZE", str(max(8, 2 * args.clients)))
    cmd = [sys.executable, "-m", "multimodal_emotion.cli", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    if args.model:
        cmd += ["--model", args.model]
    log = open(Path(tempfile.gettempdir()) / f"serve_load_{port}.log", "w")
    print(f"starting: {' '.join(cmd)}  (log: {log.name})", file=sys.stderr)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), \
        f"http://127.0.0.1:{port}"


def _wait_ready(url: str, server: subprocess.Popen | None, timeout: float = 180.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"server exited with code {server.returncode}")
        try:
            r = httpx.get(url + "/healthz", timeout=5)
            if r.status_code == 200:
                return time.monotonic() - t0
            if r.json().get("error") == "model_load_failed":
                raise SystemExit(f"server could not load models: {r.json()['message']}")
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def _post(client: httpx.Client, url: str, name: str, data: bytes,
          fusion: str | None) -> tuple[int, float, str]:
    t = time.perf_counter()
    try:
        r = client.post(url + "/v1/analyze", files={"file": (name, data)},
                        data={"fusion": fusion} if fusion else None)
        status, detail = r.status_code, (r.json().get("error", "") if r.status_code != 200
                                         else "")
    except httpx.HTTPError as exc:
        status, detail = 0, type(exc).__name__
    return status, time.perf_counter() - t, detail


def _load(url: str, name: str, data: bytes, args: argparse.Namespace,
          headers: dict[str, str]) -> tuple[list[tuple[int, float, str]], float]:
    results: list[tuple[int, float, str]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.duration

    def client_loop() -> None:
        with httpx.Client(timeout=120, headers=headers) as client:
            while time.monotonic() < deadline:
                res = _post(client, url, name, data, args.fusion)
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    with tqdm(total=int(args.duration), unit="s", desc=f"{args.clients} clients",
              file=sys.stderr) as bar:
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            bar.n = min(int(args.duration), int(time.monotonic() - start))
            with lock:
                errors = sum(1 for s, _, _ in results if s != 200)
                bar.set_postfix(requests=len(results), errors=errors, refresh=False)
            bar.refresh()
    for t in threads:
        t.join()
    return results, time.monotonic() - start


class MemorySampler:
    """Samples the server's RSS every 0.5 s from ``/proc`` (Linux); peak is the max seen."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak = pid, 0.0
        self.samples: list[tuple[float, float]] = []  # (monotonic time, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float | None:
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    mb = int(line.split()[1]) / 1024
                    self.peak = max(self.peak, mb)
                    self.samples.append((time.monotonic(), mb))
                    return mb
        except OSError:
            return None
        return None

    def at(self, t: float) -> float | None:
        """The last sample taken at or before monotonic time ``t``."""
        before = [mb for ts, mb in self.samples if ts <= t]
        return before[-1] if before else None

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.now()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _report(results, elapsed: float, args, clip: Path, size: int, load_s: float, rss_loaded,
            rss_warm, trend: list, mem: MemorySampler) -> None:
    ok = [lat for s, lat, _ in results if s == 200]
    errors = Counter(f"{s} {d}".strip() for s, _, d in results if s != 200)

    def mb(v):
        return "n/a (no pid)" if v is None else f"{v:.0f} MB"

    rows = [
        ("clients", f"{args.clients}"),
        ("duration", f"{args.duration:.0f} s (last request ended at {elapsed:.1f} s)"),
        ("clip", f"{clip.name} ({size / 1024:.0f} KB)"),
        ("server ready after", f"{load_s:.1f} s"),
        ("requests", f"{len(results)} ({len(ok)} ok)"),
        ("requests/s", f"{len(results) / elapsed:.2f}"),
        ("latency p50", f"{_pct(ok, 0.50):.2f} s"),
        ("latency p95", f"{_pct(ok, 0.95):.2f} s"),
        ("latency p99", f"{_pct(ok, 0.99):.2f} s"),
        ("latency mean / max", f"{statistics.fmean(ok) if ok else float('nan'):.2f} s / "
                               f"{max(ok) if ok else float('nan'):.2f} s"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"),
        ("server RSS after load", mb(rss_loaded)),
        ("server RSS after warm-up", mb(rss_warm)),
        ("server RSS at 25/50/75/100 %", " / ".join(mb(v) for v in trend)),
        ("server RSS peak", mb(mem.peak if mem.pid else None)),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    p95 = _pct(ok, 0.95)
    verdict = "met" if ok and p95 <= 3.0 and not errors else "NOT met"
    print(f"\ntarget (p95 <= 3 s, zero errors): {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
