"""The on-disk format of the inference log: segments of encrypted, checksummed frames.

Layout of a log folder::

    <folder>/log.json              {"log_id": "<uuid>", "format": 1}  (made once)
    <folder>/w0.lock               a writer holds an exclusive flock on its stream's lock
    <folder>/w0/00000001.seg       stream w0, segment 1
    <folder>/w0/00000002.seg       …

Each writer process appends to a stream of its own (``w0``, ``w1``, … one per server worker).

A segment starts with a header (all integers big-endian)::

    "BSIL" | version u8 | header length u32 | header JSON | key blob length u32 | key blob

The header JSON names the log, the stream, the segment's sequence number, its creation time, a
random 4-byte nonce prefix and ``prev_frames`` — how many frames the stream's previous segment
holds. The key blob is the segment's fresh AES-256 data key, encrypted with
:func:`bedside.stores.crypto.encrypt_bytes` under the project's current data key (the key id is in
the blob's header) with the context ``bedside/inference-log/<sha256 of the header JSON>``.

Then frames follow, each one record::

    ciphertext length u32 | crc32(length + ciphertext) u32 | ciphertext

    ciphertext = AES-256-GCM(segment key, nonce = prefix | frame index u64,
                             plaintext = the record as JSON,
                             aad = "bedside-inference/v1" | sha256(header JSON) | frame index u64)

The CRC tells a torn write (a crash in the middle of an append) from the rest; the GCM tag
authenticates each record, and binding the header digest and frame index into it makes a frame
moved to another segment, another log or another position fail. ``prev_frames`` in the next
segment's (authenticated) header makes frames cut from the end of a closed segment fail, and a
missing sequence number makes a deleted segment fail.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bedside.errors import IntegrityError
from bedside.security import KeyRing
from bedside.stores import crypto

__all__ = [
    "FRAME_HEAD",
    "SEGMENT_MAGIC",
    "FrameScan",
    "SegmentHeader",
    "SegmentReader",
    "frame_aad",
    "frame_nonce",
    "new_segment_bytes",
    "scan_frames",
    "segment_path",
    "stream_segments",
]

SEGMENT_MAGIC: Final = b"BSIL"
SEGMENT_VERSION: Final = 1
FRAME_HEAD: Final = struct.Struct(">II")
MAX_FRAME: Final = 16 * 1024 * 1024
_FIXED: Final = struct.Struct(">4sBI")
_U32: Final = struct.Struct(">I")
_AAD_LABEL: Final = b"bedside-inference/v1"
_KEY_CONTEXT: Final = "bedside/inference-log/"
_SEGMENT_SUFFIX: Final = ".seg"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The authenticated header of one segment."""

    log_id: str
    stream: str
    seq: int
    created: float
    prev_frames: int | None
    nonce_prefix: bytes
    digest: bytes  # sha256 of the header JSON, bound into every frame
    key_id: str
    size: int  # bytes before the first frame


def segment_path(folder: Path, stream: str, seq: int) -> Path:
    """Return the path of segment ``seq`` of ``stream``."""
    return folder / stream / f"{seq:08d}{_SEGMENT_SUFFIX}"


def stream_segments(folder: Path, stream: str) -> list[tuple[int, Path]]:
    """Return ``[(seq, path)]`` of a stream's segments, in order."""
    out = []
    directory = folder / stream
    if not directory.is_dir():
        return []
    for path in directory.glob(f"*{_SEGMENT_SUFFIX}"):
        stem = path.name[: -len(_SEGMENT_SUFFIX)]
        if stem.isdigit() and len(stem) == 8:
            out.append((int(stem), path))
    return sorted(out)


def frame_nonce(prefix: bytes, index: int) -> bytes:
    """Return the GCM nonce of frame ``index``: the segment's prefix and the index."""
    return prefix + index.to_bytes(8, "big")


def frame_aad(digest: bytes, index: int) -> bytes:
    """Return the associated data of frame ``index`` of the segment with header ``digest``."""
    return _AAD_LABEL + digest + index.to_bytes(8, "big")


