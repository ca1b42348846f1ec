"""Request generators for ``bench/fuzz.py``: values from an OpenAPI schema, then hostile mutations.

Everything is drawn from one ``random.Random`` per operation, so a seed replays the same cases.
No dependency: the schema subset FastAPI emits (``$ref``, ``anyOf``/``oneOf``, ``type``,
``enum``, ``properties``, ``additionalProperties``, ``items``, ``minimum``/``maximum``) is all
this needs. A *vocabulary* taken from ``/v1/models`` (modality names, labels, fusions, embedding
sizes) steers free-form keys, strings and array lengths towards values the server knows, so
some cases get past validation and reach the code behind it.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


@dataclass
class Case:
    """One HTTP request, as sent (``raw``: bytes written to the socket as they are)."""

    kind: str
    method: str
    path: str
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        import base64

        return {"kind": self.kind, "method": self.method, "path": self.path,
                "headers": {k: (v.decode("latin-1") if isinstance(v, bytes) else v)
                            for k, v in self.headers.items()},
                "body_b64": base64.b64encode(self.body).decode(),
                "raw_b64": base64.b64encode(self.raw).decode() if self.raw is not None else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Case":
        import base64

        return cls(d["kind"], d["method"], d["path"], dict(d["headers"]),
                   base64.b64decode(d["body_b64"]),
                   base64.b64decode(d["raw_b64"]) if d.get("raw_b64") else None)


@dataclass
class Vocab:
    """What the server told us it knows (``/v1/models``), to aim generated values."""

    strings: list[str]
    lengths: list[int]
    keys: list[str]


class Raw:
    """JSON text placed as it is (NaN, 1e999, deep nesting: what ``json.dumps`` will not write)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(value: Any) -> str:
    """JSON with :class:`Raw` pieces spliced in."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value), allow_nan=True)
    for i, r in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), r)
    return text


UNICODE = ["", " ", "é", "😀" * 3, "\u202eevil", "\u0000", "\ud800", "ｆｕｓｉｏｎ", "a\r\nb",
           "<script>alert(1)</script>", "%s%n%x", "${jndi:ldap://x}", "' OR 1=1 --", "\\",
           "../../etc/passwd", "null", "NaN", "true", "🏳️‍🌈" * 20]


def hostile_scalar(rng: random.Random, max_string: int) -> Any:
    """A value of the wrong kind, or of the right kind and a wrong size."""
    choice = rng.randrange(16)
    if choice == 0:
        return rng.choice([True, False])
    if choice == 1:
        return None
    if choice == 2:
        return Raw(rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400"]))
    if choice == 3:
        return rng.choice([0, -1, -(2 ** 63), 2 ** 64, 10 ** 400, 1e308, -1e308, 5e-324, -0.0])
    if choice == 4:
        return rng.choice(UNICODE)
    if choice == 5:
        return "x" * rng.choice([1024, 4096, 65536, max_string])
    if choice == 6:
        return []
    if choice == 7:
        return {}
    if choice == 8:
        return [rng.choice([True, "1", None, [], {}])] * rng.choice([1, 7, 300])
    if choice == 9:
        depth = rng.choice([64, 500, 2000, 20000])
        return Raw("[" * depth + "]" * depth)
    if choice == 10:
        depth = rng.choice([64, 500, 2000])
        return Raw('{"a":' * depth + "1" + "}" * depth)
    if choice == 11:
        return rng.uniform(-1e6, 1e6)
    if choice == 12:
        return rng.randint(-10, 10)
    if choice == 13:
        return {rng.choice(UNICODE) or "k": rng.random()}
    if choice == 14:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 64)))


class SchemaGen:
    """Draws values that fit an OpenAPI (JSON Schema) document's schemas."""

    def __init__(self, spec: dict[str, Any], rng: random.Random, vocab: Vocab) -> None:
        self.spec, self.rng, self.vocab = spec, rng, vocab

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        rng = self.rng
        schema = self.resolve(schema)
        if "enum" in schema:
            return rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema and "type" not in schema and "properties" not in schema:
                branches = [b for b in schema[key] if self.resolve(b).get("type") != "null"]
                if branches and rng.random() < 0.9:
                    return self.value(rng.choice(branches), depth + 1)
                return None
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self.obj(schema, depth)
        if kind == "array":
            n = rng.choice(self.vocab.lengths + [0, 1, 2]) if rng.random() < 0.85 else \
                rng.randrange(0, 20)
            items = schema.get("items", {})
            if self.resolve(items).get("type") in ("number", "integer") or \
                    "anyOf" in self.resolve(items):
                out = [self.value(items, depth + 1) for _ in range(n)]
                if out and all(type(x) in (int, float) for x in out) and rng.random() < 0.4:
                    total = sum(abs(x) for x in out) or 1.0
                    out = [abs(x) / total for x in out]  # probabilities: some sum to 1
                return out
            return [self.value(items, depth + 1) for _ in range(min(n, 16))]
        if kind == "number":
            lo, hi = schema.get("minimum", -3.0), schema.get("maximum", 3.0)
            return rng.uniform(lo, hi)
        if kind == "integer":
            return rng.randint(int(schema.get("minimum", -5)), int(schema.get("maximum", 50)))
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "string":
            if schema.get("format") == "binary":
                return b""
            if rng.random() < 0.7 and self.vocab.strings:
                return rng.choice(self.vocab.strings)
            return rng.choice(UNICODE[:6]) + str(rng.randrange(100))
        return rng.choice([0, "x", None, True])

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        rng = self.rng
        props = dict(schema.get("properties", {}))
        required = set(schema.get("required", []))
        branches = schema.get("oneOf") or schema.get("anyOf")
        if branches:  # a one-of over required sets: pick one branch and send only it
            pick = rng.choice(branches)
            required |= set(pick.get("required", []))
            others = {r for b in branches for r in b.get("required", [])} - required
            for name in others:
                props.pop(name, None)
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or rng.random() < 0.4:
                out[name] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and depth < 6:
            keys = rng.sample(self.vocab.keys, k=rng.randint(1, len(self.vocab.keys))) \
                if self.vocab.keys and rng.random() < 0.9 else [rng.choice(UNICODE) or "k"]
            for k in keys:
                out[k] = self.value(extra, depth + 1)
        return out


