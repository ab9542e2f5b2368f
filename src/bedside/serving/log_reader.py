"""Read the inference log back: authenticate, decrypt and join its records.

:class:`InferenceLogReader` is what monitoring, the shadow report and the crash test use; the
writer (:mod:`bedside.serving.inference_log`) uses the same stream reading to index request ids.
Everything read is verified: each frame's checksum and GCM tag, each segment's header, and each
stream's chain of segments (no sequence number missing, no frame cut from a closed segment). A
torn final write in a stream's newest segment (a crash, or a write in progress) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from bedside.errors import IntegrityError
from bedside.security import KeyRing
from bedside.serving.log_format import SegmentReader, stream_segments

__all__ = ["LOG_FILE", "InferenceLogReader", "InferenceRecord", "read_log_id", "read_streams"]

LOG_FILE: Final = "log.json"


def read_log_id(folder: Path) -> str | None:
    try:
        data = orjson.loads((folder / LOG_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        raise IntegrityError(
            f"{folder / LOG_FILE} is not valid JSON: the inference log's identity was altered.",
            details={"check": "log_id"},
        ) from None
    return str(data["log_id"])


def _streams(folder: Path) -> list[str]:
    return sorted(
        (
            p.name
            for p in folder.iterdir()
            if p.is_dir() and p.name[:1] == "w" and p.name[1:].isdigit()
        ),
        key=lambda name: int(name[1:]),
    )


def read_streams(
    folder: Path,
    *,
    key_ring: KeyRing,
    log_id: str,
    readers: dict[Path, SegmentReader],
) -> Iterator[bytes]:
    """Yield new frame plaintexts of every stream, checking each stream's segment chain."""
    for stream in _streams(folder):
        segments = stream_segments(folder, stream)
        previous: SegmentReader | None = None
        for position, (seq, path) in enumerate(segments):
            reader = readers.get(path)
            if reader is None:
                reader = readers[path] = SegmentReader(path, key_ring=key_ring)
            last = position == len(segments) - 1
            plaintexts = reader.read_new(tail_may_tear=last)
            header = reader.header
            assert header is not None
            where = {"segment": f"{stream}/{path.name}"}
            if header.log_id != log_id or header.stream != stream or header.seq != seq:
                raise IntegrityError(
                    f"Inference log segment {stream}/{path.name} belongs to another log, stream "
                    "or position: it was copied or renamed.",
                    details={**where, "check": "segment_identity"},
                )
            if previous is None and (seq != 1 or header.prev_frames is not None):
                raise IntegrityError(
                    f"Inference log stream {stream} starts at segment {seq}: the segments "
                    "before it are missing.",
                    details={**where, "check": "missing_segment"},
                )
            if previous is not None:
                prev_header = previous.header
                assert prev_header is not None
                if prev_header.seq != seq - 1:
                    raise IntegrityError(
                        f"Inference log stream {stream}: segment {seq - 1} is missing.",
                        details={**where, "check": "missing_segment"},
                    )
                if header.prev_frames != previous.frames:
                    raise IntegrityError(
                        f"Inference log segment {stream}/{previous.path.name} holds "
                        f"{previous.frames} frames; the next segment says it closed with "
                        f"{header.prev_frames}: frames were cut from its end.",
                        details={**where, "check": "prev_frames"},
                    )
            yield from plaintexts
            previous = reader


@dataclass(frozen=True, slots=True)
class InferenceRecord:
    """One prediction joined with its shadow output and outcome (as read back from the log).

    ``version``, ``probability``, ``decision`` and ``threshold`` are ``None`` for a request scored
    by a shadow version alone (no production version was live: nothing was returned).
    ``attributes`` are the stratification attributes sent with the request (``race``,
    ``age_group``…) for subgroup monitoring, or ``None``.
    """

    request_id: str
    model: str
    version: str | None
    received: datetime
    logged: datetime
    inputs: dict[str, Any]
    probability: float | None
    decision: bool | None
    threshold: float | None
    shadow_version: str | None
    shadow: dict[str, Any] | None
    outcome: dict[str, Any] | None
    attributes: dict[str, str] | None = None


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class InferenceLogReader:
    """Authenticates, decrypts and iterates an inference log folder (all streams)."""

    def __init__(self, folder: Path, *, key_ring: KeyRing) -> None:
        self.folder = Path(folder)
        self._key_ring = key_ring

    def entries(self) -> Iterator[dict[str, Any]]:
        """Yield every record, stream by stream, in write order.

        Raises:
            IntegrityError: a frame, segment header or segment chain fails verification.
        """
        log_id = read_log_id(self.folder)
        if log_id is None:
            return
        for plain in read_streams(self.folder, key_ring=self._key_ring, log_id=log_id, readers={}):
            yield orjson.loads(plain)

    def records(self) -> list[InferenceRecord]:
        """Return every prediction with its shadow output and latest outcome joined.

        Raises:
            IntegrityError: as :meth:`entries`, or a request id logged twice.
        """
        predictions: dict[str, dict[str, Any]] = {}
        shadows: dict[str, dict[str, Any]] = {}
        outcomes: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            kind = entry.get("kind")
            request_id = str(entry.get("request_id"))
            if kind == "prediction":
                if request_id in predictions:
                    raise IntegrityError(
                        "A request id has two prediction records in the inference log.",
                        details={"check": "duplicate"},
                    )
                predictions[request_id] = entry
            elif kind == "shadow":
                shadows[request_id] = entry
            elif kind == "outcome":
                previous = outcomes.get(request_id)
                if previous is None or entry["time"] >= previous["time"]:
                    outcomes[request_id] = entry
        return [
            InferenceRecord(
                request_id=rid,
                model=e["model"],
                version=e["version"],
                received=_when(e["received"]),
                logged=_when(e["logged"]),
                inputs=e["inputs"],
                probability=e["probability"],
                decision=e["decision"],
                threshold=e["threshold"],
                shadow_version=e.get("shadow_version"),
                shadow=shadows.get(rid),
                outcome=outcomes.get(rid),
                attributes=e.get("attributes"),
            )
            for rid, e in predictions.items()
        ]