def new_segment_bytes(
    *,
    key_ring: KeyRing,
    log_id: str,
    stream: str,
    seq: int,
    created: float,
    prev_frames: int | None,
) -> tuple[bytes, SegmentHeader, bytes]:
    """Return ``(header bytes, header, data key)`` for a new segment under the current key."""
    key_id = key_ring.current_data_key_id()
    prefix = secrets.token_bytes(4)
    header_json = orjson.dumps(
        {
            "log_id": log_id,
            "stream": stream,
            "seq": seq,
            "created": created,
            "prev_frames": prev_frames,
            "nonce_prefix": prefix.hex(),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    digest = hashlib.sha256(header_json).digest()
    key = secrets.token_bytes(32)
    blob = crypto.encrypt_bytes(
        key, key_ring=key_ring, key_id=key_id, context=_KEY_CONTEXT + digest.hex()
    )
    raw = b"".join(
        (
            _FIXED.pack(SEGMENT_MAGIC, SEGMENT_VERSION, len(header_json)),
            header_json,
            _U32.pack(len(blob)),
            blob,
        )
    )
    header = SegmentHeader(
        log_id=log_id,
        stream=stream,
        seq=seq,
        created=created,
        prev_frames=prev_frames,
        nonce_prefix=prefix,
        digest=digest,
        key_id=key_id,
        size=len(raw),
    )
    return raw, header, key


def _bad(path: Path, what: str, check: str) -> IntegrityError:
    return IntegrityError(
        f"Inference log segment {path.name} of stream {path.parent.name}: {what}",
        details={"segment": f"{path.parent.name}/{path.name}", "check": check},
    )


def read_segment_header(
    path: Path, data: bytes, *, key_ring: KeyRing
) -> tuple[SegmentHeader, AESGCM]:
    """Parse and authenticate a segment header; return it and the frame cipher.

    Raises:
        IntegrityError: not a segment, altered header, or its key cannot be unwrapped.
    """
    if len(data) < _FIXED.size or data[:4] != SEGMENT_MAGIC:
        raise _bad(path, "not an inference log segment (no 'BSIL' magic).", "magic")
    _, version, header_len = _FIXED.unpack_from(data)
    if version != SEGMENT_VERSION:
        raise _bad(path, f"format version {version}; expected {SEGMENT_VERSION}.", "version")
    start = _FIXED.size
    end = start + header_len
    if len(data) < end + _U32.size:
        raise _bad(path, "truncated inside its header.", "header")
    header_json = bytes(data[start:end])
    (blob_len,) = _U32.unpack_from(data, end)
    blob_start = end + _U32.size
    if len(data) < blob_start + blob_len:
        raise _bad(path, "truncated inside its key blob.", "header")
    digest = hashlib.sha256(header_json).digest()
    blob = bytes(data[blob_start : blob_start + blob_len])
    key = crypto.decrypt_bytes(blob, key_ring=key_ring, context=_KEY_CONTEXT + digest.hex())
    try:
        fields: dict[str, Any] = orjson.loads(header_json)
        header = SegmentHeader(
            log_id=str(fields["log_id"]),
            stream=str(fields["stream"]),
            seq=int(fields["seq"]),
            created=float(fields["created"]),
            prev_frames=None if fields["prev_frames"] is None else int(fields["prev_frames"]),
            nonce_prefix=bytes.fromhex(fields["nonce_prefix"]),
            digest=digest,
            key_id=crypto.read_header(blob).key_id,
            size=blob_start + blob_len,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _bad(path, "its header is malformed.", "header") from None
    return header, AESGCM(key)


@dataclass(slots=True)
class FrameScan:
    """Where a scan of frames stopped and why."""

    end: int  # offset just after the last good frame
    frames: int  # good frames, counted from the start of the segment
    torn: int  # bytes after ``end`` that form an incomplete or torn final frame (0 if clean)


def scan_frames(
    data: bytes | memoryview,
    *,
    offset: int,
    index: int,
    header: SegmentHeader,
    aead: AESGCM,
    path: Path,
    tail_may_tear: bool,
) -> Iterator[tuple[int, bytes] | FrameScan]:
    """Yield ``(index, plaintext)`` per good frame from ``offset``, then one :class:`FrameScan`.

    Zero bytes after the last frame are unwritten (preallocated) space. In the stream's newest
    segment (``tail_may_tear``) a final frame that is incomplete, or fails its CRC with no intact
    frame after it, is a torn write (a crash while writing; never acknowledged): it is reported
    in ``FrameScan.torn``. A bad frame followed by an intact one is damage, not a crash, and is
    refused; so is any bad frame in a closed segment.

    Raises:
        IntegrityError: a frame fails its CRC or its authentication where a crash cannot explain
            it; frames were cut, reordered or altered.
    """
    view = memoryview(data)
    total = len(view)
    position = offset
    head_size = FRAME_HEAD.size
    while position < total:
        torn = False
        if total - position < head_size:
            torn = True
        else:
            length, crc = FRAME_HEAD.unpack_from(view, position)
            body_end = position + head_size + length
            if length > MAX_FRAME or body_end > total:
                torn = True
            elif (
                frame_crc(view[position : position + 4], view[position + head_size : body_end])
                != crc
            ):
                if _all_zero(view[position:total]) or (
                    tail_may_tear and not _frame_follows(view, body_end)
                ):
                    torn = True
                else:
                    raise _bad(
                        path,
                        f"frame {index} fails its checksum with more frames after it: the "
                        "file was altered or damaged. None of the later frames is trusted.",
                        "crc",
                    )
            else:
                try:
                    plain = aead.decrypt(
                        frame_nonce(header.nonce_prefix, index),
                        bytes(view[position + head_size : body_end]),
                        frame_aad(header.digest, index),
                    )
                except InvalidTag:
                    raise _bad(
                        path,
                        f"frame {index} fails authentication: it was altered, moved from another "
                        "position, segment or log, or frames before it were removed.",
                        "frame",
                    ) from None
                yield index, plain
                index += 1
                position = body_end
                continue
        if torn and _all_zero(view[position:total]):
            # Zero bytes a filesystem left after a crash (never written by us).
            yield FrameScan(end=position, frames=index, torn=total - position)
            return
        if torn and tail_may_tear:
            yield FrameScan(end=position, frames=index, torn=total - position)
            return
        raise _bad(
            path,
            f"frame {index} is incomplete in a closed segment: the segment was truncated.",
            "truncated",
        )
    yield FrameScan(end=position, frames=index, torn=0)


def _frame_follows(view: memoryview, position: int) -> bool:
    """Return whether an intact frame (complete, CRC-valid) starts at ``position``."""
    head_size = FRAME_HEAD.size
    if len(view) - position < head_size:
        return False
    length, crc = FRAME_HEAD.unpack_from(view, position)
    end = position + head_size + length
    if length == 0 or end > len(view):
        return False
    return bool(frame_crc(view[position : position + 4], view[position + head_size : end]) == crc)


def frame_crc(length: bytes | memoryview, ciphertext: bytes | memoryview) -> int:
    """Return the CRC-32 of a frame: over its length field, then its ciphertext."""
    return zlib.crc32(ciphertext, zlib.crc32(length))


def _all_zero(view: memoryview) -> bool:
    return not bytes(view).strip(b"\0")


class SegmentReader:
    """Reads one segment's frames incrementally (also while a writer appends to it)."""

    def __init__(self, path: Path, *, key_ring: KeyRing) -> None:
        self.path = path
        self._key_ring = key_ring
        self.header: SegmentHeader | None = None
        self._aead: AESGCM | None = None
        self.offset = 0
        self.frames = 0
        self.torn = 0

    def read_new(self, *, tail_may_tear: bool) -> list[bytes]:
        """Return the plaintexts of frames appended since the last call.

        Raises:
            IntegrityError: as :func:`scan_frames`, or a bad header.
        """
        with open(self.path, "rb") as fh:
            if self.header is None:
                data = fh.read()
                self.header, self._aead = read_segment_header(
                    self.path, data, key_ring=self._key_ring
                )
                self.offset = self.header.size
                view: bytes | memoryview = memoryview(data)[self.offset :]
            else:
                fh.seek(self.offset)
                view = fh.read()
        assert self._aead is not None
        out: list[bytes] = []
        for item in scan_frames(
            view,
            offset=0,
            index=self.frames,
            header=self.header,
            aead=self._aead,
            path=self.path,
            tail_may_tear=tail_may_tear,
        ):
            if isinstance(item, FrameScan):
                self.offset += item.end
                self.frames = item.frames
                self.torn = item.torn
            else:
                out.append(item[1])
        return out


def fsync_dir(path: Path) -> None:
    """Make a directory entry durable (a new or renamed file in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