# -- mutations of a JSON body ----------------------------------------------------------------
def mutate_json(value: Any, rng: random.Random, max_string: int) -> Any:
    """``value`` with one node replaced, removed, added or wrapped."""
    if not isinstance(value, (dict, list)) or not value or rng.random() < 0.15:
        return hostile_scalar(rng, max_string)
    if isinstance(value, dict):
        out = dict(value)
        key = rng.choice(list(out))
        op = rng.randrange(4)
        if op == 0:
            del out[key]
        elif op == 1:
            out[rng.choice(UNICODE) or "extra"] = hostile_scalar(rng, max_string)
        else:
            out[key] = mutate_json(out[key], rng, max_string)
        return out
    out_list = list(value)
    i = rng.randrange(len(out_list))
    out_list[i] = mutate_json(out_list[i], rng, max_string) if rng.random() < 0.5 else \
        hostile_scalar(rng, max_string)
    return out_list


def broken_json(text: str, rng: random.Random, limit: int) -> bytes:
    """Not JSON, or JSON in a shape no parser should accept quietly."""
    data = text.encode()
    choice = rng.randrange(10)
    if choice == 0:
        return data[: rng.randrange(len(data) + 1)]
    if choice == 1:
        return data + b"}}garbage"
    if choice == 2:
        return b"\xef\xbb\xbf" + data
    if choice == 3:
        return text.encode("utf-16")
    if choice == 4:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 512)))
    if choice == 5:
        return b""
    if choice == 6:  # at, and just over, the body limit
        pad = max(0, limit - len(data) + rng.choice([-10, 0, 1, 4096]))
        return data[:-1] + b"," + b'"p":"' + b"x" * pad + b'"}' if data.endswith(b"}") else \
            b" " * pad + data
    if choice == 7:
        return data.replace(b'"', b"'")
    if choice == 8:
        return b'{"a": "\xff\xfe\xfd"}'
    return data + b"\x00"


# -- multipart -------------------------------------------------------------------------------
def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "fuzzB0undary"
              ) -> bytes:
    """``parts``: (name, data, filename or None) as one multipart/form-data body."""
    out = bytearray()
    for name, data, filename in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"'
                                             if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode("utf-8", "replace")
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


MAGIC = [b"\x00\x00\x00\x18ftypmp42", b"\x1a\x45\xdf\xa3", b"RIFF\x00\x00\x00\x00WAVE",
         b"RIFF\x00\x00\x00\x00AVI ", b"FLV\x01\x05", b"ID3\x03\x00", b"fLaC", b"OggS",
         b"\x00\x00\x01\xba", b"\xff\xf1", b"\x00\x00\x00\x08moov"]


def file_payload(rng: random.Random, clip: bytes, allow_real: bool) -> tuple[str, bytes]:
    """(kind, bytes) for the upload's file part: never a whole clip unless ``allow_real``."""
    choice = rng.randrange(8)
    if choice == 0 and allow_real:
        return "real clip", clip
    if choice <= 1:
        return "clip head", clip[: rng.choice([16, 600, 4096, len(clip) // 2])]
    if choice == 2:
        return "magic + junk", rng.choice(MAGIC) + bytes(rng.getrandbits(8)
                                                         for _ in range(rng.randrange(0, 2048)))
    if choice == 3:
        return "empty", b""
    if choice == 4:
        return "text", "hello, world\n".encode() * rng.randrange(1, 100)
    if choice == 5:  # a real clip with a byte flipped every so often
        data = bytearray(clip)
        for _ in range(rng.randrange(1, 64)):
            data[rng.randrange(len(data))] ^= 0xFF
        return "clip, corrupted", bytes(data) if allow_real else bytes(data[:8192])
    if choice == 6:
        return "magic only", rng.choice(MAGIC)
    return "random", bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4096)))


HOSTILE_FIELDS = ["", "nan", "inf", "-inf", "1e999", "-1", "0", "-0", "0x10", " 4 ", "4\x00",
                  "true", "maybe", "9" * 400, "1e-400", "[[[[", "{a: 1", "!!python/object/apply:"
                  "os.system ['true']", "*a", "&a [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
                  "labels: {x: [happy]}", "labels: " + "[" * 500 + "]" * 500,
                  "[" * 500 + "]" * 500, "{a: " * 300 + "1" + "}" * 300, "- " * 400 + "x",
                  "x" * 1024, "x" * 1025]


def path_ids(rng: random.Random) -> str:
    """A path parameter that names nothing, or tries to name something it should not."""
    return rng.choice([
        "0" * 32, "f" * 32, uuid.UUID(int=rng.getrandbits(128)).hex, "../../etc/passwd",
        quote("../../etc/passwd", safe=""), "..%2f..%2fetc%2fpasswd", "%2e%2e", "..", ".",
        "%00", quote("\x00", safe=""), "a" * 5000, "a" * 20000, quote("😀", safe=""), "-1",
        "0" * 31 + "G", ("0" * 32).upper(), "null", "%", "%zz", quote(" ", safe=""),
        "A" * 32, "1" * 33])


def fmt_num(x: float) -> str:
    return f"{x:.0f}" if math.isfinite(x) else str(x)
