"""Schema fuzzing and an upload burst against a real ``mer serve`` on 127.0.0.1.

Issue 18 asks to keep what already worked: "the schema fuzzing found no 5xx in 22,000 cases, 20
parallel uploads gave clean 429s". This is that check, reproducible. The server is started by
``bench/abuse.py``'s helpers (API key set, feedback on, defaults otherwise); ``/openapi.json``
is read, and every operation gets, from one seeded generator, cases built from its schema and
hostile mutations of them: wrong types, booleans for numbers, NaN/inf/huge/negative numbers,
deep nesting, strings up to and past the limits, unicode, missing and extra fields, wrong
content types, malformed JSON and multipart, bad or missing API keys, ids that do not exist or
try to climb out of their folder, wrong methods and malformed HTTP. Requests go over raw
sockets, so nothing is normalised on the way. Any 5xx is a bug: its case is saved as JSON for
``--replay``.

    nice -n 10 .venv/bin/python bench/fuzz.py --cases 2000 --seconds 900   # every operation
    nice -n 10 .venv/bin/python bench/fuzz.py --burst 20                   # 20 parallel uploads
    nice -n 10 .venv/bin/python bench/fuzz.py --replay /tmp/mer-fuzz/5xx/*.json

It prints, per operation: cases, status counts, 5xx, answers that are not the JSON error shape,
the largest answer, latency p50/p95, and the server's RSS before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from abuse import API_KEY, rss_mb, start_server, wait_ready  # noqa: E402
from fuzz_cases import (HOSTILE_FIELDS, UNICODE, Case, SchemaGen, Vocab, broken_json,  # noqa: E402
                        dumps, file_payload, hostile_scalar, multipart, mutate_json, path_ids)

MAX_JSON_BYTES = 1024 * 1024  # MER_MAX_JSON_KB's default, which the server runs with here
UPLOAD_OPS = {("POST", "/v1/analyze"), ("POST", "/v1/calls")}


# -- sending ---------------------------------------------------------------------------------
def render(case: Case, host: str) -> bytes:
    """The request's bytes: ``case.raw`` as it is, else a request line, headers and body."""
    if case.raw is not None:
        return case.raw
    headers = {"Host": host, "Connection": "close", **case.headers}
    if "Content-Length" not in headers and (case.body or case.method in ("POST", "PUT")):
        headers["Content-Length"] = str(len(case.body))
    lines = [f"{case.method} {case.path} HTTP/1.1".encode("utf-8", "surrogatepass")]
    for k, v in headers.items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else
                                           v.encode("utf-8", "surrogatepass")))
    return b"\r\n".join(lines) + b"\r\n\r\n" + case.body


def send(addr: tuple[str, int], case: Case, timeout: float) -> tuple[str, bytes, float]:
    """(status or 'closed'/'timeout', response bytes, seconds)."""
    data = render(case, f"{addr[0]}:{addr[1]}")
    t0 = time.perf_counter()
    chunks: list[bytes] = []
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            try:
                s.sendall(data)
            except OSError:  # the server answered early (413) and closed: read its answer
                pass
            while True:
                got = s.recv(65536)
                if not got:
                    break
                chunks.append(got)
    except socket.timeout:
        return "timeout", b"".join(chunks), time.perf_counter() - t0
    except OSError:
        pass
    reply = b"".join(chunks)
    took = time.perf_counter() - t0
    while reply.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in reply:  # 100 Continue: interim
        reply = reply.partition(b"\r\n\r\n")[2]
    try:
        return str(int(reply.split(b" ", 2)[1])), reply, took
    except (IndexError, ValueError):
        return "closed", reply, took


