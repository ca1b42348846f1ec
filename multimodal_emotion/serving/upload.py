"""Receive one multipart upload: stream it to a temporary file, enforce the size limit while
the bytes arrive, and sniff the container from its first bytes.

Why not FastAPI's ``UploadFile``: Starlette parses the *whole* multipart body (spooling it to
disk) before the route runs, so a size limit there would only act after a 10 GB upload had been
stored. Here the body is parsed chunk by chunk with ``python-multipart``: the request is refused
from ``Content-Length`` before a byte is read, or the moment the count passes the limit, and
unsupported types are refused after the first 512 bytes. The file name and the client's
content type are never trusted; only the magic numbers are.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

SNIFF_BYTES = 512
# Room for boundaries, part headers and the small form fields on top of the file itself.
FORM_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_FIELDS = 16
FILE_FIELD = "file"

log = logging.getLogger("multimodal_emotion.serving")
# Uploads live in a folder of their own under MER_UPLOAD_DIR, named mer-upload-<pid>-*.part, so
# a restarted server can remove what a killed one left (and only that: other processes' files
# keep their pid, and nothing without the prefix is ever touched).
UPLOAD_SUBDIR = "mer-uploads"
_UPLOAD_NAME = re.compile(r"^mer-upload-(\d+)-[A-Za-z0-9_]+\.part$")

SUPPORTED = ("mp4/mov/m4a (ftyp), mkv/webm, avi, wav, flv, mp3, aac (ADTS), flac, ogg/opus, "
             "MPEG-TS/PS, ASF/WMV")


def sniff(head: bytes) -> str | None:
    """The container family the first bytes announce, or ``None`` when they match none we decode.

    ISO-BMFF (mp4, mov, m4a, 3gp) has ``ftyp`` at offset 4 (old QuickTime files start with a
    ``moov``/``mdat``/``wide``/``free`` atom instead); Matroska/WebM starts with the EBML ID
    1A45DFA3; RIFF holds WAVE or AVI; MP3 starts with an ID3 tag or an MPEG audio frame header
    (11 sync bits, then a valid bitrate and sample-rate index); ADTS AAC has the same sync with
    layer 0.
    """
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:3] == b"FLV":
        return "flv"
    if head[:3] == b"ID3":
        return "mp3"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "asf"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg-ps"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpeg-ts"
    if len(head) >= 3 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer, bitrate, rate = (head[1] >> 1) & 3, head[2] >> 4, (head[2] >> 2) & 3
        if layer == 0:  # ADTS: MPEG-4 AAC in an MPEG audio-like frame header
            return "aac" if (head[2] >> 2) & 0xF < 13 else None
        if bitrate not in (0, 15) and rate != 3:
            return "mp3"
    return None


def upload_folder(upload_dir: str | os.PathLike) -> Path:
    """The server-owned folder for uploads under ``upload_dir`` (made if missing)."""
    folder = Path(upload_dir) / UPLOAD_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_uploads(upload_dir: str | os.PathLike) -> int:
    """Delete uploads a dead server left behind (``kill -9`` skips every ``finally``): only
    files named like ours whose writing process is gone. Returns how many were removed."""
    removed = 0
    for path in upload_folder(upload_dir).iterdir():
        match = _UPLOAD_NAME.match(path.name)
        if match and path.is_file() and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d upload(s) left by a server that did not stop cleanly", removed)
    return removed


async def paced(stream: AsyncIterator[bytes], read_timeout_s: float,
                min_bytes_per_s: float) -> AsyncIterator[bytes]:
    """``stream``, but a body that sends nothing for ``read_timeout_s``, or that has averaged
    less than ``min_bytes_per_s`` once ``read_timeout_s`` have passed, is dropped (408): a
    request may take its time, not hold the server's resources at one byte every ten seconds."""
    iterator = stream.__aiter__()
    start = time.monotonic()
    total = 0
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), read_timeout_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise ApiError("upload_timeout", f"the body stalled: nothing arrived for "
                           f"{read_timeout_s:g} s (MER_READ_TIMEOUT_S)",
                           headers={"Connection": "close"}) from None
        total += len(chunk)
        elapsed = time.monotonic() - start
        if elapsed > read_timeout_s and total < min_bytes_per_s * elapsed:
            raise ApiError("upload_timeout", f"the body arrives too slowly ({total} bytes in "
                           f"{elapsed:.0f} s; at least {min_bytes_per_s / 1024:g} KB/s is "
                           "needed, MER_MIN_UPLOAD_KBPS)", headers={"Connection": "close"})
        yield chunk


@dataclass
class Upload:
    """A received file (``path`` is the caller's to delete) and the form fields around it."""

    path: Path
    size: int
    kind: str
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


