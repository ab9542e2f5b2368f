"""Ingest FHIR NDJSON (a bulk-export folder or one file) into ``dest``, quarantining bad lines.

Layout of ``dest`` after a run::

    dest/raw/<Type>.ndjson                    accepted resources, the original bytes, one per
                                              line, all source files of a type together
    dest/quarantine/<file>.quarantine.ndjson  one record per rejected line (protected data)
    dest/ingest-report.json                   IngestReport.to_dict()

A run builds all three in ``dest/.ingest-staging`` and moves them into place only when it
finishes, replacing the previous run's outputs: re-running is safe and gives the same files for the
same input, and a failed run leaves the previous outputs untouched. A lock refuses a concurrent run.
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from bedside.errors import Conflict, InvalidInput
from bedside.ingest.ndjson.quarantine import QuarantineWriter
from bedside.ingest.ndjson.report import FileReport, IngestReport
from bedside.ingest.ndjson.rules import (
    R4_RESOURCE_TYPES,
    Problem,
    ReasonCode,
    check_envelope,
    check_structure,
)
from bedside.ingest.ndjson.sources import SourceFile, open_lines, plan_source
from bedside.ingest.ndjson.strict import strict_problem, validator_for

logger = logging.getLogger(__name__)

RAW_DIR = "raw"
QUARANTINE_DIR = "quarantine"
REPORT_NAME = "ingest-report.json"
STAGING_DIR = ".ingest-staging"
OLD_DIR = ".ingest-old"
LOCK_NAME = ".ingest.lock"
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
_PROGRESS_EVERY = 1 << 14  # lines between progress callbacks
_BOM = b"\xef\xbb\xbf"

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` in bytes of the source files on disk (gzip: compressed)."""

_INVALID_UTF8 = Problem(ReasonCode.INVALID_UTF8, "line: is not valid UTF-8")
_INVALID_JSON = Problem(ReasonCode.INVALID_JSON, "line: is not valid JSON (malformed or truncated)")


def _too_long(limit: int) -> Problem:
    return Problem(ReasonCode.LINE_TOO_LONG, f"line: longer than the {limit}-byte limit")


