"""The inference log: group commit, encryption, rotation, recovery and tamper evidence."""

from __future__ import annotations

import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bedside.errors import IntegrityError, StoreUnavailable
from bedside.security import KeyRing
from bedside.serving.inference_log import (
    InferenceLog,
    InferenceLogReader,
    outcome_entry,
    prediction_entry,
)
from bedside.serving.log_format import SegmentReader, stream_segments

CANARY = 987654.321


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.create()
    return ring


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "log"


def _entry(i: int, *, model: str = "sepsis", value: float = 1.5) -> dict[str, Any]:
    return prediction_entry(
        request_id=str(uuid.UUID(int=i + 1)),
        received=1_700_000_000.0 + i,
        model=model,
        version="3",
        threshold=0.5,
        inputs={"x0": value, "n": i},
        probability=0.25,
        decision=False,
        shadow_version=None,
    )


def _write(folder: Path, keys: KeyRing, count: int, **kwargs: Any) -> None:
    log = InferenceLog.open(folder, key_ring=keys, **kwargs)
    try:
        for i in range(count):
            log.append_sync([_entry(i)])
    finally:
        log.close()


def _read(folder: Path, keys: KeyRing) -> list[dict[str, Any]]:
    return list(InferenceLogReader(folder, key_ring=keys).entries())


def _segments(folder: Path, stream: str = "w0") -> list[Path]:
    return [path for _, path in stream_segments(folder, stream)]


def _frame_offsets(path: Path, keys: KeyRing) -> Iterator[tuple[int, int]]:
    """Yield (offset, total length) of each frame of a closed segment."""
    reader = SegmentReader(path, key_ring=keys)
    reader.read_new(tail_may_tear=False)
    assert reader.header is not None
    data = path.read_bytes()
    position = reader.header.size
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        yield position, 8 + length
        position += 8 + length


def test_records_round_trip_in_order(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 5)
    entries = _read(folder, keys)
    assert [e["inputs"]["n"] for e in entries] == [0, 1, 2, 3, 4]
    assert all(e["kind"] == "prediction" and e["logged"] > 0 for e in entries)


def test_inputs_are_not_readable_in_the_files(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 3)
    raw = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    for needle in (repr(CANARY), "987654", "sepsis", str(uuid.UUID(int=1)), '"inputs"'):
        assert needle.encode() not in raw
    assert _read(folder, keys)[0]["inputs"] == {"x0": 1.5, "n": 0}


