"""Encryption at rest: round trips, every kind of tampering, key ids, rotation, nonce uniqueness."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedside.errors import ConfigError, IntegrityError, InvalidInput
from bedside.security import KeyRing
from bedside.stores.crypto import (
    DEFAULT_SEGMENT_SIZE,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    encrypt_stream,
    iter_decrypt,
    read_header,
    rewrap,
    rewrap_file,
)

SEG = 64
CTX = "bedside/test/blob"
CANARY = b"ZZCANARY-Jane-Roe-MRN-0042317"


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.create()
    return ring


def _segments(blob: bytes | bytearray, seg: int = SEG) -> tuple[bytes, list[bytes]]:
    """Split a blob into its header and its encrypted segments."""
    blob = bytes(blob)
    size = read_header(blob).size
    body = blob[size:]
    step = seg + 16
    return blob[:size], [body[i : i + step] for i in range(0, len(body), step)]


def _data(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 5 * SEG + 7])
def test_encrypt_bytes_round_trips_every_segment_shape(keys: KeyRing, size: int) -> None:
    data = _data(size)
    blob = encrypt_bytes(data, key_ring=keys, key_id="k1", context=CTX, segment_size=SEG)
    segments = max(1, -(-size // SEG))
    assert len(blob) == read_header(blob).size + size + 16 * segments
    assert decrypt_bytes(blob, key_ring=keys, context=CTX) == data


def test_encrypt_bytes_round_trips_large_data_with_default_segments(keys: KeyRing) -> None:
    data = _data(251) * (9 * 1024 * 1024 // 251)  # ~9 MiB: three 4 MiB segments
    blob = encrypt_bytes(data, key_ring=keys, key_id="k1", context=CTX)
    assert read_header(blob).segment_size == DEFAULT_SEGMENT_SIZE
    assert len(blob) == read_header(blob).size + len(data) + 16 * 3
    assert decrypt_bytes(blob, key_ring=keys, context=CTX) == data


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=1500), segment_size=st.integers(16, 300))
def test_encrypt_bytes_round_trips_any_data(keys: KeyRing, data: bytes, segment_size: int) -> None:
    blob = encrypt_bytes(data, key_ring=keys, key_id="k1", context=CTX, segment_size=segment_size)
    assert decrypt_bytes(blob, key_ring=keys, context=CTX) == data


@pytest.mark.parametrize("size", [0, SEG, 10 * SEG + 5])
def test_encrypt_file_round_trips_and_matches_the_bytes_format(
    keys: KeyRing, tmp_path: Path, size: int
) -> None:
    data = _data(size)
    (tmp_path / "plain.bin").write_bytes(data)
    n = encrypt_file(
        tmp_path / "plain.bin",
        tmp_path / "blob.enc",
        key_ring=keys,
        key_id="k1",
        context=CTX,
        segment_size=SEG,
    )
    assert n == size
    blob = (tmp_path / "blob.enc").read_bytes()
    # A file blob is an ordinary blob: decrypt_bytes reads it too.
    assert decrypt_bytes(blob, key_ring=keys, context=CTX) == data
    assert (
        decrypt_file(tmp_path / "blob.enc", tmp_path / "out.bin", key_ring=keys, context=CTX)
        == size
    )
    assert (tmp_path / "out.bin").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "blob.enc",
        "out.bin",
        "plain.bin",
    ]


def test_iter_decrypt_yields_one_authenticated_segment_at_a_time(keys: KeyRing) -> None:
    data = _data(4 * SEG + 10)
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key_ring=keys, key_id="k1", context=CTX, segment_size=SEG)
    chunks = list(iter_decrypt(io.BytesIO(out.getvalue()), key_ring=keys, context=CTX))
    assert [len(c) for c in chunks] == [SEG, SEG, SEG, SEG, 10]
    assert b"".join(chunks) == data


class _Trickle(io.RawIOBase):
    """A stream returning at most 5 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 5) if n >= 0 else 5)


def test_streams_cope_with_short_reads(keys: KeyRing) -> None:
    data = _data(3 * SEG + 1)
    out = io.BytesIO()
    source = cast(BinaryIO, _Trickle(data))
    encrypt_stream(source, out, key_ring=keys, key_id="k1", context=CTX, segment_size=SEG)
    blob = cast(BinaryIO, _Trickle(out.getvalue()))
    plain = b"".join(iter_decrypt(blob, key_ring=keys, context=CTX))
    assert plain == data


