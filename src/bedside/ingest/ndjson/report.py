"""The ingest report: what was read, accepted and quarantined, per file and in total.

Each :class:`FileReport` enforces ``read == accepted + quarantined + blank + skipped`` when it is
built, so a report that does not account for every line cannot exist. Reports hold counts, file
names, resource-type names and reason codes only — never a value from the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bedside.errors import IntegrityError

REPORT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class FileReport:
    """Counts for one source file.

    Attributes:
        name: the file's name inside the source folder (or the single file's name).
        declared_type: the resource type the file name or manifest declares, or ``None``.
        compressed: whether the file was gzip-compressed.
        size_bytes: the file's size on disk.
        read: physical lines read (every line, blank ones included).
        accepted: lines written to ``raw/``.
        quarantined: lines written to the quarantine file.
        blank: empty or whitespace-only lines (skipped, counted).
        skipped: valid lines whose type was not selected by ``resource_types`` (untyped files).
        strict_unchecked: accepted lines strict mode could not check (no R4B model for the type).
        accepted_by_type: accepted lines per resource type.
        quarantined_by_reason: quarantined lines per reason code.
        manifest_count: the ``count`` the export manifest gives for this file, if any.
        duration_s: seconds spent on the file.
        quarantine_file: the quarantine file, relative to ``dest``, when a line was quarantined.
        error: a file-level failure that ended reading early (``{"code", "message"}``), else None.
    """

    name: str
    declared_type: str | None
    compressed: bool
    size_bytes: int
    read: int
    accepted: int
    quarantined: int
    blank: int
    skipped: int = 0
    strict_unchecked: int = 0
    accepted_by_type: Mapping[str, int] = field(default_factory=dict)
    quarantined_by_reason: Mapping[str, int] = field(default_factory=dict)
    manifest_count: int | None = None
    duration_s: float = 0.0
    quarantine_file: str | None = None
    error: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        """Refuse counts that do not account for every line read."""
        counts = (self.read, self.accepted, self.quarantined, self.blank, self.skipped)
        if min(counts) < 0:
            raise IntegrityError(f"ingest report for {self.name}: a line count is negative")
        if self.read != self.accepted + self.quarantined + self.blank + self.skipped:
            raise IntegrityError(
                f"ingest report for {self.name}: read={self.read} but accepted={self.accepted} + "
                f"quarantined={self.quarantined} + blank={self.blank} + skipped={self.skipped}; "
                "every line must be accounted for"
            )
        if sum(self.accepted_by_type.values()) != self.accepted:
            raise IntegrityError(f"ingest report for {self.name}: per-type counts != accepted")
        if sum(self.quarantined_by_reason.values()) != self.quarantined:
            raise IntegrityError(f"ingest report for {self.name}: per-reason counts != quarantined")

    @property
    def manifest_count_matches(self) -> bool | None:
        """Whether the non-blank lines equal the manifest's ``count`` (None without a count)."""
        if self.manifest_count is None:
            return None
        return self.read - self.blank == self.manifest_count

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "declared_type": self.declared_type,
            "compressed": self.compressed,
            "size_bytes": self.size_bytes,
            "read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "blank": self.blank,
            "skipped": self.skipped,
            "strict_unchecked": self.strict_unchecked,
            "accepted_by_type": dict(sorted(self.accepted_by_type.items())),
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
            "manifest_count": self.manifest_count,
            "manifest_count_matches": self.manifest_count_matches,
            "duration_s": round(self.duration_s, 6),
            "quarantine_file": self.quarantine_file,
            "error": dict(self.error) if self.error is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileReport:
        """Rebuild a report from :meth:`to_dict` output (the invariant is checked again)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of one :func:`~bedside.ingest.ndjson.ingest_ndjson` run.

    Attributes:
        source: the source folder or file, as given.
        dest: the destination folder.
        strict: whether strict (fhir.resources R4B) validation was on.
        resource_types: the selected resource types, or ``None`` for all.
        started_at: UTC start time, ISO 8601.
        duration_s: wall-clock seconds for the whole run.
        files: one :class:`FileReport` per file read, in reading order.
        skipped_files: files not read, each ``{"name", "reason"}`` (type not selected, error file
            of the export, not listed in the manifest).
        raw_files: resource type -> accepted-resource file, relative to ``dest``.
        warnings: things worth a look that did not stop the run (counts only, no data values).
    """

    source: str
    dest: str
    strict: bool
    resource_types: tuple[str, ...] | None
    started_at: str
    duration_s: float
    files: tuple[FileReport, ...]
    skipped_files: tuple[Mapping[str, str], ...] = ()
    raw_files: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def read(self) -> int:
        """Lines read over all files."""
        return sum(f.read for f in self.files)

    @property
    def accepted(self) -> int:
        """Lines accepted over all files."""
        return sum(f.accepted for f in self.files)

    @property
    def quarantined(self) -> int:
        """Lines quarantined over all files."""
        return sum(f.quarantined for f in self.files)

    @property
    def blank(self) -> int:
        """Blank lines over all files."""
        return sum(f.blank for f in self.files)

    @property
    def skipped(self) -> int:
        """Lines of unselected types over all files."""
        return sum(f.skipped for f in self.files)

    @property
    def accepted_by_type(self) -> dict[str, int]:
        """Accepted resources per type over all files."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.accepted_by_type)
        return dict(sorted(total.items()))

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        """Quarantined lines per reason code over all files."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.quarantined_by_reason)
        return dict(sorted(total.items()))

    @property
    def has_file_errors(self) -> bool:
        """Whether any file stopped early (for example a truncated gzip stream)."""
        return any(f.error is not None for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (what ``dest/ingest-report.json`` holds)."""
        return {
            "format": REPORT_FORMAT,
            "source": self.source,
            "dest": self.dest,
            "strict": self.strict,
            "resource_types": list(self.resource_types) if self.resource_types else None,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "totals": {
                "files": len(self.files),
                "read": self.read,
                "accepted": self.accepted,
                "quarantined": self.quarantined,
                "blank": self.blank,
                "skipped": self.skipped,
            },
            "accepted_by_type": self.accepted_by_type,
            "quarantined_by_reason": self.quarantined_by_reason,
            "has_file_errors": self.has_file_errors,
            "files": [f.to_dict() for f in self.files],
            "skipped_files": [dict(s) for s in self.skipped_files],
            "raw_files": dict(sorted(self.raw_files.items())),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestReport:
        """Rebuild a report from :meth:`to_dict` output, re-checking every file's invariant."""
        types = data.get("resource_types")
        return cls(
            source=data["source"],
            dest=data["dest"],
            strict=bool(data["strict"]),
            resource_types=tuple(types) if types else None,
            started_at=data["started_at"],
            duration_s=float(data["duration_s"]),
            files=tuple(FileReport.from_dict(f) for f in data["files"]),
            skipped_files=tuple(data.get("skipped_files", ())),
            raw_files=dict(data.get("raw_files", {})),
            warnings=tuple(data.get("warnings", ())),
        )
