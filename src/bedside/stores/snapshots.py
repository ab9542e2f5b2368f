"""Dataset snapshots: a prepared, split dataset as encrypted Parquet, named by its content digest.

Layout under the project's artifacts folder::

    artifacts/datasets/<digest>/
        data.parquet.enc    the table as Parquet, encrypted (bedside.stores.crypto)
        manifest.json       what it is: source, extraction, counts per split, de-id policy and
                            hash, quality summary, digest, key id, bedside version, created time

**The digest** is SHA-256 over a canonical form of the table's content, not over a file: the
column names in order, each column's logical Arrow type (``string`` and ``large_string`` are one
type), which cells are missing, and the values (little-endian numbers, length-prefixed text, a
categorical's categories and codes). Nothing else — no Parquet encoder version, compression,
timestamp, nonce or pandas index — so the same data always has the same digest and any change to
a name, a type, a value or a missing cell gives another (see ``docs/datasets.md``).

**Binding.** The encryption context of ``data.parquet.enc`` is the digest plus the SHA-256 of
the manifest's content (everything but ``key_id``, which rotation changes): moving the data
into another snapshot's folder, or editing a count or the de-id hash in ``manifest.json``, makes
decryption fail. On load the digest is recomputed from the decrypted table and compared.
Every failure is a :class:`bedside.errors.IntegrityError` naming the file and the check.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import bedside
from bedside.domain.canonical import canonical_json
from bedside.domain.quality import QualityReport
from bedside.domain.split import SplitSummary, check_no_leakage, count_splits
from bedside.errors import IntegrityError, InvalidInput, NotFound
from bedside.security import KeyRing
from bedside.stores.crypto import decrypt_bytes, encrypt_bytes, read_header, rewrap_file

__all__ = [
    "DATASETS_FOLDER",
    "DATA_FILE",
    "MANIFEST_FILE",
    "SnapshotManifest",
    "dataset_digest",
    "find_snapshot",
    "list_snapshots",
    "read_snapshot",
    "rewrap_snapshot",
    "write_snapshot",
]

logger = logging.getLogger(__name__)

DATASETS_FOLDER: Final = "datasets"
DATA_FILE: Final = "data.parquet.enc"
MANIFEST_FILE: Final = "manifest.json"
MANIFEST_FORMAT: Final = "bedside-dataset/1"
DIGEST_METHOD: Final = "sha256/bedside-table-v1"
_DIGEST_LABEL: Final = b"bedside-dataset-digest/v1\n"
_HEX64: Final = frozenset("0123456789abcdef")

Compression = Literal["zstd", "snappy", "none"]


# ===================================================================================== digest


def dataset_digest(data: pd.DataFrame | pa.Table) -> str:
    """Return the content digest (64 hex characters) of a table, as the module docstring defines.

    A DataFrame is converted as the snapshot stores it (``pyarrow.Table.from_pandas``, index
    dropped), so ``dataset_digest(frame)`` is the digest ``write_snapshot(frame)`` will report.

    Raises:
        InvalidInput: a column holds nested values (lists, structs, maps) or decimals.
    """
    table = _to_table(data) if isinstance(data, pd.DataFrame) else data
    return _digest_with_columns(table)[0]


def _digest_with_columns(table: pa.Table) -> tuple[str, dict[str, str]]:
    """Return the table digest and a digest per column (for naming what changed)."""
    total = hashlib.sha256(_DIGEST_LABEL)
    total.update(struct.pack("<QQ", table.num_rows, table.num_columns))
    per_column: dict[str, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        h = hashlib.sha256()
        _update_bytes(h, name.encode("utf-8"))
        _update_bytes(h, _type_name(column.type).encode("utf-8"))
        _hash_chunked(h, column, name)
        column_digest = h.digest()
        per_column[name] = column_digest.hex()
        total.update(column_digest)
    return total.hexdigest(), per_column


def _update_bytes(h: Any, data: bytes | memoryview) -> None:
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def _type_name(type_: pa.DataType) -> str:
    """Return the logical type: storage details that do not change values are left out."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return "binary"
    if pa.types.is_dictionary(type_):
        return f"dictionary<{_type_name(type_.value_type)}, ordered={int(type_.ordered)}>"
    return str(type_)