# ---------------------------------------------------------------------------------- tampering


@pytest.fixture
def blob(keys: KeyRing) -> bytes:
    """A four-segment blob, as immutable bytes (like a file read back)."""
    return bytes(
        encrypt_bytes(
            _data(3 * SEG + 20), key_ring=keys, key_id="k1", context=CTX, segment_size=SEG
        )
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(keys: KeyRing, blob: bytes, position: int, bit: int) -> None:
    altered = bytearray(blob)
    altered[position % len(blob)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        decrypt_bytes(bytes(altered), key_ring=keys, context=CTX)


def test_a_flipped_bit_in_every_byte_is_detected(keys: KeyRing, blob: bytes) -> None:
    for position in range(len(blob)):
        altered = bytearray(blob)
        altered[position] ^= 1 << (position % 8)
        with pytest.raises(IntegrityError):
            decrypt_bytes(bytes(altered), key_ring=keys, context=CTX)


def test_every_truncation_is_detected(keys: KeyRing, blob: bytes) -> None:
    for length in range(len(blob)):
        with pytest.raises(IntegrityError):
            decrypt_bytes(blob[:length], key_ring=keys, context=CTX)


def test_truncation_at_a_segment_boundary_names_the_last_segment(
    keys: KeyRing, blob: bytes
) -> None:
    header, segments = _segments(blob)
    assert len(segments) == 4
    with pytest.raises(IntegrityError, match=r"segment 2 \(the last\)"):
        decrypt_bytes(header + b"".join(segments[:3]), key_ring=keys, context=CTX)


@pytest.mark.parametrize(
    "reorder",
    [
        pytest.param(lambda s: [s[1], s[0], s[2], s[3]], id="swap-first-two"),
        pytest.param(lambda s: [s[0], s[2], s[1], s[3]], id="swap-middle"),
        pytest.param(lambda s: [s[0], s[2], s[3]], id="drop-middle"),
        pytest.param(lambda s: [s[0], s[1], s[1], s[2], s[3]], id="duplicate"),
        pytest.param(lambda s: [s[0], s[1], s[2], s[3], s[3]], id="repeat-last"),
    ],
)
def test_reordered_dropped_or_duplicated_segments_are_detected(
    keys: KeyRing, blob: bytes, reorder: object
) -> None:
    header, segments = _segments(blob)
    altered = header + b"".join(reorder(segments))  # type: ignore[operator]
    with pytest.raises(IntegrityError, match="failed authentication at segment"):
        decrypt_bytes(altered, key_ring=keys, context=CTX)


def test_appended_bytes_are_detected(keys: KeyRing, blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        decrypt_bytes(blob + b"\x00", key_ring=keys, context=CTX)


def test_segments_of_another_blob_under_the_same_key_are_refused(
    keys: KeyRing, blob: bytes
) -> None:
    other = encrypt_bytes(
        _data(3 * SEG + 20), key_ring=keys, key_id="k1", context=CTX, segment_size=SEG
    )
    header, _ = _segments(blob)
    _, other_segments = _segments(other)
    with pytest.raises(IntegrityError, match="segment 0"):
        decrypt_bytes(header + b"".join(other_segments), key_ring=keys, context=CTX)


def test_wrong_context_is_refused_at_the_first_segment(keys: KeyRing, blob: bytes) -> None:
    with pytest.raises(IntegrityError, match="wrong context") as caught:
        decrypt_bytes(blob, key_ring=keys, context="bedside/test/another-blob")
    assert caught.value.details == {"check": "segment", "segment": 0}


def test_plaintext_is_not_a_blob(keys: KeyRing) -> None:
    with pytest.raises(IntegrityError, match="not a bedside encrypted blob"):
        decrypt_bytes(b"PAR1" + _data(200), key_ring=keys, context=CTX)


def test_an_unknown_format_version_is_refused(keys: KeyRing, blob: bytes) -> None:
    altered = blob[:4] + b"\x02" + blob[5:]
    with pytest.raises(IntegrityError, match="format version 2"):
        decrypt_bytes(altered, key_ring=keys, context=CTX)


def test_a_huge_declared_segment_size_is_refused_before_reading(keys: KeyRing, blob: bytes) -> None:
    altered = blob[:5] + struct.pack(">I", 2**31) + blob[9:]
    with pytest.raises(IntegrityError, match="segment size"):
        decrypt_bytes(altered, key_ring=keys, context=CTX)


def test_tamper_errors_never_contain_the_data(keys: KeyRing) -> None:
    blob = encrypt_bytes(CANARY * 10, key_ring=keys, key_id="k1", context=CTX, segment_size=SEG)
    messages = []
    for position in range(0, len(blob), 7):
        altered = bytearray(blob)
        altered[position] ^= 0x40
        with pytest.raises(IntegrityError) as caught:
            decrypt_bytes(bytes(altered), key_ring=keys, context=CTX)
        messages.append(str(caught.value) + repr(caught.value.details))
    assert messages
    assert not any(CANARY.decode() in m or "Jane" in m for m in messages)


def test_decrypt_file_leaves_nothing_behind_when_tampered(
    keys: KeyRing, tmp_path: Path, blob: bytes
) -> None:
    altered = bytearray(blob)
    altered[-1] ^= 1  # the last segment: earlier segments decrypt fine first
    (tmp_path / "blob.enc").write_bytes(bytes(altered))
    with pytest.raises(IntegrityError, match="segment 3"):
        decrypt_file(tmp_path / "blob.enc", tmp_path / "out.bin", key_ring=keys, context=CTX)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["blob.enc"]


# ------------------------------------------------------------------------------------ key ids


def test_a_blob_needs_the_key_it_names(keys: KeyRing, tmp_path: Path) -> None:
    key_id = keys.create_data_key()
    assert key_id == "k2"
    blob = encrypt_bytes(b"abc", key_ring=keys, key_id="k2", context=CTX)
    assert read_header(blob).key_id == "k2"
    (keys.folder / "data-k2.key").unlink()
    with pytest.raises(IntegrityError, match="data key 'k2'") as caught:
        decrypt_bytes(blob, key_ring=keys, context=CTX)
    assert caught.value.details["check"] == "key_id"


def test_a_blob_read_with_another_key_ring_is_refused(keys: KeyRing, tmp_path: Path) -> None:
    blob = encrypt_bytes(b"abc", key_ring=keys, key_id="k1", context=CTX)
    other = KeyRing(tmp_path / "other-keys")
    other.create()
    with pytest.raises(IntegrityError, match="does not unwrap with key 'k1'"):
        decrypt_bytes(blob, key_ring=other, context=CTX)


def test_an_edited_key_id_is_refused(keys: KeyRing) -> None:
    keys.create_data_key()
    blob = encrypt_bytes(b"abc", key_ring=keys, key_id="k1", context=CTX)
    at = blob.index(b"k1", 16)
    altered = blob[:at] + b"k2" + blob[at + 2 :]
    with pytest.raises(IntegrityError, match="does not unwrap with key 'k2'"):
        decrypt_bytes(altered, key_ring=keys, context=CTX)
    bad = blob[:at] + b"./" + blob[at + 2 :]
    with pytest.raises(IntegrityError, match="malformed key id"):
        decrypt_bytes(bad, key_ring=keys, context=CTX)


@pytest.mark.parametrize("key_id", ["", "k0", "K1", "../k1", "k1/../../x", "key1"])
def test_encrypt_refuses_a_malformed_key_id(keys: KeyRing, key_id: str) -> None:
    with pytest.raises(InvalidInput, match="not a data key id"):
        encrypt_bytes(b"abc", key_ring=keys, key_id=key_id, context=CTX)


def test_encrypt_with_a_missing_key_is_a_config_error(keys: KeyRing) -> None:
    with pytest.raises(ConfigError, match="data-k7.key is missing"):
        encrypt_bytes(b"abc", key_ring=keys, key_id="k7", context=CTX)


@pytest.mark.parametrize("segment_size", [0, 15, 64 * 1024 * 1024 + 1])
def test_encrypt_refuses_a_bad_segment_size(keys: KeyRing, segment_size: int) -> None:
    with pytest.raises(InvalidInput, match="segment_size"):
        encrypt_bytes(b"abc", key_ring=keys, key_id="k1", context=CTX, segment_size=segment_size)


def test_encrypt_refuses_an_empty_context(keys: KeyRing) -> None:
    with pytest.raises(InvalidInput, match="context"):
        encrypt_bytes(b"abc", key_ring=keys, key_id="k1", context="")


# ----------------------------------------------------------------------------------- rotation


def test_rotation_rewraps_only_the_header_and_the_old_key_can_be_retired(
    keys: KeyRing, blob: bytes
) -> None:
    assert keys.create_data_key() == "k2"
    assert keys.current_data_key_id() == "k2"
    rotated = rewrap(blob, "k2", key_ring=keys)
    old_header, new_header = read_header(blob), read_header(rotated)
    assert (old_header.key_id, new_header.key_id) == ("k1", "k2")
    assert rotated[new_header.size :] == blob[old_header.size :]  # segments untouched
    assert new_header.nonce_prefix == old_header.nonce_prefix
    keys.retire_data_key("k1")
    assert keys.data_key_ids() == ["k2"]
    assert decrypt_bytes(rotated, key_ring=keys, context=CTX) == _data(3 * SEG + 20)
    with pytest.raises(IntegrityError, match=r"data key 'k1'.*keys/retired/"):
        decrypt_bytes(blob, key_ring=keys, context=CTX)


def test_rotation_of_a_file_in_place(keys: KeyRing, tmp_path: Path) -> None:
    data = _data(5 * SEG)
    (tmp_path / "plain").write_bytes(data)
    encrypt_file(
        tmp_path / "plain",
        tmp_path / "blob.enc",
        key_ring=keys,
        key_id="k1",
        context=CTX,
        segment_size=SEG,
    )
    keys.create_data_key()
    header = rewrap_file(tmp_path / "blob.enc", "k2", key_ring=keys)
    assert header.key_id == "k2" == read_header(tmp_path / "blob.enc").key_id
    keys.retire_data_key("k1")
    assert decrypt_file(tmp_path / "blob.enc", tmp_path / "out", key_ring=keys, context=CTX)
    assert (tmp_path / "out").read_bytes() == data


def test_rotation_keeps_tamper_evidence(keys: KeyRing, blob: bytes) -> None:
    keys.create_data_key()
    rotated = bytearray(rewrap(blob, "k2", key_ring=keys))
    rotated[-5] ^= 1
    with pytest.raises(IntegrityError, match="segment 3"):
        decrypt_bytes(bytes(rotated), key_ring=keys, context=CTX)


def test_rewrap_of_a_tampered_header_is_refused(keys: KeyRing, blob: bytes) -> None:
    keys.create_data_key()
    header = read_header(blob)
    altered = bytearray(blob)
    altered[header.size - 1] ^= 1  # the last byte of the wrapped DEK
    with pytest.raises(IntegrityError, match="does not unwrap"):
        rewrap(bytes(altered), "k2", key_ring=keys)


def test_key_ring_rotation_helpers(keys: KeyRing) -> None:
    assert keys.data_key_ids() == ["k1"]
    with pytest.raises(InvalidInput, match="newest key"):
        keys.retire_data_key("k1")
    assert [keys.create_data_key() for _ in range(10)][-1] == "k11"
    assert keys.data_key_ids()[:3] == ["k1", "k2", "k3"]  # numeric order, not text order
    assert keys.current_data_key_id() == "k11"
    keys.retire_data_key("k10")
    assert keys.create_data_key() == "k12"  # never re-issues a retired id
    assert not keys.has_data_key("k10")
    with pytest.raises(ConfigError, match="no data key 'k10'"):
        keys.retire_data_key("k10")
    with pytest.raises(InvalidInput):
        keys.retire_data_key("../signing")


def test_current_data_key_id_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No data key"):
        KeyRing(tmp_path / "empty").current_data_key_id()


# ----------------------------------------------------------------------------- nonce uniqueness


def test_every_blob_gets_fresh_nonces_and_a_fresh_data_key(keys: KeyRing) -> None:
    blobs = [encrypt_bytes(b"same", key_ring=keys, key_id="k1", context=CTX) for _ in range(500)]
    headers = [read_header(b) for b in blobs]
    assert len({h.nonce_prefix for h in headers}) == 500
    assert len({h.wrap_nonce for h in headers}) == 500
    assert len({h.wrapped_dek for h in headers}) == 500
    assert len({bytes(b[h.size :]) for b, h in zip(blobs, headers, strict=True)}) == 500


def test_segments_of_one_blob_use_distinct_nonces(keys: KeyRing) -> None:
    # Equal plaintext segments under one key encrypt differently only if their nonces differ.
    blob = encrypt_bytes(bytes(SEG * 40), key_ring=keys, key_id="k1", context=CTX, segment_size=SEG)
    _, segments = _segments(blob)
    assert len(segments) == 40
    assert len(set(segments)) == 40
