"""Encryption at rest: AES-256-GCM envelope encryption with key ids, rotation and tamper evidence.

Every blob (a dataset snapshot, a model artifact, a page of the inference log) gets its own fresh
random 256-bit data-encryption key (DEK). The DEK encrypts the data with AES-256-GCM in segments
(4 MiB by default) and is itself wrapped — AES-256-GCM again — by the project's key-encryption key
(KEK) named by a key id (``k1``, ``k2`` …, the files ``keys/data-<id>.key`` of
:class:`bedside.security.KeyRing`). Rotation re-wraps the DEK under a new KEK; the data segments
are not touched.

Format, version 1 (all integers big-endian)::

    offset  size  field
    0       4     magic "BSDE"
    4       1     format version (1)
    5       4     segment size S (plaintext bytes per segment)
    9       7     nonce prefix (random)
    16      1     key id length L
    17      L     key id (ASCII: k1, k2, …)
    17+L    12    wrap nonce (random)
    29+L    48    wrapped DEK = AES-GCM(KEK, wrap nonce, DEK,
                                        aad = "bedside-dek/v1" | bytes 0-15 | key id)
    77+L    …     segments: AES-GCM(DEK, nonce_i, plaintext_i,
                                    aad = "bedside-blob/v1" | bytes 0-15 | context),
                  each S plaintext bytes + 16-byte tag; the last one shorter (or empty) or full

    nonce_i = nonce prefix (7) | i as uint32 (4) | 1 if last segment else 0 (1)

This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015, as used by Tink and
age): the counter in the nonce makes a reordered, dropped or duplicated segment fail, and the
last-segment flag makes a blob cut at a segment boundary fail. The ``context`` (a logical name,
e.g. ``bedside/dataset/<digest>``) is authenticated but not stored, so a blob moved to another
name or purpose fails to decrypt. The bytes a rotation rewrites (key id, wrap nonce, wrapped DEK)
are authenticated by the wrapping itself and are not part of the segments' associated data.

Any failure — a flipped bit anywhere, truncation, reordering, the wrong context, an unknown key id
— raises :class:`bedside.errors.IntegrityError` saying what failed (never any of the data). No
plaintext is returned from a blob until the segment holding it has been authenticated;
:func:`decrypt_file` writes to a temporary file and removes it on failure, so a partially
decrypted file is never left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bedside.errors import ConfigError, IntegrityError, InvalidInput
from bedside.security import DATA_KEY_ID, KeyRing

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "BlobHeader",
    "decrypt_bytes",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_file",
    "encrypt_stream",
    "iter_decrypt",
    "read_header",
    "rewrap",
    "rewrap_file",
]

logger = logging.getLogger(__name__)

MAGIC: Final = b"BSDE"
FORMAT_VERSION: Final = 1
DEFAULT_SEGMENT_SIZE: Final = 4 * 1024 * 1024
MIN_SEGMENT_SIZE: Final = 16
MAX_SEGMENT_SIZE: Final = 64 * 1024 * 1024

_FIXED: Final = struct.Struct(">4sBI7s")  # magic, version, segment size, nonce prefix
_TAG: Final = 16
_DEK_LEN: Final = 32
_WRAP_NONCE_LEN: Final = 12
_WRAPPED_LEN: Final = _DEK_LEN + _TAG
_PREFIX_LEN: Final = 7
_MAX_SEGMENTS: Final = 2**32
_WRAP_LABEL: Final = b"bedside-dek/v1"
_BODY_LABEL: Final = b"bedside-blob/v1"


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """The plaintext header of an encrypted blob (no secret in it: the DEK is wrapped)."""

    version: int
    segment_size: int
    nonce_prefix: bytes
    key_id: str
    wrap_nonce: bytes
    wrapped_dek: bytes

    @property
    def fixed(self) -> bytes:
        """Return bytes 0–15: magic, version, segment size and nonce prefix."""
        return _FIXED.pack(MAGIC, self.version, self.segment_size, self.nonce_prefix)

    @property
    def size(self) -> int:
        """Return the length of the header in bytes."""
        return _FIXED.size + 1 + len(self.key_id) + _WRAP_NONCE_LEN + _WRAPPED_LEN

    def to_bytes(self) -> bytes:
        """Return the header as written at the start of the blob."""
        key_id = self.key_id.encode("ascii")
        return b"".join(
            (self.fixed, bytes([len(key_id)]), key_id, self.wrap_nonce, self.wrapped_dek)
        )


# ----------------------------------------------------------------------------------- public API


def encrypt_bytes(
    data: bytes | bytearray | memoryview,
    *,
    key_ring: KeyRing,
    key_id: str,
    context: str,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> bytearray:
    """Encrypt ``data`` under a fresh DEK wrapped by data key ``key_id``; return the blob.

    The blob is built in one preallocated ``bytearray`` (no copy per segment).

    Args:
        data: the plaintext.
        key_ring: the project's keys.
        key_id: the data key (KEK) to wrap the DEK with, e.g. ``key_ring.current_data_key_id()``.
        context: what the blob is (e.g. ``bedside/dataset/<digest>``); the same text is needed to
            decrypt it, so a blob swapped for another one fails.
        segment_size: plaintext bytes per authenticated segment.

    Raises:
        InvalidInput: bad key id, context or segment size.
        ConfigError: the data key is missing or malformed.
    """
    header, dek = _new_header(key_ring, key_id, segment_size)
    aead = AESGCM(dek)
    aad = _body_aad(header, context)
    view = memoryview(data).cast("B")
    size = header.segment_size
    count = max(1, -(-len(view) // size))
    _check_count(count)
    head = header.to_bytes()
    out = bytearray(len(head) + len(view) + _TAG * count)
    out[: len(head)] = head
    target = memoryview(out)
    at = len(head)
    for index in range(count):
        chunk = view[index * size : (index + 1) * size]
        nonce = _segment_nonce(header.nonce_prefix, index, last=index == count - 1)
        end = at + len(chunk) + _TAG
        aead.encrypt_into(nonce, chunk, aad, target[at:end])
        at = end
    return out


def decrypt_bytes(
    blob: bytes | bytearray | memoryview, *, key_ring: KeyRing, context: str
) -> bytearray:
    """Authenticate and decrypt a blob made by :func:`encrypt_bytes` or :func:`encrypt_file`.

    Returns:
        The plaintext, in one preallocated ``bytearray``.

    Raises:
        IntegrityError: the blob is not a bedside blob, was altered, truncated or reordered, was
            made for another context, or its key id is not in the key ring.
    """
    view = memoryview(blob).cast("B")
    header = _parse_header(view, context)
    what = _describe(context)
    aad = _body_aad(header, context)
    aead = AESGCM(_unwrap(header, key_ring, what))
    body = view[header.size :]
    full = header.segment_size + _TAG
    count = max(1, -(-len(body) // full))
    last_size = len(body) - (count - 1) * full
    if last_size < _TAG:
        raise _truncated(what, count - 1, last_size)
    if count > _MAX_SEGMENTS:
        raise IntegrityError(f"{what} has too many segments.", details={"check": "segments"})
    out = bytearray(len(body) - _TAG * count)
    target = memoryview(out)
    size = header.segment_size
    for index in range(count):
        last = index == count - 1
        segment = body[index * full : (index + 1) * full]
        start = index * size
        try:
            aead.decrypt_into(
                _segment_nonce(header.nonce_prefix, index, last=last),
                segment,
                aad,
                target[start : start + len(segment) - _TAG],
            )
        except InvalidTag:
            raise _failed(what, index, last) from None
    return out


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    key_ring: KeyRing,
    key_id: str,
    context: str,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Encrypt everything read from ``src`` into ``dst``, one segment in memory at a time.

    Returns:
        The number of plaintext bytes encrypted.
    """
    header, dek = _new_header(key_ring, key_id, segment_size)
    aead = AESGCM(dek)
    aad = _body_aad(header, context)
    size = header.segment_size
    dst.write(header.to_bytes())
    total = 0
    index = 0
    current = _read_upto(src.read, size)
    while True:
        # Read one segment ahead: only then is it known whether this one is the last.
        following = _read_upto(src.read, size) if len(current) == size else b""
        last = not following
        _check_count(index + 1)
        dst.write(aead.encrypt(_segment_nonce(header.nonce_prefix, index, last=last), current, aad))
        total += len(current)
        if last:
            return total
        current = following
        index += 1