def json_error_shape(reply: bytes) -> bool:
    """Whether an error answer is ``{"error": ..., "message": ...}`` (chunked bodies allowed)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = bytearray(), body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line, 16)
            except ValueError:
                return False
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        body = bytes(out)
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    return isinstance(obj, dict) and "error" in obj and "message" in obj


# -- building cases --------------------------------------------------------------------------
class Builder:
    """Cases for one operation of the OpenAPI document."""

    def __init__(self, spec: dict[str, Any], method: str, path: str, op: dict[str, Any],
                 vocab: Vocab, rng: random.Random, clip: bytes, real_uploads: int,
                 job_ids: list[str]) -> None:
        self.spec, self.method, self.path, self.op = spec, method, path, op
        self.rng, self.clip, self.real_left, self.job_ids = rng, clip, real_uploads, job_ids
        self.gen = SchemaGen(spec, rng, vocab)
        content = op.get("requestBody", {}).get("content", {})
        self.media = next(iter(content), None)
        self.schema = content[self.media]["schema"] if self.media else None
        self.params = op.get("parameters", [])
        self.needs_key = path.startswith("/v1/")

    def key_headers(self) -> dict[str, str | bytes]:
        return {"X-API-Key": API_KEY} if self.needs_key else {}

    def url(self, hostile_ids: bool = False) -> str:
        path, query = self.path, []
        for p in self.params:
            if p["in"] == "path":
                value = path_ids(self.rng) if hostile_ids or not self.job_ids or \
                    self.rng.random() < 0.5 else self.rng.choice(self.job_ids)
                path = path.replace("{" + p["name"] + "}", value)
            elif p["in"] == "query" and self.rng.random() < 0.5:
                v = self.gen.value(p["schema"]) if self.rng.random() < 0.5 else \
                    self.rng.choice(["json", "html", "", "HTML", "xml", "%00", "😀"])
                query.append(f"{p['name']}={v}")
        return path + ("?" + "&".join(query) if query else "")

    def body(self) -> tuple[str, bytes, dict[str, str | bytes]]:
        """A body that fits the schema (mostly): (label, bytes, headers)."""
        if self.media == "application/json":
            return "schema", dumps(self.gen.value(self.schema)).encode(), \
                {"Content-Type": "application/json"}
        if self.media == "multipart/form-data":
            return self.form(mutate=False)
        return "no body", b"", {}

    def form(self, mutate: bool) -> tuple[str, bytes, dict[str, str | bytes]]:
        rng = self.rng
        schema = self.gen.resolve(self.schema)
        parts: list[tuple[str, bytes, str | None]] = []
        allow_real = self.real_left > 0 and rng.random() < 0.1
        label = "form"
        for name, sub in schema.get("properties", {}).items():
            if sub.get("format") == "binary":
                kind, data = file_payload(rng, self.clip, allow_real)
                if kind in ("real clip", "clip, corrupted") and allow_real:
                    self.real_left -= 1
                label = f"form, file: {kind}"
                if mutate and rng.random() < 0.15:
                    continue  # no file part
                filename = "clip.mp4" if rng.random() < 0.7 else rng.choice(
                    ["", "../../etc/passwd", "a" * 5000, "😀.mp4", "x\r\nX-Evil: 1", "..",
                     "C:\\Windows\\x.mp4"])
                parts.append((name, data, filename))
                if mutate and rng.random() < 0.1:
                    parts.append((name, data, filename))  # two files
            elif name in schema.get("required", []) or rng.random() < 0.5:
                value = self.gen.value(sub)
                text = json.dumps(value) if isinstance(value, bool) else str(value)
                if mutate and rng.random() < 0.6:
                    text = rng.choice(HOSTILE_FIELDS + UNICODE)
                parts.append((name, text.encode("utf-8", "surrogatepass"), None))
        if mutate and rng.random() < 0.2:
            for _ in range(rng.choice([1, 20])):
                parts.append((rng.choice(UNICODE) or "extra", b"x" * rng.choice([1, 2000]),
                              None))
        rng.shuffle(parts)
        body = multipart(parts)
        ctype = "multipart/form-data; boundary=fuzzB0undary"
        if mutate and rng.random() < 0.4:
            label += ", broken multipart"
            body, ctype = rng.choice([
                (body[: rng.randrange(len(body) + 1)], ctype),  # cut short
                (body.replace(b"\r\n", b"\n"), ctype),
                (body, "multipart/form-data"),  # no boundary
                (body, "multipart/form-data; boundary=other"),
                (body, 'multipart/form-data; boundary="' + "b" * 300 + '"'),
                (b"--fuzzB0undary\r\nContent-Disposition: garbage\r\n\r\nx\r\n--fuzzB0undary--"
                 b"\r\n", ctype),
                (b"--fuzzB0undary\r\n" + b"X-H: v\r\n" * 2000 + b"\r\n\r\n", ctype),
                (bytes(rng.getrandbits(8) for _ in range(2048)), ctype)])
        return label, body, {"Content-Type": ctype}

    def case(self) -> Case:
        rng, m = self.rng, self.method
        key = self.key_headers()
        roll = rng.random()
        if roll < 0.25:  # fits the schema, right key
            label, body, headers = self.body()
            return Case(label, m, self.url(), {**key, **headers}, body)
        if roll < 0.55:  # one value mutated
            if self.media == "application/json":
                value = mutate_json(self.gen.value(self.schema), rng, MAX_JSON_BYTES)
                return Case("json, mutated", m, self.url(), {**key, "Content-Type":
                                                             "application/json"},
                            dumps(value).encode("utf-8", "surrogatepass"))
            if self.media == "multipart/form-data":
                label, body, headers = self.form(mutate=True)
                return Case(label + ", mutated", m, self.url(), {**key, **headers}, body)
            return Case("hostile ids/query", m, self.url(hostile_ids=True), key)
        if roll < 0.65 and self.media == "application/json":
            text = dumps(self.gen.value(self.schema))
            return Case("json, broken", m, self.url(), {**key, "Content-Type":
                                                        "application/json"},
                        broken_json(text, rng, MAX_JSON_BYTES))
        if roll < 0.73:  # the wrong content type
            label, body, headers = self.body()
            ctype = rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                "application/json", "multipart/form-data; boundary=fuzzB0undary",
                                "application/xml", "", "application/json; charset=utf-16",
                                "*/*", "multipart/mixed; boundary=x", "😀"])
            if rng.random() < 0.5:
                body = rng.choice([b"a=1&b=2", b"<x/>", b"{}", body[:64], b""])
            return Case(f"content type {ctype!r}", m, self.url(), {**key, "Content-Type": ctype},
                        body)
        if roll < 0.85:  # the API key: missing, wrong, odd
            label, body, headers = self.body()
            auth = rng.choice([
                {}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"Authorization": "Bearer "},
                {"Authorization": f"bearer {API_KEY}"}, {"Authorization": f"Basic {API_KEY}"},
                {"X-API-Key": API_KEY + " "}, {"X-API-Key": "k" * 8000},
                {"X-API-Key": "é\u00ff".encode("latin-1")}, {"X-API-Key": b"\xff\xfe"},
                {"Authorization": "Bearer " + API_KEY[:-1]}, {"X-API-Key": API_KEY.upper()}])
            return Case(f"auth {sorted(auth)}", m, self.url(), {**auth, **headers}, body)
        if roll < 0.9:  # the wrong method
            other = rng.choice([x for x in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                                            "HEAD", "TRACE") if x != m])
            return Case(f"method {other}", other, self.url(), key)
        if roll < 0.99:  # hostile query strings and headers on a valid request
            label, body, headers = self.body()
            q = f"?{rng.choice(UNICODE)}={hostile_scalar(rng, 1000)}&x=" + "y" * \
                rng.choice([10, 5000])
            extra = rng.choice([{"X-Big": "v" * 8000}, {"Accept": "😀"},
                                {"Content-Length": "-1"}, {"Content-Length": "abc"},
                                {"Content-Length": "1" * 30},
                                {"Transfer-Encoding": "chunked"}, {"Expect": "100-continue"},
                                {f"X-{i}": "v" for i in range(200)}])
            return Case(f"query/headers {sorted(extra)[:1]}", m, self.url() + q,
                        {**key, **headers, **extra}, body)
        name, raw = rng.choice(list({
            "garbage": b"GARBAGE\r\n\r\n", "HTTP/9.9": b"GET / HTTP/9.9\r\n\r\n",
            "bad chunk": f"{m} {self.path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"X-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n\r\nzz\r\n{{}}\r\n0\r\n"
            "\r\n".encode(),
            "two lengths": f"{m} {self.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            f"Content-Length: 7"
            f"\r\nX-API-Key: {API_KEY}\r\n\r\n12345".encode(),
            "70 KB path": f"{m} /{'a' * 70000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            "huge chunk": f"{m} {self.path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
            f"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            f"{10 ** 20:x}\r\n{{}}\r\n".encode(),
            "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)}.items()))
        return Case(f"raw HTTP: {name}", m, self.path, raw=raw)


# -- running ---------------------------------------------------------------------------------
def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def fuzz_operation(b: Builder, addr: tuple[str, int], proc: Any, n: int, deadline: float,
                   save_dir: Path, timeout: float, concurrency: int) -> dict[str, Any]:
    """Up to ``n`` cases (until ``deadline``), ``concurrency`` in flight: a case that waits
    for one of uvicorn's timeouts (5-10 s) does not stall the others."""
    statuses: Counter[str] = Counter()
    lat: list[float] = []
    bad_shape = protocol = 0
    biggest = 0
    fails: list[str] = []
    odd: Counter[str] = Counter()  # error answers that are not {"error", "message"}, by kind
    slowest = (0.0, "")
    before = rss_mb(proc.pid)
    done = sent = 0
    flying: set[Future] = set()
    with ThreadPoolExecutor(concurrency) as pool:
        while (sent < n and time.monotonic() < deadline) or flying:
            while sent < n and time.monotonic() < deadline and len(flying) < concurrency:
                case = b.case()  # drawn here, in order: the seed fixes the cases
                flying.add(pool.submit(lambda c=case: (c, *send(addr, c, timeout))))
                sent += 1
            finished, flying = wait(flying, return_when=FIRST_COMPLETED)
            for case, status, reply, took in (f.result() for f in finished):
                done += 1
                statuses[status] += 1
                lat.append(took)
                biggest = max(biggest, len(reply))
                if took > slowest[0]:
                    slowest = (took, case.kind)
                if b"Invalid HTTP request" in reply.partition(b"\r\n\r\n")[2][:64]:
                    protocol += 1  # uvicorn's answer to bytes that are not HTTP: no app ran
                elif status.isdigit() and int(status) >= 400 and case.method != "HEAD" and \
                        not json_error_shape(reply):
                    bad_shape += 1
                    first = reply.partition(b"\r\n\r\n")[2][:60].decode("utf-8", "replace")
                    odd[f"{status} {first!r} ({case.kind[:40]})"] += 1
                if status.startswith("5") or status == "timeout":
                    save_dir.mkdir(parents=True, exist_ok=True)
                    name = save_dir / f"{b.method}_{b.path.strip('/').replace('/', '_')}" \
                                      f"_{done}.json"
                    name.write_text(json.dumps({**case.to_json(), "status": status, "reply":
                                                reply[:2000].decode("utf-8", "replace")},
                                               indent=1))
                    fails.append(str(name))
                if status == "202" and b.path == "/v1/calls":
                    try:
                        b.job_ids.append(json.loads(reply.partition(b"\r\n\r\n")[2])["id"])
                    except (ValueError, KeyError):
                        pass
            if proc.poll() is not None:
                raise SystemExit(f"the server died during {b.method} {b.path}")
    return {"cases": done, "statuses": statuses, "odd": odd, "slowest": slowest, "lat": lat,
            "bad_shape": bad_shape, "protocol": protocol, "biggest": biggest, "fails": fails,
            "rss": (before, rss_mb(proc.pid)), "peak": rss_mb(proc.pid, "VmHWM")}