def _unsupported(name: str, type_: pa.DataType) -> InvalidInput:
    return InvalidInput(
        f"Column {name!r} has type {type_}; a dataset snapshot holds flat columns (numbers, "
        "booleans, text, dates and times, categories). Flatten or drop it before the snapshot."
    )


def _hash_chunked(h: Any, column: pa.ChunkedArray, name: str) -> None:
    type_ = column.type
    if pa.types.is_dictionary(type_):
        column = column.unify_dictionaries()
        dictionary = (
            column.chunk(0).dictionary if column.num_chunks else pa.array([], type_.value_type)
        )
        _hash_array(h, dictionary, name)
        indices = pa.chunked_array(
            [chunk.indices for chunk in column.chunks], type=type_.index_type
        ).cast(pa.int64())
        _hash_array(h, indices.combine_chunks(), name)
        return
    array = column.combine_chunks() if column.num_chunks else pa.array([], type_)
    _hash_array(h, array, name)


def _hash_array(h: Any, array: pa.Array, name: str) -> None:
    type_ = array.type
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        h.update(b"\x01")
        h.update(np.packbits(valid, bitorder="little").tobytes())
    else:
        h.update(b"\x00")
    if pa.types.is_null(type_):
        return
    if pa.types.is_boolean(type_):
        values = pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint8)
        h.update(values.tobytes())
        return
    if (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
    ):
        as_binary = pc.fill_null(array.cast(pa.large_binary()), b"")
        _, offsets_buffer, data_buffer = as_binary.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype="<i8")[
            as_binary.offset : as_binary.offset + len(as_binary) + 1
        ]
        h.update(np.diff(offsets).astype("<i8").tobytes())
        if data_buffer is not None and len(offsets):
            h.update(memoryview(data_buffer)[int(offsets[0]) : int(offsets[-1])])
        return
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_temporal(type_):
        storage = _storage_type(type_)
        values = pc.fill_null(array.cast(storage) if storage != type_ else array, 0)
        numbers = values.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(type_):
            numbers = np.where(np.isnan(numbers), np.nan, numbers)  # one NaN bit pattern
        h.update(np.ascontiguousarray(numbers, dtype=numbers.dtype.newbyteorder("<")).tobytes())
        return
    raise _unsupported(name, type_)


def _storage_type(type_: pa.DataType) -> pa.DataType:
    """Return the integer type holding a temporal type's values (numbers stay themselves)."""
    if not pa.types.is_temporal(type_):
        return type_
    if pa.types.is_date32(type_) or (pa.types.is_time(type_) and type_.bit_width == 32):
        return pa.int32()
    return pa.int64()