def iter_decrypt(src: BinaryIO, *, key_ring: KeyRing, context: str) -> Iterator[bytes]:
    """Yield the plaintext of the blob read from ``src``, one authenticated segment at a time.

    Every chunk yielded has been authenticated, but the blob is known to be complete only when the
    iterator ends without raising: a consumer must not act on the data before then.

    Raises:
        IntegrityError: as :func:`decrypt_bytes`, at the first segment that fails.
    """
    header = _parse_header(_read_header_bytes(src.read, context), context)
    yield from _iter_segments(src.read, header, key_ring=key_ring, context=context)


def decrypt_stream(src: BinaryIO, dst: BinaryIO, *, key_ring: KeyRing, context: str) -> int:
    """Decrypt the blob read from ``src`` into ``dst``; return the plaintext size.

    ``dst`` may hold a prefix of the plaintext when this raises; use :func:`decrypt_file` to get
    all or nothing.
    """
    total = 0
    for chunk in iter_decrypt(src, key_ring=key_ring, context=context):
        dst.write(chunk)
        total += len(chunk)
    return total


def encrypt_file(
    src: Path,
    dst: Path,
    *,
    key_ring: KeyRing,
    key_id: str,
    context: str,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> int:
    """Encrypt file ``src`` to ``dst`` (written to a temporary file, synced, then renamed).

    Returns:
        The number of plaintext bytes encrypted.
    """
    with open(src, "rb") as fin, _atomic_writer(dst) as fout:
        total = encrypt_stream(
            fin, fout, key_ring=key_ring, key_id=key_id, context=context, segment_size=segment_size
        )
    logger.debug("encrypted %d bytes with key %s", total, key_id)
    return total


def decrypt_file(src: Path, dst: Path, *, key_ring: KeyRing, context: str) -> int:
    """Decrypt file ``src`` to ``dst``: all or nothing (``dst`` appears only when all verified).

    Returns:
        The plaintext size.

    Raises:
        IntegrityError: as :func:`decrypt_bytes`; ``dst`` is then not created.
    """
    with open(src, "rb") as fin, _atomic_writer(dst) as fout:
        return decrypt_stream(fin, fout, key_ring=key_ring, context=context)


def read_header(source: bytes | bytearray | memoryview | Path) -> BlobHeader:
    """Return the header of a blob (or of the blob in a file): which key id it needs, etc.

    Only the header's form is checked here; it is authenticated when the blob is decrypted.

    Raises:
        IntegrityError: not a bedside blob, or a malformed header.
    """
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            return _parse_header(_read_header_bytes(fh.read, str(source)), str(source))
    return _parse_header(memoryview(source).cast("B"), "blob")


def rewrap(
    blob: bytes | bytearray | memoryview, new_key_id: str, *, key_ring: KeyRing
) -> bytearray:
    """Return ``blob`` with its DEK re-wrapped under data key ``new_key_id`` (key rotation).

    Only the header changes; the encrypted segments are copied as they are, so this is cheap for
    any size. The old key is needed once, here; afterwards it can be retired. The segments are not
    authenticated by this step (that needs the context); decryption still checks all of them.

    Raises:
        IntegrityError: the blob's DEK does not unwrap with its key (altered or unknown key).
        InvalidInput / ConfigError: the new key id is malformed or missing.
    """
    view = memoryview(blob).cast("B")
    header = _parse_header(view, "blob")
    new_header = _rewrapped_header(header, new_key_id, key_ring=key_ring)
    return bytearray(new_header.to_bytes()) + view[header.size :]


def rewrap_file(path: Path, new_key_id: str, *, key_ring: KeyRing) -> BlobHeader:
    """Re-wrap the blob in file ``path`` under ``new_key_id``, atomically; return the new header.

    Raises:
        IntegrityError: as :func:`rewrap`.
    """
    with open(path, "rb") as fin:
        header = _parse_header(_read_header_bytes(fin.read, str(path)), str(path))
        new_header = _rewrapped_header(header, new_key_id, key_ring=key_ring)
        with _atomic_writer(path) as fout:
            fout.write(new_header.to_bytes())
            shutil.copyfileobj(fin, fout, 1024 * 1024)
    logger.info("re-wrapped a blob from key %s to key %s", header.key_id, new_key_id)
    return new_header


# ------------------------------------------------------------------------------------ internals


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not DATA_KEY_ID.fullmatch(key_id):
        raise InvalidInput(
            f"{key_id!r} is not a data key id; expected k1, k2, … (keys/data-k1.key)"
        )


def _check_context(context: str) -> bytes:
    if not isinstance(context, str) or not context:
        raise InvalidInput("An encryption context is a non-empty text naming what the blob is.")
    return context.encode("utf-8")


def _check_count(count: int) -> None:
    if count > _MAX_SEGMENTS:
        raise InvalidInput(f"Too many segments ({count}) for one blob; use a larger segment size.")


def _new_header(key_ring: KeyRing, key_id: str, segment_size: int) -> tuple[BlobHeader, bytes]:
    _check_key_id(key_id)
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise InvalidInput(
            f"segment_size {segment_size} is out of range; expected {MIN_SEGMENT_SIZE} to "
            f"{MAX_SEGMENT_SIZE} bytes (default {DEFAULT_SEGMENT_SIZE})."
        )
    dek = secrets.token_bytes(_DEK_LEN)
    partial = BlobHeader(
        version=FORMAT_VERSION,
        segment_size=segment_size,
        nonce_prefix=secrets.token_bytes(_PREFIX_LEN),
        key_id=key_id,
        wrap_nonce=b"",
        wrapped_dek=b"",
    )
    return _wrap(partial, dek, key_ring.data_key(key_id)), dek


def _wrap(header: BlobHeader, dek: bytes, kek: bytes) -> BlobHeader:
    wrap_nonce = secrets.token_bytes(_WRAP_NONCE_LEN)
    wrapped = AESGCM(kek).encrypt(wrap_nonce, dek, _wrap_aad(header.fixed, header.key_id))
    return BlobHeader(
        version=header.version,
        segment_size=header.segment_size,
        nonce_prefix=header.nonce_prefix,
        key_id=header.key_id,
        wrap_nonce=wrap_nonce,
        wrapped_dek=wrapped,
    )


def _wrap_aad(fixed: bytes, key_id: str) -> bytes:
    return _WRAP_LABEL + fixed + key_id.encode("ascii")


def _body_aad(header: BlobHeader, context: str) -> bytes:
    return _BODY_LABEL + header.fixed + _check_context(context)


def _segment_nonce(prefix: bytes, index: int, *, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _unwrap(header: BlobHeader, key_ring: KeyRing, what: str) -> bytes:
    try:
        kek = key_ring.data_key(header.key_id)
    except ConfigError as exc:
        raise IntegrityError(
            f"{what}: encrypted with data key {header.key_id!r}, which the key ring cannot "
            f"provide ({exc.message}) Restore keys/data-{header.key_id}.key (or move it back from "
            "keys/retired/); if no such key ever existed, the header was altered.",
            details={"key_id": header.key_id, "check": "key_id"},
        ) from None
    try:
        return AESGCM(kek).decrypt(
            header.wrap_nonce, header.wrapped_dek, _wrap_aad(header.fixed, header.key_id)
        )
    except InvalidTag:
        raise IntegrityError(
            f"{what}: the data key does not unwrap with key {header.key_id!r}: the header was "
            f"altered, or keys/data-{header.key_id}.key is not the key this blob was made with.",
            details={"key_id": header.key_id, "check": "key_wrap"},
        ) from None


def _rewrapped_header(header: BlobHeader, new_key_id: str, *, key_ring: KeyRing) -> BlobHeader:
    _check_key_id(new_key_id)
    dek = _unwrap(header, key_ring, "Cannot re-wrap the blob")
    moved = BlobHeader(
        version=header.version,
        segment_size=header.segment_size,
        nonce_prefix=header.nonce_prefix,
        key_id=new_key_id,
        wrap_nonce=b"",
        wrapped_dek=b"",
    )
    return _wrap(moved, dek, key_ring.data_key(new_key_id))


def _describe(context: str) -> str:
    return f"Encrypted blob {context!r}"


def _read_header_bytes(read: Callable[[int], bytes], context: str) -> bytes:
    head = _read_upto(read, _FIXED.size + 1)
    if len(head) < _FIXED.size + 1:
        raise IntegrityError(
            f"{_describe(context)} is truncated: {len(head)} bytes, shorter than a header.",
            details={"check": "header"},
        )
    rest = _read_upto(read, head[-1] + _WRAP_NONCE_LEN + _WRAPPED_LEN)
    return head + rest


def _parse_header(view: bytes | memoryview, context: str) -> BlobHeader:
    what = _describe(context)
    if len(view) < _FIXED.size + 1:
        raise IntegrityError(
            f"{what} is truncated: {len(view)} bytes, shorter than a header.",
            details={"check": "header"},
        )
    magic, version, segment_size, prefix = _FIXED.unpack(bytes(view[: _FIXED.size]))
    if magic != MAGIC:
        raise IntegrityError(
            f"{what} is not a bedside encrypted blob (no 'BSDE' magic): it is plaintext, another "
            "format, or its first bytes were altered.",
            details={"check": "magic"},
        )
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"{what} has format version {version}; this bedside reads version "
            f"{FORMAT_VERSION}. Upgrade bedside, or the header was altered.",
            details={"check": "version"},
        )
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError(
            f"{what} declares a segment size of {segment_size} bytes, outside "
            f"{MIN_SEGMENT_SIZE}–{MAX_SEGMENT_SIZE}: the header was altered.",
            details={"check": "segment_size"},
        )
    key_len = view[_FIXED.size]
    start = _FIXED.size + 1
    end = start + key_len + _WRAP_NONCE_LEN + _WRAPPED_LEN
    if len(view) < end:
        raise IntegrityError(f"{what} is truncated inside its header.", details={"check": "header"})
    try:
        key_id = bytes(view[start : start + key_len]).decode("ascii")
    except UnicodeDecodeError:
        key_id = ""
    if not DATA_KEY_ID.fullmatch(key_id):
        raise IntegrityError(
            f"{what} has a malformed key id in its header: the header was altered.",
            details={"check": "key_id"},
        )
    nonce_at = start + key_len
    return BlobHeader(
        version=version,
        segment_size=segment_size,
        nonce_prefix=prefix,
        key_id=key_id,
        wrap_nonce=bytes(view[nonce_at : nonce_at + _WRAP_NONCE_LEN]),
        wrapped_dek=bytes(view[nonce_at + _WRAP_NONCE_LEN : end]),
    )


def _truncated(what: str, index: int, size: int) -> IntegrityError:
    return IntegrityError(
        f"{what} is truncated: segment {index} has {size} bytes, fewer than its 16-byte "
        "authentication tag.",
        details={"check": "truncated", "segment": index},
    )


def _failed(what: str, index: int, last: bool) -> IntegrityError:
    hint = (
        "it was altered, or it is being read under the wrong context (it belongs to something else)"
        if index == 0
        else "it was altered, truncated, or its segments were reordered"
    )
    return IntegrityError(
        f"{what} failed authentication at segment {index}{' (the last)' if last else ''}: "
        f"{hint}. None of it is trusted.",
        details={"check": "segment", "segment": index},
    )


def _iter_segments(
    read: Callable[[int], bytes], header: BlobHeader, *, key_ring: KeyRing, context: str
) -> Iterator[bytes]:
    what = _describe(context)
    aad = _body_aad(header, context)
    aead = AESGCM(_unwrap(header, key_ring, what))
    full = header.segment_size + _TAG
    index = 0
    current = _read_upto(read, full)
    while True:
        if len(current) < _TAG:
            raise _truncated(what, index, len(current))
        following = _read_upto(read, full) if len(current) == full else b""
        last = not following
        if index >= _MAX_SEGMENTS:
            raise IntegrityError(f"{what} has too many segments.", details={"check": "segments"})
        nonce = _segment_nonce(header.nonce_prefix, index, last=last)
        try:
            plain = aead.decrypt(nonce, current, aad)
        except InvalidTag:
            raise _failed(what, index, last) from None
        yield plain
        if last:
            return
        current = following
        index += 1


def _read_upto(read: Callable[[int], bytes], n: int) -> bytes:
    """Read exactly ``n`` bytes, or fewer only at the end of the stream."""
    first = read(n)
    if len(first) == n or not first:
        return first
    parts = [first]
    got = len(first)
    while got < n:
        more = read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


@contextlib.contextmanager
def _atomic_writer(dst: Path) -> Iterator[BinaryIO]:
    """Write ``dst`` through a temporary file in its folder: synced and renamed, or removed."""
    dst = Path(dst)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
