"""Dataset snapshots: content digest, encryption at rest, manifest, tamper evidence, rotation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedside.domain.deid import DeidPolicy
from bedside.domain.quality import QualityConfig, assess_quality
from bedside.domain.spec import Split
from bedside.domain.split import count_splits, split_patients
from bedside.errors import IntegrityError, InvalidInput, NotFound
from bedside.security import KeyRing
from bedside.stores.crypto import decrypt_bytes, read_header
from bedside.stores.snapshots import (
    DATA_FILE,
    MANIFEST_FILE,
    SnapshotManifest,
    dataset_digest,
    find_snapshot,
    list_snapshots,
    read_snapshot,
    rewrap_snapshot,
    write_snapshot,
)

WHEN = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CANARY = "ZZCANARY-Jane-Roe-0042317"


def raw(n_patients: int = 80, seed: int = 11) -> pd.DataFrame:
    """A seeded, synthetic feature table with the column kinds a real one has."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        first = int(rng.integers(0, 300 * 24))
        for k in range(int(rng.integers(1, 4))):
            rows.append((p, first + k * int(rng.integers(24, 2000))))
    n = len(rows)
    hr = rng.normal(90, 15, n)
    hr[rng.random(n) < 0.05] = np.nan
    age = pd.array(rng.integers(18, 95, n), dtype="Int64")
    age[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "encounter_id": [f"enc-{i:05d}" for i in range(n)],
            "patient_id": [f"pt-{p:04d}" for p, _ in rows],
            "prediction_time": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta([h for _, h in rows], "h"),
            "heart_rate_max_6h": hr,
            "lactate_count_24h": rng.integers(0, 6, n),
            "age": age,
            "sex": pd.Categorical(rng.choice(["female", "male", "unknown"], n)),
            "note_flag": rng.choice(np.array(["a", "b", None], dtype=object), n),
            "sepsis": rng.random(n) < 0.1,
        }
    )


def prepared(n_patients: int = 80, seed: int = 11):  # type: ignore[no-untyped-def]
    return split_patients(raw(n_patients, seed), Split())


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.create()
    return ring


def _write(frame: pd.DataFrame, root: Path, keys: KeyRing, **kw):  # type: ignore[no-untyped-def]
    return write_snapshot(
        frame, root=root, key_ring=keys, created_at=WHEN, label_col="sepsis", **kw
    )


# ------------------------------------------------------------------------------ round trip


def test_snapshot_round_trips_the_dataset(tmp_path: Path, keys: KeyRing) -> None:
    frame, summary = prepared()
    manifest = _write(frame, tmp_path / "artifacts", keys, split=summary)
    folder = tmp_path / "artifacts" / "datasets" / manifest.digest
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, MANIFEST_FILE]
    back, loaded = read_snapshot(folder, keys)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))
    assert loaded == manifest
    assert dataset_digest(back) == manifest.digest


def test_same_data_same_digest_with_fresh_ciphertext(tmp_path: Path, keys: KeyRing) -> None:
    frame, summary = prepared()
    a = _write(frame, tmp_path / "one", keys, split=summary)
    b = _write(frame.copy(), tmp_path / "two", keys, split=summary, compression="snappy")
    assert a.digest == b.digest == dataset_digest(frame)
    assert len(a.digest) == 64
    blob_a = (tmp_path / "one" / "datasets" / a.digest / DATA_FILE).read_bytes()
    blob_b = (tmp_path / "two" / "datasets" / b.digest / DATA_FILE).read_bytes()
    assert blob_a != blob_b
    assert read_header(blob_a).nonce_prefix != read_header(blob_b).nonce_prefix


def test_writing_the_same_data_again_keeps_the_first_snapshot(
    tmp_path: Path, keys: KeyRing
) -> None:
    frame, summary = prepared()
    first = _write(frame, tmp_path, keys, split=summary)
    again = write_snapshot(
        frame,
        root=tmp_path,
        key_ring=keys,
        split=summary,
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert again == first and again.created_at == WHEN.isoformat()
    assert [m.digest for m in list_snapshots(tmp_path)] == [first.digest]


# ---------------------------------------------------------------------------------- digest


def test_digest_ignores_the_index_chunking_and_string_storage() -> None:
    frame, _ = prepared()
    digest = dataset_digest(frame)
    assert dataset_digest(frame.set_axis(np.arange(len(frame))[::-1] * 7)) == digest
    table = pa.Table.from_pandas(frame, preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 17), table.slice(17, 1), table.slice(18)])
    assert chunked.column(0).num_chunks == 3
    assert dataset_digest(chunked) == digest
    large = table.set_column(0, "encounter_id", table.column(0).cast(pa.large_string()))
    assert dataset_digest(large) == digest