class _RawWriters:
    """One append-only ``<Type>.ndjson`` file per accepted resource type, opened on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, IO[bytes]] = {}

    def write(self, rtype: str, line: bytes) -> None:
        """Append ``line``, which must end with exactly one newline."""
        fh = self._files.get(rtype)
        if fh is None:
            fh = self._files[rtype] = (self.folder / f"{rtype}.ndjson").open(
                "wb", buffering=1 << 20
            )
        fh.write(line)

    def relative_paths(self) -> dict[str, str]:
        return {rtype: f"{RAW_DIR}/{rtype}.ndjson" for rtype in sorted(self._files)}

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


@dataclass(frozen=True, slots=True)
class _Options:
    selected: frozenset[str] | None
    strict: bool
    max_line_bytes: int


def ingest_ndjson(
    source: Path | str,
    dest: Path | str,
    *,
    resource_types: Collection[str] | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> IngestReport:
    """Read FHIR NDJSON from ``source``, check every line, and write accepted/quarantined lines.

    Args:
        source: a bulk-export folder (with or without ``manifest.json``) or one ``.ndjson`` /
            ``.ndjson.gz`` file.
        dest: the output folder (created if needed); see the module docstring for its layout.
        resource_types: only ingest these FHIR R4 types (files of other types are skipped, lines of
            other types in untyped files are counted as ``skipped``); ``None`` ingests all.
        strict: also validate each resource with the fhir.resources R4B model (slow).
        progress: called as ``progress(bytes_done, bytes_total)`` while reading.
        max_line_bytes: lines longer than this (without the newline) are quarantined as
            ``line_too_long``.

    Returns:
        The :class:`IngestReport`, also written to ``dest/ingest-report.json``.

    Raises:
        NotFound: ``source`` does not exist, or its manifest lists missing files.
        InvalidInput: bad arguments, an unusable source or manifest, or ``dest`` is a file.
        Conflict: another run holds ``dest``, or ``dest`` holds ``raw/`` or ``quarantine/`` folders
            that no ingest run wrote.
    """
    source, dest = Path(source), Path(dest)
    selected = _selected_types(resource_types)
    if max_line_bytes < 1:
        raise InvalidInput(f"max_line_bytes must be at least 1; got {max_line_bytes}.")
    plan = plan_source(source, selected)
    _check_dest(source, dest)
    options = _Options(selected=selected, strict=strict, max_line_bytes=max_line_bytes)
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        staging = dest / STAGING_DIR
        if staging.exists():  # left by an interrupted run; we hold the lock
            shutil.rmtree(staging)
        (staging / RAW_DIR).mkdir(parents=True)
        (staging / QUARANTINE_DIR).mkdir()
        try:
            report = _run(source, dest, staging, plan.files, options, progress)
            report = replace(
                report, skipped_files=plan.skipped, warnings=plan.warnings + report.warnings
            )
            (staging / REPORT_NAME).write_bytes(
                orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
            )
            _publish(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info(
        "ingest finished: %d file(s), read=%d accepted=%d quarantined=%d blank=%d in %.2fs",
        len(report.files),
        report.read,
        report.accepted,
        report.quarantined,
        report.blank,
        report.duration_s,
    )
    return report


def _selected_types(resource_types: Collection[str] | None) -> frozenset[str] | None:
    if resource_types is None:
        return None
    if isinstance(resource_types, str):
        resource_types = [resource_types]
    chosen = frozenset(resource_types)
    unknown = sorted(chosen - R4_RESOURCE_TYPES)
    if unknown:
        raise InvalidInput(
            f"resource_types: {', '.join(map(repr, unknown))} not FHIR R4 resource type(s). "
            "Use names such as Patient, Encounter, Observation, Condition."
        )
    if not chosen:
        raise InvalidInput("resource_types is empty; pass None to ingest every type.")
    return chosen


def _check_dest(source: Path, dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"dest {dest} is a file; give a folder for the ingest output.")
    resolved_source = source.resolve()
    for name in (RAW_DIR, QUARANTINE_DIR, STAGING_DIR, OLD_DIR):
        if resolved_source.is_relative_to((dest / name).resolve()):
            raise InvalidInput(
                f"source {source} lies inside {dest / name}, which ingest replaces. "
                "Give a source outside the ingest output."
            )
    if dest.is_dir() and not (dest / REPORT_NAME).exists():
        for name in (RAW_DIR, QUARANTINE_DIR):
            if (dest / name).exists():
                raise Conflict(
                    f"{dest / name} exists but no {REPORT_NAME} says an ingest run wrote it; "
                    "ingest replaces that folder. Choose another dest or move the folder away."
                )


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    with (dest / LOCK_NAME).open("a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict(
                f"another ingest run is writing to {dest}; wait for it to finish and retry."
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _publish(staging: Path, dest: Path) -> None:
    old = dest / OLD_DIR
    if old.exists():
        shutil.rmtree(old)
    old.mkdir()
    for name in (RAW_DIR, QUARANTINE_DIR):
        target = dest / name
        if target.exists():
            target.rename(old / name)
        (staging / name).rename(target)
    os.replace(staging / REPORT_NAME, dest / REPORT_NAME)
    shutil.rmtree(old)
    shutil.rmtree(staging)


def _run(
    source: Path,
    dest: Path,
    staging: Path,
    files: tuple[SourceFile, ...],
    options: _Options,
    progress: Progress | None,
) -> IngestReport:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    logger.info("ingesting %d NDJSON file(s) from %s", len(files), source)
    sizes = [f.path.stat().st_size for f in files]
    total = sum(sizes)
    done = 0
    writers = _RawWriters(staging / RAW_DIR)
    reports: list[FileReport] = []
    warnings: list[str] = []
    try:
        for source_file, size in zip(files, sizes, strict=True):
            tick = None
            if progress is not None:
                tick = _ticker(progress, done, total)
            file_report = _ingest_file(source_file, size, staging, writers, options, tick)
            reports.append(file_report)
            done += size
            if progress is not None:
                progress(done, total)
            if file_report.manifest_count_matches is False:
                warnings.append(
                    f"{file_report.name}: manifest count {file_report.manifest_count} but "
                    f"{file_report.read - file_report.blank} non-blank line(s) read"
                )
    finally:
        writers.close()
    return IngestReport(
        source=str(source),
        dest=str(dest),
        strict=options.strict,
        resource_types=tuple(sorted(options.selected)) if options.selected else None,
        started_at=started_at,
        duration_s=time.perf_counter() - start,
        files=tuple(reports),
        raw_files=writers.relative_paths(),
        warnings=tuple(warnings),
    )


def _ticker(progress: Progress, base: int, total: int) -> Callable[[int], None]:
    def tick(position: int) -> None:
        progress(base + position, total)

    return tick


def _rest_of_line(readline: Callable[[int], bytes], first: bytes, chunk: int) -> Iterator[bytes]:
    """Yield an over-long line chunk by chunk, without its newline, consuming it from the stream."""
    part = first
    while True:
        if part.endswith(b"\n"):
            yield part[:-1]
            return
        yield part
        part = readline(chunk)
        if not part:
            return


def _ingest_file(
    source_file: SourceFile,
    size: int,
    staging: Path,
    writers: _RawWriters,
    options: _Options,
    tick: Callable[[int], None] | None,
) -> FileReport:
    start = time.perf_counter()
    name = source_file.name
    declared = source_file.declared_type
    selected = options.selected
    strict = options.strict
    limit = options.max_line_bytes + 1  # +1 for the newline
    quarantine = QuarantineWriter(staging / QUARANTINE_DIR / f"{name}.quarantine.ndjson", name)
    by_type: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    read = blank = skipped = unchecked = 0
    error: dict[str, str] | None = None
    loads = orjson.loads
    progress_mask = _PROGRESS_EVERY - 1
    decode_error = orjson.JSONDecodeError
    write = writers.write
    lines, raw, compressed = open_lines(source_file.path)
    readline = lines.readline
    problem: Problem | None
    try:
        while line := readline(limit):
            read += 1
            if read & progress_mask == 0 and tick is not None:
                tick(raw.tell())
            if len(line) == limit and line[-1] != 10:  # 10 == ord("\n")
                problem = _too_long(options.max_line_bytes)
                quarantine.add_streamed(read, problem, _rest_of_line(readline, line, limit))
                by_reason[problem.code] = by_reason.get(problem.code, 0) + 1
                logger.debug("%s line %d quarantined: %s", name, read, problem.code)
                continue
            body = line.strip()
            if read == 1 and body.startswith(_BOM):
                body = body[len(_BOM) :].strip()
            if not body:
                blank += 1
                continue
            try:
                obj: Any = loads(body)
            except decode_error:
                problem = _decode_problem(body)
            else:
                rtype, problem = check_envelope(obj, declared)
                if problem is None and rtype is not None:
                    if selected is not None and rtype not in selected:
                        skipped += 1
                        continue
                    problem = check_structure(rtype, obj)
                    if problem is None and strict:
                        if validator_for(rtype) is None:
                            unchecked += 1
                        else:
                            problem = strict_problem(rtype, obj)
                    if problem is None:
                        # The common case, "<json>\n", is written as read, without a copy.
                        exact = line[-1] == 10 and len(body) + 1 == len(line)
                        write(rtype, line if exact else body + b"\n")
                        by_type[rtype] = by_type.get(rtype, 0) + 1
                        continue
            assert problem is not None  # every branch above either continued or set a problem
            quarantine.add(read, problem, line[:-1] if line.endswith(b"\n") else line)
            by_reason[problem.code] = by_reason.get(problem.code, 0) + 1
            logger.debug("%s line %d quarantined: %s", name, read, problem.code)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # Only decompression fails here; the lines before the failure are counted and kept.
        error = {
            "code": "truncated_or_corrupt_gzip",
            "message": (
                f"{name}: the gzip stream ends early or is corrupt after line {read} "
                f"({type(exc).__name__}); the lines before it were ingested. Download the file "
                "again and re-run."
            ),
        }
        logger.warning("%s: gzip stream failed after line %d (%s)", name, read, type(exc).__name__)
    finally:
        quarantine.close()
        if lines is not raw:
            lines.close()
        raw.close()
    quarantined = sum(by_reason.values())
    if quarantined:
        logger.warning("%s: %d line(s) quarantined", name, quarantined)
    report = FileReport(
        name=name,
        declared_type=declared,
        compressed=compressed,
        size_bytes=size,
        read=read,
        accepted=sum(by_type.values()),
        quarantined=quarantined,
        blank=blank,
        skipped=skipped,
        strict_unchecked=unchecked,
        accepted_by_type=by_type,
        quarantined_by_reason={str(code): n for code, n in by_reason.items()},
        manifest_count=source_file.manifest_count,
        duration_s=time.perf_counter() - start,
        quarantine_file=f"{QUARANTINE_DIR}/{quarantine.path.name}" if quarantine.count else None,
        error=error,
    )
    logger.info(
        "%s: read=%d accepted=%d quarantined=%d blank=%d skipped=%d",
        name,
        report.read,
        report.accepted,
        report.quarantined,
        report.blank,
        report.skipped,
    )
    return report


def _decode_problem(body: bytes) -> Problem:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return _INVALID_UTF8
    return _INVALID_JSON