def _to_table(frame: pd.DataFrame) -> pa.Table:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(
            f"A dataset snapshot needs a pandas DataFrame, not {type(frame).__name__}."
        )
    if frame.columns.duplicated().any():
        raise InvalidInput(
            "The dataset has duplicate column names; give every column its own name."
        )
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise InvalidInput(
            f"The dataset has {len(bad)} column name(s) that are not text; name every column."
        )
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"The dataset cannot be stored as Parquet: {_first_line(exc)}. Give each column one "
            "kind of value (numbers, text, booleans, datetimes, categories)."
        ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# =================================================================================== manifest


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """What a snapshot holds and where it came from (``manifest.json``; no patient-level data)."""

    digest: str
    key_id: str
    created_at: str
    bedside_version: str
    rows: int
    columns: tuple[Mapping[str, str], ...]
    counts: Mapping[str, Any]
    time_range: Mapping[str, Any]
    split: Mapping[str, Any] | None
    source: Mapping[str, Any]
    extraction: Mapping[str, Any]
    deidentification: Mapping[str, Any] | None
    quality: Mapping[str, Any] | None
    data_file: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT
    digest_method: str = DIGEST_METHOD

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as plain JSON values."""
        return {
            "format": self.format,
            "digest": self.digest,
            "digest_method": self.digest_method,
            "key_id": self.key_id,
            "created_at": self.created_at,
            "bedside_version": self.bedside_version,
            "rows": self.rows,
            "columns": [dict(c) for c in self.columns],
            "counts": _plain(self.counts),
            "time_range": _plain(self.time_range),
            "split": _plain(self.split),
            "source": _plain(self.source),
            "extraction": _plain(self.extraction),
            "deidentification": _plain(self.deidentification),
            "quality": _plain(self.quality),
            "data_file": _plain(self.data_file),
            "extra": _plain(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = MANIFEST_FILE) -> SnapshotManifest:
        """Build a manifest from its JSON form.

        Raises:
            IntegrityError: a key is missing or the format is not one this bedside reads.
        """
        if data.get("format") != MANIFEST_FORMAT:
            raise IntegrityError(
                f"{where}: format {data.get('format')!r} is not {MANIFEST_FORMAT!r}; it is not a "
                "bedside dataset manifest, or it was made by a newer bedside.",
                details={"check": "manifest_format"},
            )
        try:
            return cls(
                digest=data["digest"],
                key_id=data["key_id"],
                created_at=data["created_at"],
                bedside_version=data["bedside_version"],
                rows=data["rows"],
                columns=tuple(data["columns"]),
                counts=data["counts"],
                time_range=data["time_range"],
                split=data["split"],
                source=data["source"],
                extraction=data["extraction"],
                deidentification=data["deidentification"],
                quality=data["quality"],
                data_file=data["data_file"],
                extra=data.get("extra", {}),
                format=data["format"],
                digest_method=data["digest_method"],
            )
        except KeyError as exc:
            raise IntegrityError(
                f"{where}: key {exc.args[0]!r} is missing; the manifest was altered or truncated.",
                details={"check": "manifest_keys"},
            ) from None

    def content_hash(self) -> str:
        """Return the SHA-256 of the manifest's content, ``key_id`` excluded (rotation)."""
        bound = self.to_dict()
        del bound["key_id"]
        return hashlib.sha256(canonical_json(bound).encode("utf-8")).hexdigest()

    @property
    def context(self) -> str:
        """Return the encryption context binding the data file to this manifest."""
        return f"bedside/dataset/{self.digest}/manifest-sha256={self.content_hash()}"


def _plain(value: Any) -> Any:
    """Return ``value`` as JSON values (mappings → dicts, tuples → lists, numpy → Python)."""
    if isinstance(value, float) and not np.isfinite(value):
        raise InvalidInput("A manifest value is NaN or infinite; JSON records finite numbers only.")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    raise InvalidInput(
        f"A manifest value of type {type(value).__name__} is not JSON; pass text, numbers, "
        "booleans, lists and mappings."
    )


# ====================================================================================== write


