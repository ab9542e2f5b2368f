"""Find the NDJSON files of a source: a bulk-export folder (with or without a manifest) or a file.

Rules:

- A file's resource type comes from the manifest's ``output[].type`` or else from its name:
  ``<Type>.ndjson``, ``<Type>.<anything>.ndjson`` and the same with ``.gz``. A name whose first
  dot-separated part is not an R4 resource type declares no type (each line's ``resourceType``
  is used).
- Without a manifest every ``*.ndjson`` / ``*.ndjson.gz`` file at the top of the folder is read,
  sorted by name. With one, exactly the ``output`` files are read; ``error`` (OperationOutcome)
  and ``deleted`` files, and files the manifest does not list, are skipped and reported.
- A manifest ``url`` is matched to a local file by its last path segment (also with ``.gz``,
  ``.ndjson`` or ``.ndjson.gz`` appended), so a downloaded export keeps working offline.
- Gzip is recognised by its magic bytes, whatever the file is called.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast
from urllib.parse import urlsplit

import orjson

from bedside.errors import InvalidInput, NotFound
from bedside.ingest.ndjson.rules import R4_RESOURCE_TYPES

MANIFEST_NAME = "manifest.json"
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to read, with the type it declares and the manifest's line count."""

    path: Path
    declared_type: str | None
    manifest_count: int | None = None

    @property
    def name(self) -> str:
        """The file's name (what the report and the quarantine file are named after)."""
        return self.path.name


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """The files a run reads, the files it skips (``{"name", "reason"}``) and warnings."""

    files: tuple[SourceFile, ...]
    skipped: tuple[dict[str, str], ...] = ()
    warnings: tuple[str, ...] = ()


def is_ndjson_name(name: str) -> bool:
    """Return whether ``name`` ends in ``.ndjson`` or ``.ndjson.gz``."""
    return name.endswith(NDJSON_SUFFIXES)


def type_from_name(name: str) -> str | None:
    """Return the resource type a file name declares (``Observation.000.ndjson`` -> Observation)."""
    first = name.split(".", 1)[0]
    return first if first in R4_RESOURCE_TYPES else None


def is_gzip(path: Path) -> bool:
    """Return whether the file starts with the gzip magic bytes."""
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def open_lines(path: Path, *, buffer_size: int = 1 << 20) -> tuple[IO[bytes], IO[bytes], bool]:
    """Open ``path`` for reading lines, decompressing gzip transparently.

    Returns:
        ``(lines, raw, compressed)``: the stream to read lines from, the on-disk file (its
        ``tell()`` measures progress in bytes on disk) and whether it is gzip. Close ``lines`` then
        ``raw``.
    """
    raw = path.open("rb", buffering=buffer_size)
    compressed = raw.peek(2)[:2] == _GZIP_MAGIC  # type: ignore[attr-defined]  # a BufferedReader
    if compressed:
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw, True
    return raw, raw, False


def plan_source(source: Path, selected: frozenset[str] | None) -> SourcePlan:
    """Decide which files of ``source`` to read.

    Args:
        source: a bulk-export folder or a single ``.ndjson`` / ``.ndjson.gz`` file.
        selected: resource types to ingest, or ``None`` for all.

    Raises:
        NotFound: ``source`` does not exist, or the manifest lists files that are absent.
        InvalidInput: ``source`` is not an NDJSON file or folder, or the manifest is malformed.
    """
    if not source.exists():
        raise NotFound(
            f"NDJSON source {source} does not exist. Give a bulk-export folder or a file."
        )
    if source.is_file():
        return _plan_file(source, selected)
    if not source.is_dir():
        raise InvalidInput(f"NDJSON source {source} is neither a file nor a folder.")
    manifest = source / MANIFEST_NAME
    plan = _plan_manifest(source, manifest, selected) if manifest.is_file() else None
    if plan is None:
        plan = _plan_folder(source, selected)
    if not plan.files and not plan.skipped:
        raise InvalidInput(
            f"folder {source} holds no *.ndjson or *.ndjson.gz files. Expected a FHIR bulk export "
            "(files named like Patient.ndjson or Observation.000.ndjson.gz)."
        )
    return plan


def _select(
    candidate: SourceFile, selected: frozenset[str] | None
) -> tuple[SourceFile | None, dict[str, str] | None]:
    declared = candidate.declared_type
    if selected is not None and declared is not None and declared not in selected:
        return None, {"name": candidate.name, "reason": "resource type not selected"}
    return candidate, None


