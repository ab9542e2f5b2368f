"""The durable, encrypted, append-only inference log, written with group commit.

Every prediction the server makes is a record in this log before its response is sent. One
writer at a time — the writer thread, or a thread that calls :meth:`InferenceLog.write_now` while
no flush runs (the model thread, saving two thread wake-ups per request) — takes all pending
records at once, encrypts each (AES-256-GCM, see :mod:`bedside.serving.log_format`), writes them
to the current segment in one write, calls ``fdatasync`` once for the whole group and only then
releases every waiting request. Under load a group holds many records, so durability costs one
disk flush per group, not per request; records arriving during a flush form the next group.

Records are JSON objects with a ``kind``:

- ``prediction``: ``request_id``, ``received`` (epoch seconds), ``model``, ``version``,
  ``threshold``, ``inputs`` (the validated features), ``probability``, ``decision``,
  ``shadow_version`` (or null), ``logged`` (server time when written).
- ``shadow``: the shadow model's output for a ``request_id`` (``version``, ``probability``,
  ``decision``, ``threshold``), or ``error`` (the exception type) — written later than the
  prediction, never waited for.
- ``outcome``: a ``label`` (0/1) that arrived later for a ``request_id``, with its ``time``.

On open the writer claims a stream (``w0``, ``w1`` … one per server worker, held by an exclusive
``flock``), cuts a torn final frame left by a crash from the stream's newest segment and starts a
fresh segment (with a fresh data key; frames are never appended after a torn write, so no nonce is
ever reused). :class:`~bedside.serving.log_reader.InferenceLogReader` authenticates and
decrypts everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bedside.errors import InvalidInput, StoreUnavailable
from bedside.security import KeyRing
from bedside.serving.log_format import (
    MAX_FRAME,
    SegmentReader,
    frame_aad,
    frame_nonce,
    fsync_dir,
    new_segment_bytes,
    segment_path,
    stream_segments,
)
from bedside.serving.log_reader import (
    LOG_FILE,
    InferenceLogReader,
    InferenceRecord,
    read_log_id,
    read_streams,
)

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "InferenceLog",
    "InferenceLogReader",
    "InferenceRecord",
    "outcome_entry",
    "prediction_entry",
]

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES: Final = 64 * 1024 * 1024
#: Request ids kept in memory per model (the newest); older ones are found by reading the log.
DEFAULT_INDEX_SIZE: Final = 200_000
MAX_STREAMS: Final = 256
_U32: Final = struct.Struct(">I")
_PREALLOCATE: Final = 4 * 1024 * 1024

#: ``observer(records, bytes, fsync_seconds)`` is called after every durable group.
GroupObserver = Callable[[int, int, float], None]


def prediction_entry(
    *,
    request_id: str,
    received: float,
    model: str,
    version: str | None,
    threshold: float | None,
    inputs: dict[str, Any],
    probability: float | None,
    decision: bool | None,
    shadow_version: str | None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return the log record of one prediction (``logged`` is added when it is written).

    ``version``, ``threshold``, ``probability`` and ``decision`` are ``None`` when no production
    version was live (the shadow version alone scored the request; nothing was returned).
    ``attributes`` (stratification attributes for subgroup monitoring) is kept only when sent.
    """
    entry = {
        "kind": "prediction",
        "request_id": request_id,
        "received": received,
        "model": model,
        "version": version,
        "threshold": threshold,
        "inputs": inputs,
        "probability": probability,
        "decision": decision,
        "shadow_version": shadow_version,
    }
    if attributes is not None:
        entry["attributes"] = attributes
    return entry


def _ensure_log_id(folder: Path) -> str:
    existing = read_log_id(folder)
    if existing is not None:
        return existing
    tmp = folder / f".{LOG_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(orjson.dumps({"log_id": str(uuid.uuid4()), "format": 1}))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    with contextlib.suppress(FileExistsError):
        os.link(tmp, folder / LOG_FILE)  # atomic: the first writer's identity wins
    tmp.unlink()
    fsync_dir(folder)
    log_id = read_log_id(folder)
    assert log_id is not None
    return log_id


class _SyncWaiter:
    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None


def _resolve(waiters: list[tuple[asyncio.Future[Any], Any]], error: BaseException | None) -> None:
    for future, result in waiters:
        if not future.done():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


#: A waiter: an asyncio future (resolved with None), ``(future, result)`` (resolved with
#: ``result``), a thread's ``_SyncWaiter``, or None (nobody waits).
Waiter = Any


