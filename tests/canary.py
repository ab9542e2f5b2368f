"""PHI canaries: distinctive fake identifiers to plant in source data, and a byte search for them.

An end-to-end test seeds :data:`CANARIES` into the synthetic source data (a patient's name, MRN,
SSN, phone, email, address, birth date, id), runs the pipeline, and then calls
:func:`find_canaries` on everything the pipeline wrote — the MLflow database and artifact
folders, bedside's database, the logs. A canary found in plaintext is a leak.

Every value is fake and chosen so it cannot be real (999- SSN area, 555-01xx phone numbers,
``.invalid`` e-mail domain) yet distinctive enough never to appear by chance. Each canary is
searched by its *needles*: distinctive parts that survive reformatting (``Quixwhistle`` alone
catches ``QUIXWHISTLE, MARY`` and ``Mary%20Quixwhistle``; a phone is also searched as bare
digits). The search is case-insensitive, in UTF-8 and UTF-16 (LE and BE), and looks inside:

- every file under the given folders, streamed in blocks (a needle across a block boundary is
  still found);
- zip archives (skops model files, wheels) and gzip files, member by member, recursively;
- SQLite databases, also cell by cell through ``sqlite3`` (a long value spills into overflow
  pages, which a plain byte search could split), next to the byte search of the file, its WAL
  and journal.

Encrypted data is ciphertext, and is rightly not found. Parquet and other compressed column
formats are not decompressed (bedside keeps them encrypted); base64 is not decoded.
"""

from __future__ import annotations

import gzip
import io
import sqlite3
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = 4 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Canary:
    """A fake identifier: what to plant (``value``) and what to search for (``needles``)."""

    kind: str
    value: str
    needles: tuple[str, ...]


CANARIES: tuple[Canary, ...] = (
    Canary("name", "Mary Quixwhistle", ("quixwhistle",)),
    Canary("mrn", "QX58213907", ("qx58213907",)),
    Canary("ssn", "999-31-4159", ("999-31-4159", "999314159")),
    Canary("phone", "(555) 013-2719", ("013-2719", "5550132719")),
    Canary("email", "vexmorrow.canary@example.invalid", ("vexmorrow",)),
    Canary("address", "7319 Zorblatt Lane", ("zorblatt",)),
    Canary("birth_date", "1929-02-17", ("1929-02-17",)),
    Canary(
        "patient_id",
        "c4a9e7d2-0b1f-4e8a-9d3c-5f6a7b8c9d0e",
        ("c4a9e7d2-0b1f-4e8a-9d3c-5f6a7b8c9d0e", "c4a9e7d20b1f4e8a9d3c5f6a7b8c9d0e"),
    ),
)

#: The canary values by kind, for seeding a synthetic patient.
CANARY_PATIENT: dict[str, str] = {c.kind: c.value for c in CANARIES}


def _patterns(canaries: Iterable[Canary]) -> list[tuple[bytes, Canary]]:
    patterns = []
    for canary in canaries:
        for needle in canary.needles:
            text = needle.lower()
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                patterns.append((text.encode(encoding), canary))
    return patterns


def find_canaries(
    paths: Iterable[Path], canaries: Iterable[Canary] = CANARIES
) -> list[tuple[Path, Canary]]:
    """Return ``(file, canary)`` for every canary found in plaintext under ``paths``.

    Args:
        paths: files and folders (searched recursively); missing paths are skipped.
        canaries: what to look for (:data:`CANARIES` by default).

    Returns:
        Sorted, without duplicates; a hit inside an archive is reported on the archive file.
    """
    patterns = _patterns(canaries)
    longest = max((len(p) for p, _ in patterns), default=1)
    hits: set[tuple[Path, Canary]] = set()
    for file in _files(paths):
        try:
            with file.open("rb") as handle:
                is_sqlite = handle.read(16) == _SQLITE_MAGIC
                handle.seek(0)
                found = _search_stream(handle, patterns, longest, depth=0)
            if is_sqlite:
                found |= _search_sqlite(file, patterns)
        except OSError:
            continue  # vanished or unreadable while we looked: nothing to report
        hits.update((file, canary) for canary in found)
    return sorted(hits, key=lambda hit: (str(hit[0]), hit[1].kind))


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())


def _search_stream(
    handle: BinaryIO, patterns: list[tuple[bytes, Canary]], longest: int, depth: int
) -> set[Canary]:
    head = handle.read(_BLOCK)
    found = _search_bytes(head, patterns)
    if depth < _MAX_DEPTH and head.startswith(_ZIP_MAGIC):
        found |= _search_zip(head + handle.read(), patterns, longest, depth)
        return found
    if depth < _MAX_DEPTH and head.startswith(_GZIP_MAGIC):
        handle.seek(0)
        try:
            with gzip.open(handle) as inner:
                found |= _search_stream(inner, patterns, longest, depth + 1)  # type: ignore[arg-type]
        except (OSError, EOFError):
            pass  # not really gzip: the plain search above stands
    tail = head[-(longest - 1) :] if longest > 1 else b""
    while block := handle.read(_BLOCK):
        found |= _search_bytes(tail + block, patterns)
        tail = block[-(longest - 1) :] if longest > 1 else b""
    return found


def _search_bytes(data: bytes, patterns: list[tuple[bytes, Canary]]) -> set[Canary]:
    lowered = data.lower()
    return {canary for pattern, canary in patterns if pattern in lowered}


def _search_zip(
    data: bytes, patterns: list[tuple[bytes, Canary]], longest: int, depth: int
) -> set[Canary]:
    found: set[Canary] = set()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        for member in archive.infolist():
            with archive.open(member) as inner:
                found |= _search_stream(inner, patterns, longest, depth + 1)  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError):
        pass  # not a readable zip: the plain search stands
    return found


def _search_sqlite(file: Path, patterns: list[tuple[bytes, Canary]]) -> set[Canary]:
    found: set[Canary] = set()
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return found
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            for row in connection.execute(f"SELECT * FROM {quoted}"):
                for cell in row:
                    if isinstance(cell, str):
                        found |= _search_bytes(cell.encode("utf-8"), patterns)
                    elif isinstance(cell, bytes):
                        found |= _search_bytes(cell, patterns)
    except sqlite3.Error:
        pass  # a damaged or locked page: the byte search of the file stands
    finally:
        connection.close()
    return found
