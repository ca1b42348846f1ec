"""Hostile inputs against ``mer analyze``'s decoder and a real ``mer serve`` on 127.0.0.1.

Issue 18's cases, each bounded in count and time, each printed with what it cost: the answer,
the latency, and memory (peak RSS of a decoding subprocess; the server's RSS before/after and
its peak, from ``/proc/<pid>/status``). The server is started here (API key set, defaults
otherwise), on a free loopback port, and stopped at the end; nothing leaves this machine.

    .venv/bin/python bench/abuse.py                    # everything (~2-3 min on 2 cores)
    .venv/bin/python bench/abuse.py --decode-only      # just the decode bombs
    .venv/bin/python bench/abuse.py --code /tmp/old    # decode bombs with another checkout's
                                                       # multimodal_emotion (a before/after)

Files it builds (once, in ``--work``, default the temp folder): a 10 h silent FLAC (~7 MB), an
H.264 MP4 of 16000x16000 frames (a few KB per frame), and FLVs of 8000x8000 and 16000x16000
H.264 frames (FLV's demuxer decodes a frame while FFmpeg probes it), one of them with metadata
that claims 160x160.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
API_KEY = "abuse-bench-key"


# -- hostile files -------------------------------------------------------------------------
def silent_flac(path: Path, hours: float = 10.0) -> Path:
    """``hours`` of digital silence as FLAC: megabytes on disk, gigabytes once decoded."""
    from multimodal_emotion.demo import make_silent_flac

    return path if path.exists() else make_silent_flac(path, hours * 3600)


def huge_frames(path: Path, side: int = 16000, frames: int = 2) -> Path:
    """An H.264 MP4 whose frames are ``side`` x ``side`` (flat grey: a few KB each)."""
    if path.exists():
        return path
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        plane = np.full((side * 3 // 2, side), 128, dtype=np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def remux(source: Path, path: Path, fmt: str) -> Path:
    """``source``'s video packets, as they are, in another container (``fmt``)."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return path


def huge_flv(path: Path, source: Path, claim: int | None = None) -> Path:
    """``source``'s H.264 frames remuxed into FLV, whose demuxer decodes a frame while FFmpeg
    probes it. ``claim``: the side its ``onMetaData`` tag announces instead of the real one (a
    lying header: only the SPS tells the truth)."""
    if path.exists():
        return path
    remux(source, path, "flv")
    if claim is not None:
        import struct

        data = bytearray(path.read_bytes())
        for key in (b"\x00\x05width\x00", b"\x00\x06height\x00"):
            at = data.index(key) + len(key)
            data[at:at + 8] = struct.pack(">d", float(claim))
        path.write_bytes(bytes(data))
    return path


# -- decode bombs, in a subprocess each: its VmHWM is then the decode's own peak (ru_maxrss is
# not: Linux carries the parent's high-water mark across fork+exec) --------------------------
DECODE = r"""
import json, re, sys, time
from pathlib import Path
from multimodal_emotion import media
t = time.perf_counter()
try:
    clip = media.load(sys.argv[1])
    outcome = f"decoded {clip.duration:.0f} s"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
print(json.dumps({"outcome": outcome, "s": time.perf_counter() - t,
                  "peak_mb": int(re.search(r"VmHWM:\s+(\d+)",
                                           Path("/proc/self/status").read_text())[1]) / 1024}))
"""