class InferenceLog:
    """The writer of one stream of the inference log (one per process).

    Use :meth:`open`; call :meth:`close` at shutdown (it writes everything pending first).
    """

    def __init__(
        self,
        folder: Path,
        *,
        key_ring: KeyRing,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], float] = time.time,
        observer: GroupObserver | None = None,
        lazy_seconds: float = 0.2,
        index_size: int = DEFAULT_INDEX_SIZE,
    ) -> None:
        if segment_bytes < 4096:
            raise InvalidInput(f"segment_bytes must be at least 4096; got {segment_bytes}.")
        self.folder = Path(folder)
        self._key_ring = key_ring
        self._segment_bytes = segment_bytes
        self._clock = clock
        self.observer = observer
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[tuple[dict[str, Any], Any]] = []
        self._urgent = False  # a pending entry has a waiter: write now
        self._writing = False  # a thread is writing (the writer thread or a write_now caller)
        self._lazy_since: float | None = None  # when the oldest unwaited-for entry came
        self.lazy_seconds = lazy_seconds
        self._closing = False
        self._failed: StoreUnavailable | None = None
        if index_size < 1:
            raise InvalidInput(f"index_size must be at least 1; got {index_size}.")
        # The newest ``index_size`` request ids of each model (oldest first), and the models
        # whose older ids were dropped from memory (a miss then reads the whole log).
        self.index_size = index_size
        self._known: dict[str, OrderedDict[bytes, None]] = {}
        self._evicted: set[str] = set()
        self._readers: dict[Path, SegmentReader] = {}
        self._index_lock = threading.Lock()
        self._fd = -1
        self._lock_fd = -1
        self.stream = ""
        self.log_id = ""
        self._seq = 0
        self._frames = 0
        self._size = 0  # bytes of the current segment in use
        self._allocated = 0  # bytes of the current segment on disk (zeros after _size)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        key_ring: KeyRing,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], float] = time.time,
        observer: GroupObserver | None = None,
        lazy_seconds: float = 0.2,
        index_size: int = DEFAULT_INDEX_SIZE,
    ) -> InferenceLog:
        """Open (or create) the log in ``folder``: claim a stream, recover it, start writing.

        Raises:
            IntegrityError: the stream's newest segment is damaged beyond a torn final write.
            StoreUnavailable: every stream is held by another live writer.
            ConfigError: the project has no data key.
        """
        log = cls(
            folder,
            key_ring=key_ring,
            segment_bytes=segment_bytes,
            clock=clock,
            observer=observer,
            lazy_seconds=lazy_seconds,
            index_size=index_size,
        )
        log._start()
        return log

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_id = _ensure_log_id(self.folder)
        self._claim_stream()
        (self.folder / self.stream).mkdir(exist_ok=True, mode=0o700)
        prev_frames = self._recover()
        self._new_segment(prev_frames)
        self._thread = threading.Thread(
            target=self._run, name=f"bedside-log-{self.stream}", daemon=True
        )
        self._thread.start()
        logger.info("inference log stream %s open at segment %d", self.stream, self._seq)

    def _claim_stream(self) -> None:
        for number in range(MAX_STREAMS):
            fd = os.open(self.folder / f"w{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd
            self.stream = f"w{number}"
            return
        raise StoreUnavailable(
            f"All {MAX_STREAMS} inference log streams in {self.folder} are held by running "
            "writers; stop a server, or give this one its own log folder."
        )

    def _recover(self) -> int | None:
        """Cut a torn tail from the stream's newest segment; return its frame count."""
        directory = self.folder / self.stream
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink()
        segments = stream_segments(self.folder, self.stream)
        if not segments:
            return None
        seq, path = segments[-1]
        reader = SegmentReader(path, key_ring=self._key_ring)
        reader.read_new(tail_may_tear=True)
        self._seq = seq
        if reader.torn:
            with open(path, "r+b") as fh:
                fh.truncate(reader.offset)
                os.fsync(fh.fileno())
            logger.warning(
                "inference log %s/%s: cut %d bytes of unused space or a torn write after %d frames",
                self.stream,
                path.name,
                reader.torn,
                reader.frames,
            )
        return reader.frames

    def _new_segment(self, prev_frames: int | None) -> None:
        self._close_segment()
        self._seq += 1
        raw, header, key = new_segment_bytes(
            key_ring=self._key_ring,
            log_id=self.log_id,
            stream=self.stream,
            seq=self._seq,
            created=self._clock(),
            prev_frames=prev_frames,
        )
        path = segment_path(self.folder, self.stream, self._seq)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        self._fd = os.open(path, os.O_WRONLY)
        self._aead = AESGCM(key)
        self._prefix = header.nonce_prefix
        self._digest = header.digest
        self._frames = 0
        self._size = self._allocated = header.size

    def _close_segment(self) -> None:
        """Cut the unused preallocated space off the current segment, sync it and close it."""
        if self._fd < 0:
            return
        os.ftruncate(self._fd, self._size)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1

    def _preallocate(self, end: int) -> None:
        """Write zeros ahead of ``end``: later records overwrite allocated blocks in place.

        Appending changes the file's size, so every ``fdatasync`` would also commit the
        filesystem journal; overwriting preallocated zeros flushes only data, which is faster
        and far steadier under load. Readers treat a zero tail as unwritten space.
        """
        target = max(end, min(end + _PREALLOCATE, self._segment_bytes))
        zeros = bytes(min(_PREALLOCATE, 1024 * 1024))
        while self._allocated < target:
            chunk = min(len(zeros), target - self._allocated)
            self._allocated += os.pwrite(self._fd, zeros[:chunk], self._allocated)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything pending, make it durable, stop the writer and release the stream."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close_segment()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1
        logger.info("inference log stream %s closed", self.stream)

    @property
    def is_healthy(self) -> bool:
        """Return whether the log accepts records (open and no write has failed)."""
        return not self._closing and self._failed is None

    # --------------------------------------------------------------------------------- append

    def _enqueue(self, entries: Sequence[dict[str, Any]], waiter: Any) -> None:
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._closing:
                raise StoreUnavailable("The inference log is closed; the server is shutting down.")
            last = len(entries) - 1
            self._pending.extend(
                (entry, waiter if i == last else None) for i, entry in enumerate(entries)
            )
            if waiter is not None:
                if not self._urgent:
                    self._urgent = True
                    self._cond.notify()
            elif self._lazy_since is None:
                self._lazy_since = time.monotonic()
                self._cond.notify()  # the writer sets its timer for these

    async def append(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append ``entries``; return once all are durable (in one group).

        Raises:
            StoreUnavailable: the log is closed or a write failed.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(entries, future)
        await future

    def append_sync(self, entries: Sequence[dict[str, Any]], *, timeout: float = 30.0) -> None:
        """Append ``entries`` from a plain thread; return once all are durable.

        Raises:
            StoreUnavailable: the log is closed, a write failed, or it timed out.
        """
        waiter = _SyncWaiter()
        self._enqueue(entries, waiter)
        if not waiter.event.wait(timeout):
            raise StoreUnavailable(f"The inference log did not confirm a write in {timeout} s.")
        if waiter.error is not None:
            raise waiter.error

    def append_nowait(self, entries: Sequence[dict[str, Any]]) -> None:
        """Queue ``entries`` without waiting (shadow outputs).

        They ride along with the next group that someone waits for, or are written on their own
        after ``lazy_seconds`` — so they never cost a waiting request an extra flush.
        """
        self._enqueue(entries, None)

    def append_outcome(
        self, request_id: str, label: int, time: datetime | float, *, model: str | None = None
    ) -> None:
        """Durably record that the outcome ``label`` of ``request_id`` became known at ``time``."""
        self.append_sync([outcome_entry(request_id, label, time, model=model)])

    # ----------------------------------------------------------------------------- the writer

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._writing or (not self._urgent and not self._closing):
                    if self._writing or self._lazy_since is None:
                        self._cond.wait()
                        continue
                    remaining = self._lazy_since + self.lazy_seconds - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closing and not self._pending:
                    return  # everything written
                self._writing = True
            self._flush()

    def _flush(self) -> None:
        """Write groups while someone waits for records (the caller holds the writer role).

        The first group takes everything pending; later ones are written only for records
        someone waits for, so unwaited-for records (shadow outputs) arriving during a flush
        wait for the next group instead of costing a flush of their own.
        """
        first = True
        while True:
            with self._cond:
                if not self._pending or not (first or self._urgent or self._closing):
                    self._writing = False
                    self._cond.notify_all()
                    return
                group, self._pending = self._pending, []
                self._urgent = False
                self._lazy_since = None
            first = False
            error: BaseException | None = self._failed
            if error is None:
                try:
                    self._write_group(group)
                except Exception as exc:  # disk full, I/O error: no later write is safe
                    logger.error(
                        "inference log %s: a write of %d records failed (%s); the log stops "
                        "accepting records until the server restarts",
                        self.stream,
                        len(group),
                        type(exc).__name__,
                    )
                    self._failed = StoreUnavailable(
                        "The inference log could not be written; predictions are refused until "
                        "the server is restarted (check disk space and permissions)."
                    )
                    error = self._failed
            self._release(group, error)

    def write_now(self, batches: Sequence[tuple[Sequence[dict[str, Any]], Waiter]]) -> None:
        """Append each ``(entries, waiter)``; if no flush is running, write them in this thread.

        For a thread that produced records and is free to wait for the disk (the model
        thread): when the writer is idle, this thread writes and flushes the group itself,
        which saves two thread wake-ups per request; when a flush is running, the records join
        the group after it and this returns at once. Either way every waiter is released only
        once its records are durable.

        Raises:
            StoreUnavailable: the log is closed or a write failed.
        """
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._closing:
                raise StoreUnavailable("The inference log is closed; the server is shutting down.")
            for entries, waiter in batches:
                last = len(entries) - 1
                self._pending.extend(
                    (entry, waiter if i == last else None) for i, entry in enumerate(entries)
                )
            if self._writing:
                self._urgent = True
                return
            self._writing = True
        self._flush()

    def _write_group(self, group: list[tuple[dict[str, Any], Any]]) -> None:
        now = self._clock()
        aead, prefix, digest = self._aead, self._prefix, self._digest
        index = self._frames
        parts: list[bytes] = []
        dumps = orjson.dumps
        for entry, _ in group:
            entry["logged"] = now
            plain = dumps(entry)
            if len(plain) > MAX_FRAME - 16:
                raise InvalidInput("An inference log record is larger than 16 MiB.")
            cipher = aead.encrypt(frame_nonce(prefix, index), plain, frame_aad(digest, index))
            length = _U32.pack(len(cipher))
            parts.append(length)
            parts.append(_U32.pack(zlib.crc32(cipher, zlib.crc32(length))))
            parts.append(cipher)
            index += 1
        data = b"".join(parts)
        end = self._size + len(data)
        if end > self._allocated:
            self._preallocate(end)
        view = memoryview(data)
        position = self._size
        while view:
            written = os.pwrite(self._fd, view, position)
            view = view[written:]
            position += written
        started = time.perf_counter()
        os.fdatasync(self._fd)
        elapsed = time.perf_counter() - started
        self._frames = index
        self._size += len(data)
        for entry, _ in group:
            if entry["kind"] == "prediction":
                self._remember(entry["model"], entry["request_id"])
        if self.observer is not None:
            self.observer(len(group), len(data), elapsed)
        if self._size >= self._segment_bytes:
            self._new_segment(self._frames)

    def _release(
        self, group: list[tuple[dict[str, Any], Waiter]], error: BaseException | None
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for _, waiter in group:
            if waiter is None:
                continue
            if isinstance(waiter, _SyncWaiter):
                waiter.error = error
                waiter.event.set()
                continue
            future, result = waiter if isinstance(waiter, tuple) else (waiter, None)
            by_loop.setdefault(future.get_loop(), []).append((future, result))
        for loop, waiters in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, waiters, error)

    # ------------------------------------------------------------------------------ the index

    def _remember(self, model: str, request_id: str) -> None:
        known = self._known.get(model)
        if known is None:
            known = self._known[model] = OrderedDict()
        known[uuid.UUID(request_id).bytes] = None
        if len(known) > self.index_size:
            known.popitem(last=False)
            self._evicted.add(model)

    def refresh_index(self) -> None:
        """Read records new since the last refresh (every stream) into the request-id index."""
        with self._index_lock:
            for plain in read_streams(
                self.folder, key_ring=self._key_ring, log_id=self.log_id, readers=self._readers
            ):
                entry = orjson.loads(plain)
                if entry.get("kind") == "prediction":
                    self._remember(entry["model"], entry["request_id"])

    def unknown_ids(self, model: str, request_ids: Iterable[str]) -> list[str]:
        """Return the ids among ``request_ids`` with no prediction of ``model`` in the log.

        Reads the log (all streams, so other workers' records count) when an id is not yet
        indexed; blocking — call it off the event loop.
        """
        ids = list(request_ids)
        missing = [i for i in ids if uuid.UUID(i).bytes not in self._known.get(model, ())]
        if missing:
            self.refresh_index()
            known = self._known.get(model, OrderedDict())
            missing = [i for i in missing if uuid.UUID(i).bytes not in known]
        if missing and model in self._evicted:
            missing = self._scan_for(model, missing)
        return missing

    def _scan_for(self, model: str, request_ids: list[str]) -> list[str]:
        """Read the whole log for ids older than the in-memory index; return those not found."""
        wanted = {uuid.UUID(i).bytes for i in request_ids}
        with self._index_lock:
            for plain in read_streams(
                self.folder, key_ring=self._key_ring, log_id=self.log_id, readers={}
            ):
                entry = orjson.loads(plain)
                if entry.get("kind") == "prediction" and entry.get("model") == model:
                    wanted.discard(uuid.UUID(entry["request_id"]).bytes)
                    if not wanted:
                        break
        return [i for i in request_ids if uuid.UUID(i).bytes in wanted]


def outcome_entry(
    request_id: str, label: int, time: datetime | float, *, model: str | None = None
) -> dict[str, Any]:
    """Return the log record of an outcome label that arrived for ``request_id``."""
    if isinstance(label, bool) or label not in (0, 1):
        raise InvalidInput("An outcome label is 0 or 1.")
    when = time.timestamp() if isinstance(time, datetime) else float(time)
    return {
        "kind": "outcome",
        "request_id": str(request_id),
        "model": model,
        "label": label,
        "time": when,
    }