def vocab_from(models: dict[str, Any], spec: dict[str, Any]) -> Vocab:
    enc = models.get("encoders", {})
    strings = list(enc) + list(models.get("fusions", [])) + \
        list(models.get("late_fusion_rules", {})) + list(models.get("labels", []))
    lengths = sorted({int(e["dim"]) for e in enc.values()} | {len(models.get("labels", []))})
    return Vocab(strings, lengths, list(enc) + list(models.get("labels", [])))


def run_fuzz(args: argparse.Namespace, url: str, proc: Any, clip: bytes, work: Path) -> None:
    import httpx

    addr = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    models = httpx.get(url + "/v1/models", headers={"X-API-Key": API_KEY}, timeout=30).json()
    vocab = vocab_from(models, spec)
    ops = [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]
    job_ids: list[str] = []
    rows = []
    t_end = time.monotonic() + args.seconds
    ops = [o for o in ops if not args.only or any(w in f"{o[0]} {o[1]}" for w in args.only)]
    for i, (method, path, op) in enumerate(ops):
        rng = random.Random(f"{args.seed}:{method}:{path}")
        upload = (method, path) in UPLOAD_OPS
        n = args.upload_cases if upload else args.cases
        real = args.real_uploads if path == "/v1/analyze" else (1 if upload else 0)
        b = Builder(spec, method, path, op, vocab, rng, clip, real, job_ids)
        share = (t_end - time.monotonic()) / (len(ops) - i)
        print(f"  {method} {path}: up to {n} cases / {share:.0f} s", file=sys.stderr,
              flush=True)
        r = fuzz_operation(b, addr, proc, n, time.monotonic() + share, work / "5xx",
                           args.timeout, args.concurrency)
        rows.append((f"{method} {path}", r))
    for job in job_ids:  # leave no call job behind
        httpx.delete(f"{url}/v1/calls/{job}", headers={"X-API-Key": API_KEY}, timeout=30)
    total = sum(r["cases"] for _, r in rows)
    fivexx = sum(c for _, r in rows for s, c in r["statuses"].items() if s.startswith("5"))
    print(f"\n## Schema fuzzing: {total} cases, seed {args.seed}, {fivexx} answers 5xx\n")
    print("| operation | cases | statuses | 5xx | HTTP-level 400 | other errors not JSON | largest answer KB | "
          "p50 ms | p95 ms | RSS before → after MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        st = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        five = sum(c for s, c in r["statuses"].items() if s.startswith("5"))
        print(f"| {name} | {r['cases']} | {st} | {five} | {r['protocol']} | {r['bad_shape']} | "
              f"{r['biggest'] / 1024:.1f} | {percentile(r['lat'], 0.5) * 1000:.0f} | "
              f"{percentile(r['lat'], 0.95) * 1000:.0f} | {r['rss'][0]:.0f} → {r['rss'][1]:.0f} "
              f"(peak {r['peak']:.0f}) |")
    print("\nSlowest case and error answers that are not JSON, per operation:\n")
    for name, r in rows:
        print(f"- {name}: slowest {r['slowest'][0] * 1000:.0f} ms ({r['slowest'][1]})")
        for what, k in r["odd"].most_common(4):
            print(f"  - {k} x {what}")
    for name, r in rows:
        for f in r["fails"]:
            print(f"- {name}: 5xx/timeout saved to {f}")


def warm_up(url: str, clip: bytes) -> None:
    """One real analysis first: the encoders' lazy start (~300 MB) is not what is measured."""
    import httpx

    httpx.post(url + "/v1/analyze", files={"file": ("clip.mp4", clip)},
               headers={"X-API-Key": API_KEY}, timeout=300).raise_for_status()


def run_burst(n: int, url: str, proc: Any, clip: bytes) -> None:
    """``n`` uploads of the clip at once: 200 up to workers + queue, clean 429 beyond."""
    import httpx

    barrier = threading.Barrier(n)
    results: list[tuple[int | str, str, float]] = [("-", "", 0.0)] * n
    t0 = [0.0]

    def one(i: int) -> None:
        with httpx.Client(timeout=600, headers={"X-API-Key": API_KEY}) as c:
            barrier.wait()
            if i == 0:
                t0[0] = time.perf_counter()
            try:
                r = c.post(url + "/v1/analyze", files={"file": ("clip.mp4", clip)})
                code = r.json().get("error") or r.json().get("label") or ""
                results[i] = (r.status_code, str(code), time.perf_counter())
            except httpx.HTTPError as exc:
                results[i] = (type(exc).__name__, "", time.perf_counter())

    health = httpx.get(url + "/healthz", timeout=30).json()
    before = rss_mb(proc.pid)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    hung = sum(t.is_alive() for t in threads)
    counts = Counter((s, c if s != 200 else "label") for s, c, _ in results)
    ends = sorted(e - t0[0] for _, _, e in results if e)
    after = httpx.get(url + "/healthz", timeout=30).json()
    print(f"\n## Burst: {n} parallel uploads of a {len(clip) / 1024:.0f} KB clip "
          f"(server: {health['queue']})\n")
    print("| answer | count |\n| --- | --- |")
    for (s, c), k in sorted(counts.items(), key=lambda x: str(x[0])):
        print(f"| {s} {c} | {k} |")
    refused = [e for s, _, e in results if s == 429]
    print(f"\nstill running after 900 s: {hung}; every answer in {ends[-1]:.1f} s (the last "
          f"200: drain time); 429s answered within {max(refused) - t0[0] if refused else 0:.2f}"
          f" s; RSS {before:.0f} → {rss_mb(proc.pid):.0f} MB; queue after: {after['queue']}")


def replay(files: list[str], url: str) -> None:
    addr = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
    for f in files:
        case = Case.from_json(json.loads(Path(f).read_text()))
        status, reply, took = send(addr, case, 60)
        body = reply.partition(b"\r\n\r\n")[2][:200].decode("utf-8", "replace")
        print(f"{f}: {status} in {took * 1000:.0f} ms: {body}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2000, help="cases per cheap operation")
    p.add_argument("--upload-cases", type=int, default=300,
                   help="cases per upload operation (/v1/analyze, /v1/calls)")
    p.add_argument("--real-uploads", type=int, default=5,
                   help="at most this many whole clips analyzed by /v1/analyze cases")
    p.add_argument("--seconds", type=float, default=900.0, help="time bound for all operations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=4, help="cases in flight at once")
    p.add_argument("--timeout", type=float, default=60.0, help="a request taking longer hangs")
    p.add_argument("--only", nargs="+", help="operations whose 'METHOD /path' contains one")
    p.add_argument("--burst", type=int, default=0, help="N parallel uploads instead of fuzzing")
    p.add_argument("--replay", nargs="+", help="saved cases to send again")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mer-fuzz"))
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(args.work)
    (work / "uploads").mkdir(parents=True, exist_ok=True)
    from multimodal_emotion import demo

    clip_path = work / "clip_2s.mp4"
    if not clip_path.exists():
        demo.make_demo_clip(clip_path, seconds=2.0)
    clip = clip_path.read_bytes()
    proc, url, log = start_server(work, MER_FEEDBACK="1", MER_DATA_DIR=str(work / "data"))
    try:
        wait_ready(url, proc)
        warm_up(url, clip)
        if args.replay:
            replay(args.replay, url)
        elif args.burst:
            run_burst(args.burst, url, proc, clip)
        else:
            run_fuzz(args, url, proc, clip, work)
        tracebacks = log.read_text().count("Traceback")
        print(f"\nserver log: {tracebacks} tracebacks ({log})")
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