def decode_cost(path: Path, code: Path, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    try:
        proc = subprocess.run([sys.executable, "-c", DECODE, str(path)], env=env, text=True,
                              cwd=str(code),
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": f"killed after {timeout:.0f} s", "s": timeout, "peak_mb": float("nan")}
    if proc.returncode != 0:
        return {"outcome": f"exit {proc.returncode}: {proc.stderr.strip()[-90:]}",
                "s": float("nan"), "peak_mb": float("nan")}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the server ------------------------------------------------------------------------------
def rss_mb(pid: int, field: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024


def start_server(work: Path, **env_extra: str) -> tuple[subprocess.Popen, str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", MER_API_KEY=API_KEY, PYTHONPATH=str(REPO),
               MER_UPLOAD_DIR=str(work / "uploads"), **env_extra)
    log = work / f"abuse_server_{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "multimodal_emotion.cli", "serve", "--host",
                             "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready in time")


def raw_connection(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def slow_clients(url: str, clip: bytes, n: int = 9, seconds: float = 30.0) -> str:
    """``n`` connections send a multipart body one byte every 10 s; meanwhile a normal client
    uploads the clip every few seconds. Before: every normal upload got 429."""
    head = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\n\r\n"
            + clip[:512])
    request = (b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode() +
               b"\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 1000000\r\n"
               b"\r\n" + head)
    dropped: list[float] = []
    stop = threading.Event()

    def trickle() -> None:
        t0 = time.monotonic()
        with raw_connection(url) as s:
            s.sendall(request)
            s.settimeout(10)
            while not stop.is_set():
                try:
                    if s.recv(4096):
                        dropped.append(time.monotonic() - t0)
                        return
                except socket.timeout:
                    pass
                try:
                    s.sendall(b"x")
                except OSError:
                    dropped.append(time.monotonic() - t0)
                    return

    threads = [threading.Thread(target=trickle, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    statuses: list[int] = []
    t_end = time.monotonic() + seconds
    with httpx.Client(timeout=120, headers={"X-API-Key": API_KEY}) as c:
        while time.monotonic() < t_end:
            statuses.append(c.post(url + "/v1/analyze",
                                   files={"file": ("clip.mp4", clip)}).status_code)
            time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(15)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return (f"normal uploads {counts}; slow clients dropped {len(dropped)}/{n}"
            + (f" after {min(dropped):.0f}-{max(dropped):.0f} s" if dropped else ""))


def run_server_cases(work: Path, clip: Path, flac: Path, big: Path,
                     big_flv: Path) -> list[tuple]:
    proc, url, log = start_server(work)
    rows = []
    try:
        wait_ready(url, proc)
        headers = {"X-API-Key": API_KEY}
        data = clip.read_bytes()
        with httpx.Client(timeout=300, headers=headers) as c:
            c.post(url + "/v1/analyze", files={"file": ("clip.mp4", data)})  # warm-up

            def case(name: str, fn) -> None:
                before = rss_mb(proc.pid)
                t = time.perf_counter()
                try:
                    outcome = fn()
                except httpx.HTTPError as exc:  # e.g. the server closed while we still sent
                    outcome = f"{type(exc).__name__}: {exc}"[:120]
                ms = (time.perf_counter() - t) * 1000
                rows.append((name, outcome, ms, before, rss_mb(proc.pid),
                             rss_mb(proc.pid, "VmHWM")))
                print(f"  {name}: {outcome}", file=sys.stderr, flush=True)

            def post(name: str, payload: bytes):
                r = c.post(url + "/v1/analyze", files={"file": (name, payload)})
                return f"{r.status_code} {r.json().get('error', r.json().get('label'))}"

            case("normal 5 s clip", lambda: post("clip.mp4", data))
            case("10 h silent FLAC", lambda: post("silence.flac", flac.read_bytes()))
            case("16000x16000 H.264", lambda: post("huge.mp4", big.read_bytes()))
            case("16000x16000 H.264 FLV, metadata says 160x160",
                 lambda: post("huge.flv", big_flv.read_bytes()))

            def fuse_40mb():
                body = b'{"probabilities": {"audio": [' + b"0.1," * 10_000_000 + b"0.1]}}"
                r = c.post(url + "/v1/fuse", content=body,
                           headers={"content-type": "application/json"})
                return f"{r.status_code} {r.json()['error']}"

            case("/v1/fuse 40 MB body", fuse_40mb)

            def invalid(n: int):
                body = json.dumps({"embeddings": {"audio": ["x"] * n}}).encode()
                r = c.post(url + "/v1/fuse", content=body,
                           headers={"content-type": "application/json"})
                return (f"{r.status_code} {r.json()['error']}, {len(body) / 1e6:.1f} MB in -> "
                        f"{len(r.content) / 1e3:.1f} KB out")

            case("/v1/fuse 5 MB invalid body", lambda: invalid(1_000_000))
            case("/v1/fuse 0.9 MB invalid body (under the cap)", lambda: invalid(180_000))

            def aborted():
                with raw_connection(url) as s:
                    s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: "
                              + API_KEY.encode() + b"\r\nContent-Type: multipart/form-data; "
                              b"boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n"
                              b"Content-Disposition: form-data; name=\"file\"; filename=\"x\""
                              b"\r\n\r\n" + data[:4096])
                    time.sleep(0.5)
                time.sleep(1.0)
                lines = [ln for ln in log.read_text().splitlines()
                         if "status=499" in ln or "Traceback" in ln or "status=500" in ln]
                return "log: " + (lines[-1].split(": ", 1)[-1] if lines else "nothing")

            case("client aborts an upload", aborted)
            case("9 slow clients (1 byte/10 s) for 30 s", lambda: slow_clients(url, data))
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


def bad_settings(work: Path) -> list[tuple[str, str]]:
    out = []
    for var, value in (("MER_WINDOW_S", "0"), ("MER_MAX_UPLOAD_MB", "inf"),
                       ("MER_API_KEY", "  ")):
        env = dict(os.environ, PYTHONPATH=str(REPO), **{var: value})
        proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "serve",
                               "--port", "1"], env=env, capture_output=True, text=True,
                              timeout=60)
        out.append((f"{var}={value!r}", f"exit {proc.returncode}: {proc.stderr.strip()}"))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mer-abuse"))
    p.add_argument("--code", default=str(REPO), help="folder whose multimodal_emotion decodes "
                   "the bombs (default: this checkout)")
    p.add_argument("--decode-only", action="store_true")
    p.add_argument("--decode-timeout", type=float, default=180.0)
    args = p.parse_args()
    work = Path(args.work)
    (work / "uploads").mkdir(parents=True, exist_ok=True)
    print("building hostile files ...", file=sys.stderr, flush=True)
    flac = silent_flac(work / "silence_10h.flac")
    big = huge_frames(work / "frames_16000.mp4")
    flvs = [huge_flv(work / "frames_8000.flv", huge_frames(work / "frames_8000.mp4", 8000)),
            huge_flv(work / "frames_16000.flv", big),
            huge_flv(work / "frames_16000_claims_160.flv", big, claim=160)]
    from multimodal_emotion import demo

    clip = work / "clip.mp4"
    if not clip.exists():
        demo.make_demo_clip(clip, seconds=5.0)

    print(f"\n## Decoding (media.load, as mer analyze does; code: {args.code})\n")
    print("| file | size | outcome | time s | peak RSS MB |\n| --- | --- | --- | --- | --- |")
    for path in (flac, big, *flvs):
        r = decode_cost(path, Path(args.code), args.decode_timeout)
        print(f"| {path.name} | {path.stat().st_size / 1e6:.2f} MB | {r['outcome']} | "
              f"{r['s']:.2f} | {r['peak_mb']:.0f} |", flush=True)
    if args.decode_only:
        return 0

    print("\n## Server (mer serve, API key set, defaults otherwise)\n")
    rows = run_server_cases(work, clip, flac, big, flvs[-1])
    print("| case | answer | latency ms | RSS before MB | RSS after MB | peak so far MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, outcome, ms, before, after, peak in rows:
        print(f"| {name} | {outcome} | {ms:.0f} | {before:.0f} | {after:.0f} | {peak:.0f} |")
    print("\n## Bad settings\n\n| setting | mer serve |\n| --- | --- |")
    for setting, outcome in bad_settings(work):
        print(f"| {setting} | {outcome} |")
    left = [q for q in (work / "uploads").rglob("*") if q.is_file()]
    print(f"\nupload files left on disk: {len(left)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