def write_snapshot(
    frame: pd.DataFrame,
    *,
    root: Path,
    key_ring: KeyRing,
    created_at: datetime,
    key_id: str | None = None,
    source: Mapping[str, Any] | None = None,
    extraction: Mapping[str, Any] | None = None,
    split: SplitSummary | None = None,
    patient_col: str = "patient_id",
    time_col: str | None = "prediction_time",
    split_col: str = "split",
    label_col: str | None = None,
    deidentification: Any = None,
    quality: QualityReport | Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    compression: Compression = "zstd",
) -> SnapshotManifest:
    """Write ``frame`` as an encrypted, content-addressed snapshot; return its manifest.

    The same data written again returns the manifest already there (first write wins: the
    folder is named by the content, so the data is the same). The folder appears complete or not
    at all: it is written under a temporary name and renamed.

    Args:
        frame: the prepared, de-identified dataset with its split column.
        root: the project's artifacts folder; snapshots go to ``root/datasets/<digest>/``.
        key_ring: the project's keys.
        created_at: when the snapshot is made (time is an argument).
        key_id: the data key to use; default the newest (``key_ring.current_data_key_id()``).
        source: where the data came from (e.g. the pipeline file's source section).
        extraction: extraction parameters (cohort, label, features, pipeline-file hash …).
        split: the split's summary; its rule is re-checked here (no patient in two splits, and
            for a temporal split no row after the next split's start).
        patient_col, time_col, split_col, label_col: column roles, for checks and counts.
        deidentification: a :class:`bedside.domain.deid.DeidPolicy` (its ``to_dict()`` and
            ``policy_hash`` are recorded) or a mapping recorded as given.
        quality: the data quality report (its summary is recorded) or a summary mapping. A
            report that blocks is refused: a blocked dataset is never snapshotted.
        extra: further JSON facts to record (e.g. the PHI scan summary).
        compression: Parquet compression (``none`` only for tests and inspection).

    Raises:
        InvalidInput: a required column is missing, a value cannot be stored, or quality blocks.
        IntegrityError: the split leaks, or the Parquet round trip would not give back the data.
        ConfigError: the data key is missing.
    """
    if split_col not in frame.columns:
        raise InvalidInput(
            f"The dataset has no split column {split_col!r}; split it (train/validation/test) "
            "before writing the snapshot."
        )
    if isinstance(quality, QualityReport) and quality.blocking:
        raise InvalidInput(
            f"The data quality check failed ({len(quality.failures)} failure(s)) and is a blocker; "
            "a blocked dataset is not snapshotted. See the data quality report."
        )
    if split is not None:
        patient_col, split_col = split.patient_col, split.split_col
        time_col = split.time_col
        check_no_leakage(
            frame,
            method=split.method,
            patient_col=patient_col,
            time_col=time_col,
            split_col=split_col,
            late_rows=split.late_rows,
        )
    else:
        check_no_leakage(frame, method="random", patient_col=patient_col, split_col=split_col)
    key_id = key_id or key_ring.current_data_key_id()

    table = _to_table(frame)
    digest, per_column = _digest_with_columns(table)
    datasets = Path(root) / DATASETS_FOLDER
    folder = datasets / digest
    if (folder / MANIFEST_FILE).is_file():
        existing = _load_manifest(folder)
        if existing.digest == digest:
            logger.info("dataset snapshot %s exists already; not written again", digest[:12])
            return existing

    parquet = _parquet_bytes(table, compression)
    _check_round_trip(parquet, digest, per_column)
    counts = count_splits(
        frame,
        split_col=split_col,
        patient_col=patient_col,
        label_col=label_col,
        time_col=time_col if time_col in frame.columns else None,
    )
    everything = counts["all"]
    manifest = SnapshotManifest(
        digest=digest,
        key_id=key_id,
        created_at=created_at.isoformat(),
        bedside_version=bedside.__version__,
        rows=table.num_rows,
        columns=tuple({"name": f.name, "type": _type_name(f.type)} for f in table.schema),
        counts=counts,
        time_range={
            "column": time_col if time_col in frame.columns else None,
            "first_date": everything.get("first_date"),
            "last_date": everything.get("last_date"),
        },
        split=split.to_dict() if split is not None else None,
        source=dict(source or {}),
        extraction=dict(extraction or {}),
        deidentification=_deid_record(deidentification),
        quality=quality.summary() if isinstance(quality, QualityReport) else quality,
        data_file={
            "name": DATA_FILE,
            "format": "parquet",
            "compression": compression,
            "parquet_bytes": len(parquet),
            "encryption": "AES-256-GCM envelope (bedside.stores.crypto, format 1)",
        },
        extra=dict(extra or {}),
    )
    manifest = SnapshotManifest.from_dict(manifest.to_dict())  # exactly what JSON will give back
    blob = encrypt_bytes(parquet, key_ring=key_ring, key_id=key_id, context=manifest.context)
    del parquet
    if not _publish(datasets, folder, blob, manifest):
        return _load_manifest(folder)
    logger.info(
        "wrote dataset snapshot %s: %d rows, %d columns, key %s",
        digest[:12],
        table.num_rows,
        table.num_columns,
        key_id,
    )
    return manifest