def test_digest_changes_with_names_order_types_and_rows() -> None:
    frame, _ = prepared()
    digest = dataset_digest(frame)
    variants = {
        "renamed": frame.rename(columns={"sex": "gender"}),
        "column order": frame[[*frame.columns[1:], frame.columns[0]]],
        "row order": frame.iloc[::-1],
        "row dropped": frame.iloc[1:],
        "int to float": frame.assign(lactate_count_24h=frame.lactate_count_24h.astype(float)),
        "column added": frame.assign(extra=1),
        "category set": frame.assign(sex=frame.sex.cat.add_categories(["other"])),
        "time zone": frame.assign(
            prediction_time=frame.prediction_time.dt.tz_convert("America/Chicago")
        ),
    }
    digests = {name: dataset_digest(v) for name, v in variants.items()}
    assert digest not in digests.values(), [k for k, v in digests.items() if v == digest]
    assert len(set(digests.values())) == len(digests)


def _changed(frame: pd.DataFrame, row: int, column: str, to_missing: bool) -> pd.DataFrame:
    out = frame.copy()
    value = out.at[row, column]
    if to_missing and not pd.isna(value) and column not in ("lactate_count_24h", "sepsis"):
        out.at[row, column] = None if column != "heart_rate_max_6h" else np.nan
    elif column == "split":
        out.at[row, column] = "test" if value != "test" else "train"
    elif column in ("encounter_id", "patient_id", "note_flag"):
        out.at[row, column] = (value or "") + "x"
    elif column == "prediction_time":
        out.at[row, column] = value + pd.Timedelta(nanoseconds=1)
    elif column == "heart_rate_max_6h":
        out.at[row, column] = 1.0 if pd.isna(value) else np.nextafter(value, np.inf)
    elif column in ("lactate_count_24h", "age"):
        out.at[row, column] = 1 if pd.isna(value) else value + 1
    elif column == "sex":
        out.at[row, column] = "male" if value != "male" else "female"
    elif column == "sepsis":
        out.at[row, column] = not value
    else:  # pragma: no cover - every column above is handled
        raise AssertionError(column)
    return out


_CELL_FRAME = prepared(25)[0].reset_index(drop=True)
_CELL_DIGEST = dataset_digest(_CELL_FRAME)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), to_missing=st.booleans())
def test_any_single_cell_change_changes_the_digest(data: st.DataObject, to_missing: bool) -> None:
    frame = _CELL_FRAME
    row = data.draw(st.integers(0, len(frame) - 1))
    column = data.draw(st.sampled_from(list(frame.columns)))
    changed = _changed(frame, row, column, to_missing)
    assert not changed.equals(frame)
    assert dataset_digest(changed) != _CELL_DIGEST


def test_nested_values_are_refused_clearly() -> None:
    with pytest.raises(InvalidInput, match="'codes' has type list<item: int64>"):
        dataset_digest(pd.DataFrame({"codes": [[1, 2], [3]]}))
    with pytest.raises(InvalidInput, match="not text"):
        dataset_digest(pd.DataFrame({0: [1]}))


# ----------------------------------------------------------------------------- encryption


def test_no_plaintext_patient_data_in_the_encrypted_file(tmp_path: Path, keys: KeyRing) -> None:
    frame, summary = prepared()
    frame = frame.copy()
    frame.loc[frame.patient_id == frame.patient_id.iloc[0], "patient_id"] = CANARY
    frame["note_flag"] = frame["note_flag"].where(frame.index != frame.index[3], CANARY + "-note")
    manifest = _write(frame, tmp_path, keys, split=summary, compression="none")
    folder = tmp_path / "datasets" / manifest.digest
    blob = (folder / DATA_FILE).read_bytes()
    # The canary is in the (uncompressed) Parquet, so its absence below means something.
    assert CANARY.encode() in decrypt_bytes(blob, key_ring=keys, context=manifest.context)
    assert CANARY.encode() not in blob
    assert b"pt-0001" not in blob and b"enc-00001" not in blob
    assert b"PAR1" not in blob[:8]
    manifest_text = (folder / MANIFEST_FILE).read_bytes()
    assert CANARY.encode() not in manifest_text and b"pt-0001" not in manifest_text
    # The file is readable by its owner only.
    assert (folder / DATA_FILE).stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------------------- manifest