def test_group_commit_makes_many_concurrent_records_durable_in_few_flushes(
    folder: Path, keys: KeyRing
) -> None:
    groups: list[int] = []
    log = InferenceLog.open(
        folder, key_ring=keys, observer=lambda records, size, seconds: groups.append(records)
    )
    barrier = threading.Barrier(16)

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(20):
            log.append_sync([_entry(w * 100 + i)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert sum(groups) == 320
    assert len(groups) < 320  # records shared flushes
    assert max(groups) > 1
    assert len(_read(folder, keys)) == 320


def test_segments_rotate_by_size_and_chain(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 60, segment_bytes=4096)
    segments = _segments(folder)
    assert len(segments) > 3
    assert [e["inputs"]["n"] for e in _read(folder, keys)] == list(range(60))
    for path in segments[:-1]:  # closed segments are cut to their last frame
        reader = SegmentReader(path, key_ring=keys)
        reader.read_new(tail_may_tear=False)
        assert reader.torn == 0 and reader.offset == path.stat().st_size


def test_a_torn_final_write_is_skipped_by_readers_and_cut_on_recovery(
    folder: Path, keys: KeyRing
) -> None:
    _write(folder, keys, 4)
    last = _segments(folder)[-1]
    with open(last, "ab") as fh:  # a crash in the middle of writing a frame
        fh.write(struct.pack(">II", 300, 12345) + b"\x07" * 100)
    assert len(_read(folder, keys)) == 4
    _write(folder, keys, 0)  # reopen: recovery cuts the torn frame, a new segment starts
    reader = SegmentReader(last, key_ring=keys)
    reader.read_new(tail_may_tear=False)
    assert reader.torn == 0 and reader.frames == 4
    assert len(_segments(folder)) == 2
    _write(folder, keys, 2)
    assert len(_read(folder, keys)) == 6


def test_two_writers_take_separate_streams_and_both_are_read(folder: Path, keys: KeyRing) -> None:
    first = InferenceLog.open(folder, key_ring=keys)
    second = InferenceLog.open(folder, key_ring=keys)
    try:
        assert {first.stream, second.stream} == {"w0", "w1"}
        first.append_sync([_entry(1)])
        second.append_sync([_entry(2, model="aki")])
        # An id written by the other process is found by reading its stream.
        assert first.unknown_ids("aki", [str(uuid.UUID(int=3)), str(uuid.UUID(int=4))]) == [
            str(uuid.UUID(int=4))
        ]
        assert first.unknown_ids("sepsis", [str(uuid.UUID(int=3))]) == [str(uuid.UUID(int=3))]
    finally:
        first.close()
        second.close()
    assert sorted(e["inputs"]["n"] for e in _read(folder, keys)) == [1, 2]


def test_outcomes_and_shadow_outputs_join_their_prediction(folder: Path, keys: KeyRing) -> None:
    log = InferenceLog.open(folder, key_ring=keys, lazy_seconds=0.01)
    rid = str(uuid.UUID(int=1))
    log.append_sync([_entry(0)])
    log.append_nowait([{"kind": "shadow", "request_id": rid, "version": "4", "probability": 0.7}])
    log.append_outcome(rid, 0, 1_700_000_100.0, model="sepsis")
    log.append_outcome(rid, 1, 1_700_000_200.0, model="sepsis")  # a correction: latest wins
    log.close()
    (record,) = InferenceLogReader(folder, key_ring=keys).records()
    assert record.request_id == rid
    assert record.version == "3"
    assert record.inputs == {"x0": 1.5, "n": 0}
    assert record.shadow is not None and record.shadow["probability"] == 0.7
    assert record.outcome is not None and record.outcome["label"] == 1
    assert record.received.year == 2023


def test_outcome_label_must_be_0_or_1() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        outcome_entry(str(uuid.UUID(int=1)), 2, 0.0)


def test_appending_to_a_closed_log_is_refused(folder: Path, keys: KeyRing) -> None:
    log = InferenceLog.open(folder, key_ring=keys)
    log.close()
    with pytest.raises(StoreUnavailable):
        log.append_sync([_entry(0)])


# --------------------------------------------------------------------------- tamper evidence


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_frame_is_refused(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 5)
    path = _segments(folder)[0]
    offset, _ = list(_frame_offsets(path, keys))[1]
    _flip(path, offset + 20)
    with pytest.raises(IntegrityError, match="checksum"):
        _read(folder, keys)


def test_an_altered_frame_with_a_fixed_checksum_fails_authentication(
    folder: Path, keys: KeyRing
) -> None:
    _write(folder, keys, 5)
    path = _segments(folder)[0]
    offset, size = list(_frame_offsets(path, keys))[2]
    data = bytearray(path.read_bytes())
    data[offset + 20] ^= 0x01
    length = bytes(data[offset : offset + 4])
    data[offset + 4 : offset + 8] = struct.pack(
        ">I", zlib.crc32(data[offset + 8 : offset + size], zlib.crc32(length))
    )
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="authentication"):
        _read(folder, keys)


def test_swapped_frames_fail_authentication(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 4)
    path = _segments(folder)[0]
    frames = list(_frame_offsets(path, keys))
    data = path.read_bytes()
    (a, la), (b, lb) = frames[0], frames[1]
    swapped = data[:a] + data[b : b + lb] + data[a : a + la] + data[b + lb :]
    path.write_bytes(swapped)
    with pytest.raises(IntegrityError, match="authentication"):
        _read(folder, keys)


def test_frames_cut_from_a_closed_segment_are_detected(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 60, segment_bytes=4096)
    first = _segments(folder)[0]
    offset, _ = list(_frame_offsets(first, keys))[-1]
    with open(first, "r+b") as fh:
        fh.truncate(offset)  # remove the last frame cleanly
    with pytest.raises(IntegrityError, match="cut from its end"):
        _read(folder, keys)


def test_a_deleted_segment_is_detected(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 60, segment_bytes=4096)
    _segments(folder)[1].unlink()
    with pytest.raises(IntegrityError, match="missing"):
        _read(folder, keys)


def test_an_altered_segment_header_is_refused(folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 2)
    path = _segments(folder)[0]
    data = path.read_bytes()
    start = data.index(b'"seq":')
    path.write_bytes(data[:start] + b'"seq":7' + data[start + 7 :])
    with pytest.raises(IntegrityError):
        _read(folder, keys)


def test_a_segment_copied_from_another_log_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _write(one, keys, 2)
    _write(two, keys, 2)
    _segments(two)[0].write_bytes(_segments(one)[0].read_bytes())
    with pytest.raises(IntegrityError, match="another log"):
        _read(two, keys)


def test_the_wrong_key_cannot_read_the_log(tmp_path: Path, folder: Path, keys: KeyRing) -> None:
    _write(folder, keys, 2)
    other = KeyRing(tmp_path / "other-keys")
    other.create()
    with pytest.raises(IntegrityError):
        _read(folder, other)