def _deid_record(deidentification: Any) -> dict[str, Any] | None:
    if deidentification is None:
        return None
    if isinstance(deidentification, Mapping):
        return dict(deidentification)
    to_dict = getattr(deidentification, "to_dict", None)
    policy_hash = getattr(deidentification, "policy_hash", None)
    if callable(to_dict) and isinstance(policy_hash, str):
        return {"policy": to_dict(), "policy_hash": policy_hash}
    raise InvalidInput(
        "deidentification must be a DeidPolicy (with to_dict() and policy_hash) or a mapping."
    )


def _parquet_bytes(table: pa.Table, compression: Compression) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression=None if compression == "none" else compression,
        use_dictionary=True,  # categoricals keep their categories only through dictionaries
        write_statistics=True,
        store_schema=True,
    )
    return sink.getvalue()


def _read_parquet(data: bytes | bytearray) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def _check_round_trip(parquet: bytes, digest: str, per_column: Mapping[str, str]) -> None:
    """Refuse to store data that would not read back as the same content."""
    back, back_columns = _digest_with_columns(_read_parquet(parquet))
    if back != digest:
        changed = [name for name, value in per_column.items() if back_columns.get(name) != value]
        raise IntegrityError(
            "Parquet would not give back the same data for column(s) "
            f"{', '.join(repr(c) for c in changed) or '(schema)'}; convert them to plain "
            "numbers, text or datetimes before the snapshot.",
            details={"check": "round_trip", "columns": changed},
        )


def _publish(
    datasets: Path, folder: Path, blob: bytes | bytearray, manifest: SnapshotManifest
) -> bool:
    """Move the finished snapshot into place; return False when another writer got there first."""
    datasets.mkdir(parents=True, exist_ok=True)
    staging = datasets / f".tmp-{manifest.digest[:12]}-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        _write_synced(staging / DATA_FILE, blob)
        _write_synced(staging / MANIFEST_FILE, _manifest_json(manifest).encode("utf-8"))
        try:
            os.rename(staging, folder)
        except OSError:
            if (folder / MANIFEST_FILE).is_file():  # another writer finished the same data first
                logger.info("dataset snapshot %s was written concurrently", manifest.digest[:12])
                return False
            raise
        _fsync_dir(datasets)
        return True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _manifest_json(manifest: SnapshotManifest) -> str:
    return json.dumps(manifest.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_synced(path: Path, data: bytes | bytearray) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ======================================================================================= read


def _load_manifest(folder: Path) -> SnapshotManifest:
    path = folder / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            f"No dataset snapshot in {folder}: {MANIFEST_FILE} is missing. List snapshots with "
            "list_snapshots(artifacts)."
        ) from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{path} is not valid JSON (line {getattr(exc, 'lineno', '?')}); it was altered or "
            "truncated.",
            details={"check": "manifest_json"},
        ) from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{path} is not a JSON object.", details={"check": "manifest_json"})
    return SnapshotManifest.from_dict(data, where=str(path))