def test_manifest_records_source_counts_deid_quality_and_lineage(
    tmp_path: Path, keys: KeyRing
) -> None:
    frame, summary = prepared()
    policy = DeidPolicy(date_shift_days=30)
    quality = assess_quality(
        frame,
        QualityConfig(label_col="sepsis", min_completeness=0.9, completeness_exempt=("note_flag",)),
    )
    assert not quality.blocking
    keys.create_data_key()
    manifest = _write(
        frame,
        tmp_path,
        keys,
        split=summary,
        source={"kind": "ndjson_folder", "path": "data/fhir"},
        extraction={"pipeline_sha256": "ab" * 32, "prediction_time": "admission + 4h"},
        deidentification=policy,
        quality=quality,
        extra={"phi_scan": {"blocking": False, "findings": 0}},
    )
    on_disk = json.loads((tmp_path / "datasets" / manifest.digest / MANIFEST_FILE).read_text())
    assert on_disk == manifest.to_dict()
    assert on_disk["format"] == "bedside-dataset/1"
    assert on_disk["key_id"] == "k2"  # the newest key by default
    assert on_disk["created_at"] == "2026-03-01T09:00:00+00:00"
    assert on_disk["bedside_version"]
    assert on_disk["rows"] == len(frame)
    assert on_disk["counts"] == count_splits(frame, label_col="sepsis", time_col="prediction_time")
    for name in ("train", "validation", "test"):
        assert on_disk["counts"][name]["patients"] == summary.patients[name]
        assert on_disk["counts"][name]["events"] == int(frame.sepsis[frame.split == name].sum())
    assert on_disk["split"] == summary.to_dict()
    assert on_disk["time_range"] == {
        "column": "prediction_time",
        "first_date": on_disk["counts"]["all"]["first_date"],
        "last_date": on_disk["counts"]["all"]["last_date"],
    }
    assert on_disk["deidentification"] == {
        "policy": policy.to_dict(),
        "policy_hash": policy.policy_hash,
    }
    assert on_disk["quality"] == quality.summary()
    assert on_disk["source"] == {"kind": "ndjson_folder", "path": "data/fhir"}
    assert on_disk["extraction"]["prediction_time"] == "admission + 4h"
    assert on_disk["extra"] == {"phi_scan": {"blocking": False, "findings": 0}}
    assert {"name": "sex", "type": "dictionary<string, ordered=0>"} in on_disk["columns"]
    assert on_disk["data_file"]["name"] == DATA_FILE


# -------------------------------------------------------------------------------- tampering


@pytest.fixture
def snapshot(tmp_path: Path, keys: KeyRing) -> tuple[Path, SnapshotManifest]:
    frame, summary = prepared()
    manifest = _write(frame, tmp_path / "artifacts", keys, split=summary)
    return tmp_path / "artifacts" / "datasets" / manifest.digest, manifest


def _edit_manifest(folder: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((folder / MANIFEST_FILE).read_text())
    change(data)
    (folder / MANIFEST_FILE).write_text(json.dumps(data))


@pytest.mark.parametrize("position", [0, 40, 200, -300, -1])
def test_a_flipped_bit_in_the_data_is_refused(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing, position: int
) -> None:
    folder, _ = snapshot
    blob = bytearray((folder / DATA_FILE).read_bytes())
    blob[position] ^= 0x10
    (folder / DATA_FILE).write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="does not verify"):
        read_snapshot(folder, keys)


def test_a_truncated_or_missing_data_file_is_refused(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing
) -> None:
    folder, _ = snapshot
    blob = (folder / DATA_FILE).read_bytes()
    (folder / DATA_FILE).write_bytes(blob[:-100])
    with pytest.raises(IntegrityError, match="does not verify"):
        read_snapshot(folder, keys)
    (folder / DATA_FILE).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        read_snapshot(folder, keys)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: m["counts"]["test"].update(events=0), id="events"),
        pytest.param(lambda m: m.update(rows=m["rows"] - 1), id="rows"),
        pytest.param(
            lambda m: m.update(deidentification={"policy_hash": "0" * 64}), id="deid-hash"
        ),
        pytest.param(
            lambda m: (
                m["quality"].update(passed=True)
                if m["quality"]
                else m.update(quality={"passed": True})
            ),
            id="quality",
        ),
        pytest.param(lambda m: m.update(created_at="2020-01-01T00:00:00+00:00"), id="created"),
    ],
)
def test_an_edited_manifest_is_refused(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing, change: object
) -> None:
    folder, _ = snapshot
    _edit_manifest(folder, change)
    with pytest.raises(IntegrityError, match=r"manifest.json was altered"):
        read_snapshot(folder, keys)


def test_a_manifest_naming_another_digest_is_refused(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing
) -> None:
    folder, _ = snapshot
    _edit_manifest(folder, lambda m: m.update(digest="f" * 64))
    with pytest.raises(IntegrityError, match="folder is named by its digest"):
        read_snapshot(folder, keys)