def _plan_file(path: Path, selected: frozenset[str] | None) -> SourcePlan:
    if not is_ndjson_name(path.name) and not is_gzip(path):
        raise InvalidInput(
            f"{path.name} is not an NDJSON file: expected a name ending in .ndjson or .ndjson.gz "
            "(one FHIR resource per line)."
        )
    chosen, skip = _select(SourceFile(path, type_from_name(path.name)), selected)
    return SourcePlan(
        files=(chosen,) if chosen is not None else (), skipped=(skip,) if skip else ()
    )


def _plan_folder(folder: Path, selected: frozenset[str] | None) -> SourcePlan:
    files: list[SourceFile] = []
    skipped: list[dict[str, str]] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_ndjson_name(p.name)):
        chosen, skip = _select(SourceFile(path, type_from_name(path.name)), selected)
        if chosen is not None:
            files.append(chosen)
        if skip is not None:
            skipped.append(skip)
    return SourcePlan(files=tuple(files), skipped=tuple(skipped))


def _manifest_error(manifest: Path, where: str, expected: str) -> InvalidInput:
    return InvalidInput(
        f"{manifest}: {where} {expected}. Fix the manifest, or remove it to ingest every "
        "*.ndjson file in the folder."
    )


def _resolve(folder: Path, url: str) -> Path | None:
    segment = PurePosixPath(urlsplit(url).path if "://" in url else url).name
    if not segment:
        return None
    for candidate in (segment, f"{segment}.gz", f"{segment}.ndjson", f"{segment}.ndjson.gz"):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _entries(manifest: Path, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = data.get(key, [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _manifest_error(manifest, f"'{key}'", "must be an array")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise _manifest_error(manifest, f"{key}[{index}]", "must be an object with a 'url'")
    return entries


def _plan_manifest(folder: Path, manifest: Path, selected: frozenset[str] | None) -> SourcePlan:
    try:
        data = orjson.loads(manifest.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise _manifest_error(manifest, "the file", "is not valid JSON") from exc
    if not isinstance(data, dict):
        raise _manifest_error(manifest, "the top level", "must be a JSON object")
    if "output" not in data:
        raise _manifest_error(manifest, "'output'", "is required (the bulk-export file list)")
    files: list[SourceFile] = []
    skipped: list[dict[str, str]] = []
    missing: list[str] = []
    seen: set[Path] = set()
    for index, entry in enumerate(_entries(manifest, data, "output")):
        rtype = entry.get("type")
        if rtype is not None and rtype not in R4_RESOURCE_TYPES:
            raise _manifest_error(
                manifest, f"output[{index}].type", "must be a FHIR R4 resource type"
            )
        count = entry.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise _manifest_error(manifest, f"output[{index}].count", "must be an integer")
        path = _resolve(folder, entry["url"])
        if path is None:
            missing.append(f"output[{index}]")
            continue
        if path in seen:
            raise _manifest_error(manifest, f"output[{index}].url", "names a file listed twice")
        seen.add(path)
        declared = rtype if rtype is not None else type_from_name(path.name)
        chosen, skip = _select(SourceFile(path, declared, count), selected)
        if chosen is not None:
            files.append(chosen)
        if skip is not None:
            skipped.append(skip)
    if missing:
        raise NotFound(
            f"{manifest} lists {len(missing)} output file(s) not found in {folder} "
            f"({', '.join(missing[:10])}). Finish or resume the download, or remove manifest.json "
            "to ingest the files that are present."
        )
    for key, reason in (
        ("error", "export error file (OperationOutcome)"),
        ("deleted", "export deleted-resources file"),
    ):
        for entry in _entries(manifest, data, key):
            path = _resolve(folder, entry["url"])
            if path is not None and path not in seen:
                seen.add(path)
                skipped.append({"name": path.name, "reason": reason})
    warnings: list[str] = []
    errors = sum(1 for s in skipped if s["reason"].startswith("export error"))
    if errors:
        warnings.append(f"the export reported {errors} error file(s); they were not ingested")
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_ndjson_name(p.name)):
        if path not in seen:
            skipped.append({"name": path.name, "reason": "not listed in manifest.json"})
            warnings.append(f"{path.name} is not listed in manifest.json and was not read")
    return SourcePlan(files=tuple(files), skipped=tuple(skipped), warnings=tuple(warnings))