def read_snapshot(folder: Path, key_ring: KeyRing) -> tuple[pd.DataFrame, SnapshotManifest]:
    """Decrypt, verify and load a snapshot; return the DataFrame and its manifest.

    Verified: the folder is named by the manifest's digest; the data file authenticates under
    the manifest's content (so neither file was altered, nor swapped for another snapshot's);
    the decrypted table's digest and row count are the manifest's.

    Raises:
        NotFound: no snapshot in ``folder``.
        IntegrityError: any verification fails (the message names the file and the check).
    """
    folder = Path(folder)
    manifest = _load_manifest(folder)
    if folder.name != manifest.digest:
        raise IntegrityError(
            f"{folder / MANIFEST_FILE} describes dataset {manifest.digest[:12]}… but sits in "
            f"folder {folder.name!r}; a snapshot folder is named by its digest. The manifest was "
            "moved or altered.",
            details={"check": "folder_name"},
        )
    data_path = folder / DATA_FILE
    try:
        blob = data_path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{data_path} is missing: the snapshot is incomplete.", details={"check": "data_file"}
        ) from None
    try:
        plain = decrypt_bytes(blob, key_ring=key_ring, context=manifest.context)
    except IntegrityError as exc:
        raise IntegrityError(
            f"Dataset snapshot {manifest.digest[:12]}… does not verify: {exc.message} Either "
            f"{DATA_FILE} or {MANIFEST_FILE} was altered, or the data belongs to another snapshot.",
            details={**exc.details, "digest": manifest.digest},
        ) from None
    del blob
    table = _read_parquet(plain)
    del plain
    digest = dataset_digest(table)
    if digest != manifest.digest or table.num_rows != manifest.rows:
        raise IntegrityError(
            f"Dataset snapshot {manifest.digest[:12]}…: the decrypted table has digest "
            f"{digest[:12]}… and {table.num_rows} rows; the manifest says "
            f"{manifest.digest[:12]}… and {manifest.rows}.",
            details={"check": "digest", "digest": manifest.digest},
        )
    header_key = read_header(data_path).key_id
    if header_key != manifest.key_id:
        logger.warning(
            "dataset snapshot %s: manifest says key %s, data uses key %s (an interrupted "
            "re-wrap); reading with %s",
            manifest.digest[:12],
            manifest.key_id,
            header_key,
            header_key,
        )
    logger.info("read dataset snapshot %s: %d rows", manifest.digest[:12], table.num_rows)
    return table.to_pandas(), manifest


def list_snapshots(root: Path) -> list[SnapshotManifest]:
    """Return the manifests of all snapshots under ``root/datasets``, oldest first.

    A folder whose manifest is unreadable is skipped with a warning (``read_snapshot`` on it
    says why).
    """
    datasets = Path(root) / DATASETS_FOLDER
    if not datasets.is_dir():
        return []
    found = []
    for folder in sorted(datasets.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            found.append(_load_manifest(folder))
        except (NotFound, IntegrityError) as exc:
            logger.warning("skipping %s: %s", folder.name[:12], exc.code)
    return sorted(found, key=lambda m: (m.created_at, m.digest))


def find_snapshot(root: Path, digest: str) -> Path:
    """Return the folder of the snapshot whose digest is ``digest`` or starts with it.

    Raises:
        InvalidInput: ``digest`` is not hex, or shorter than 8 characters.
        NotFound: no snapshot, or more than one, matches.
    """
    digest = digest.strip().lower()
    if len(digest) < 8 or not set(digest) <= _HEX64:
        raise InvalidInput(
            f"{digest!r} is not a dataset digest; expected at least 8 hex characters."
        )
    datasets = Path(root) / DATASETS_FOLDER
    matches = (
        [p for p in datasets.iterdir() if p.is_dir() and p.name.startswith(digest)]
        if datasets.is_dir()
        else []
    )
    if len(matches) != 1:
        raise NotFound(
            f"{len(matches) or 'No'} dataset snapshot(s) match {digest!r} in {datasets}"
            f"{'; give more characters' if matches else ''}."
        )
    return matches[0]


def rewrap_snapshot(folder: Path, new_key_id: str, *, key_ring: KeyRing) -> SnapshotManifest:
    """Re-wrap a snapshot's data key under ``new_key_id`` (key rotation); return the manifest.

    Only the data file's header and the manifest's ``key_id`` change; the digest, the content
    hash and the encrypted data stay the same.
    """
    folder = Path(folder)
    manifest = _load_manifest(folder)
    rewrap_file(folder / DATA_FILE, new_key_id, key_ring=key_ring)
    updated = replace(manifest, key_id=new_key_id)
    tmp = folder / f".{MANIFEST_FILE}.{secrets.token_hex(4)}.tmp"
    _write_synced(tmp, _manifest_json(updated).encode("utf-8"))
    os.replace(tmp, folder / MANIFEST_FILE)
    logger.info("re-wrapped dataset snapshot %s to key %s", manifest.digest[:12], new_key_id)
    return updated