def test_data_swapped_between_snapshots_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    root = tmp_path / "artifacts"
    a = _write(prepared(seed=1)[0], root, keys)
    b = _write(prepared(seed=2)[0], root, keys)
    folder_a, folder_b = root / "datasets" / a.digest, root / "datasets" / b.digest
    (folder_a / DATA_FILE).write_bytes((folder_b / DATA_FILE).read_bytes())
    with pytest.raises(IntegrityError, match="does not verify"):
        read_snapshot(folder_a, keys)
    # The same pair moved together into a wrongly named folder is refused too.
    (folder_b).rename(root / "datasets" / ("0" * 64))
    with pytest.raises(IntegrityError, match="named by its digest"):
        read_snapshot(root / "datasets" / ("0" * 64), keys)


def test_unreadable_or_missing_manifest(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing, tmp_path: Path
) -> None:
    folder, _ = snapshot
    (folder / MANIFEST_FILE).write_text('{"format": "bedside-dataset/1", "dig')
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_snapshot(folder, keys)
    (folder / MANIFEST_FILE).write_text('{"format": "bedside-dataset/1"}')
    with pytest.raises(IntegrityError, match="key 'digest' is missing"):
        read_snapshot(folder, keys)
    with pytest.raises(NotFound, match="manifest.json is missing"):
        read_snapshot(tmp_path / "nowhere", keys)


def test_tamper_messages_hold_no_patient_data(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing
) -> None:
    folder, _ = snapshot
    blob = bytearray((folder / DATA_FILE).read_bytes())
    blob[-50] ^= 1
    (folder / DATA_FILE).write_bytes(bytes(blob))
    with pytest.raises(IntegrityError) as caught:
        read_snapshot(folder, keys)
    text = str(caught.value) + json.dumps(caught.value.details)
    assert "pt-0" not in text and "enc-0" not in text


# --------------------------------------------------------------------------------- refusals


def test_a_dataset_without_a_split_column_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    with pytest.raises(InvalidInput, match="no split column 'split'"):
        _write(raw(), tmp_path, keys)


def test_a_leaky_split_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    frame, summary = prepared()
    frame = frame.copy()
    patient = frame.patient_id.value_counts().index[0]  # a patient with several rows
    frame.loc[frame.index[frame.patient_id == patient][-1], "split"] = "other-split-x"
    with pytest.raises(IntegrityError, match="not one of train, validation, test"):
        _write(frame, tmp_path, keys, split=summary)
    own = frame.loc[frame.patient_id == patient, "split"].iloc[0]
    frame.loc[frame.index[frame.patient_id == patient][-1], "split"] = (
        "test" if own != "test" else "train"
    )
    with pytest.raises(IntegrityError, match="more than one split"):
        _write(frame, tmp_path, keys, split=summary)
    assert not (tmp_path / "datasets").exists()


def test_a_blocking_quality_report_is_refused(tmp_path: Path, keys: KeyRing) -> None:
    frame, summary = prepared()
    quality = assess_quality(frame, QualityConfig(min_completeness=1.0))
    assert quality.blocking
    with pytest.raises(InvalidInput, match="blocker"):
        _write(frame, tmp_path, keys, split=summary, quality=quality)


def test_a_missing_key_writes_nothing(tmp_path: Path, keys: KeyRing) -> None:
    from bedside.errors import ConfigError

    frame, summary = prepared()
    with pytest.raises(ConfigError):
        _write(frame, tmp_path, keys, split=summary, key_id="k5")
    assert not (tmp_path / "datasets").exists()


# ---------------------------------------------------------------------------------- rotation


def test_rotation_rewraps_a_snapshot_and_retires_the_old_key(
    snapshot: tuple[Path, SnapshotManifest], keys: KeyRing
) -> None:
    folder, manifest = snapshot
    before = (folder / DATA_FILE).read_bytes()
    keys.create_data_key()
    updated = rewrap_snapshot(folder, "k2", key_ring=keys)
    assert (updated.key_id, updated.digest) == ("k2", manifest.digest)
    after = (folder / DATA_FILE).read_bytes()
    assert after[read_header(after).size :] == before[read_header(before).size :]
    keys.retire_data_key("k1")
    frame, loaded = read_snapshot(folder, keys)
    assert loaded.key_id == "k2" and len(frame) == manifest.rows
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------------- finding


def test_list_and_find_snapshots(tmp_path: Path, keys: KeyRing) -> None:
    a = _write(prepared(seed=1)[0], tmp_path, keys)
    b = write_snapshot(
        prepared(seed=2)[0],
        root=tmp_path,
        key_ring=keys,
        created_at=datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert [m.digest for m in list_snapshots(tmp_path)] == [a.digest, b.digest]
    assert find_snapshot(tmp_path, a.digest[:10].upper()) == tmp_path / "datasets" / a.digest
    with pytest.raises(NotFound, match="No dataset snapshot"):
        find_snapshot(tmp_path, "0123456789")
    with pytest.raises(InvalidInput, match="at least 8 hex"):
        find_snapshot(tmp_path, "abc")
    assert list_snapshots(tmp_path / "empty") == []