async def receive_upload(headers: Mapping[str, str], stream: AsyncIterator[bytes],
                         upload_dir: str | os.PathLike, max_bytes: int,
                         on_field: Callable[[str, str], None] | None = None) -> Upload:
    """Parse a ``multipart/form-data`` body whose ``file`` part is a video or audio file.

    ``on_field(name, value)`` sees each small form field as soon as its part ends, so a bad
    field can stop the request before the rest of a large file is read. Raises :class:`ApiError`
    (413, 415, 400, 422); on any failure the partial temporary file is already deleted.
    """
    ctype, params = parse_options_header(headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError("invalid_request", "send the clip as multipart/form-data with a 'file' "
                       "field (curl -F file=@clip.mp4)")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise _too_large(max_bytes, f"Content-Length is {int(declared)} bytes")
    receiver = _Receiver(Path(upload_dir), max_bytes, on_field)
    total = 0
    try:
        # inside the try: python-multipart refuses a boundary over 256 characters right here
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        async for chunk in stream:
            total += len(chunk)
            if total > max_bytes + FORM_OVERHEAD:
                raise _too_large(max_bytes, f"more than {total} bytes were sent")
            parser.write(chunk)
        parser.finalize()
        return receiver.result()
    except FormParserError as exc:
        receiver.discard()
        raise ApiError("malformed_request", f"the multipart body cannot be parsed ({exc})") \
            from exc
    except BaseException:  # includes ClientDisconnect and cancellation: never leave a file
        receiver.discard()
        raise


def _too_large(max_bytes: int, what: str) -> ApiError:
    mb = max_bytes / (1024 * 1024)
    return ApiError("upload_too_large", f"the upload is larger than the {mb:g} MB limit "
                    f"({what}); set MER_MAX_UPLOAD_MB to accept bigger files",
                    headers={"Connection": "close"})


class _Receiver:
    """``python-multipart`` callbacks: the file part goes to disk, other parts to memory."""

    def __init__(self, upload_dir: Path, max_bytes: int,
                 on_field: Callable[[str, str], None] | None) -> None:
        self.upload_dir, self.max_bytes, self.on_field = upload_dir, max_bytes, on_field
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.fd: int | None = None
        self.size = 0
        self.head = b""
        self.kind: str | None = None
        self.filename: str | None = None
        self._header_name = self._header_value = b""
        self._disposition = b""
        self._part: str | None = None  # "file", "field", or "skip"
        self._name = ""
        self._data = bytearray()
        self._done_file = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished}

    # -- headers ---------------------------------------------------------------------------
    def part_begin(self) -> None:
        self._disposition, self._part, self._data = b"", None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def headers_finished(self) -> None:
        _, opts = parse_options_header(self._disposition)
        self._name = opts.get(b"name", b"").decode("utf-8", "replace")
        if self._name == FILE_FIELD and b"filename" in opts:
            if self._done_file or self.fd is not None:
                raise ApiError("invalid_request", "send one file per request")
            self.filename = _safe_name(opts[b"filename"])
            self.fd, name = tempfile.mkstemp(prefix=f"mer-upload-{os.getpid()}-",
                                             suffix=".part", dir=upload_folder(self.upload_dir))
            self.path = Path(name)
            self._part = "file"
        elif b"filename" in opts:
            self._part = "skip"  # another file field: not ours, not stored
        else:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError("invalid_request", f"more than {MAX_FIELDS} form fields")
            self._part = "field"

    # -- data ------------------------------------------------------------------------------
    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part == "field":
            self._data += chunk
            if len(self._data) > MAX_FIELD_BYTES:
                raise ApiError("invalid_request", f"form field {self._name!r} is longer than "
                               f"{MAX_FIELD_BYTES} bytes")
        elif self._part == "file":
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes, f"more than {self.size} bytes of file")
            if self.kind is None:
                self.head += chunk[:SNIFF_BYTES]
                if len(self.head) >= SNIFF_BYTES:
                    self._sniff()
            # A plain blocking write: ~64 KB into the page cache takes microseconds, far less
            # than a hop to a thread would cost, so the event loop is not held up.
            assert self.fd is not None
            os.write(self.fd, chunk)

    def part_end(self) -> None:
        if self._part == "field":
            value = self._data.decode("utf-8", "replace").strip()
            self.fields[self._name] = value
            if self.on_field is not None:
                self.on_field(self._name, value)
        elif self._part == "file":
            if self.size and self.kind is None:
                self._sniff()
            self._close_fd()
            self._done_file = True

    def _sniff(self) -> None:
        self.kind = sniff(self.head[:SNIFF_BYTES])
        if self.kind is None:
            raise ApiError("unsupported_media_type", "the file is not a supported audio or video "
                           f"container (judged from its first bytes, not its name); supported: "
                           f"{SUPPORTED}", headers={"Connection": "close"})

    # -- outcome ---------------------------------------------------------------------------
    def result(self) -> Upload:
        if self.path is None:
            raise ApiError("invalid_request", "no file: send the clip in a form field named "
                           "'file' (curl -F file=@clip.mp4)")
        if not self._done_file:  # the body stopped inside the file part
            self.discard()
            raise ApiError("malformed_request", "the multipart body ends inside the file part")
        if self.size == 0:
            self.discard()
            raise ApiError("empty_upload", "the uploaded file is empty (0 bytes)")
        assert self.kind is not None
        return Upload(self.path, self.size, self.kind, self.filename, dict(self.fields))

    def _close_fd(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        self._close_fd()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def _safe_name(raw: bytes) -> str | None:
    """The base name the client gave (no folders), for the ``path`` field of the answer."""
    name = raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None
