"""Bulk Data ``$export`` values: the request, the completion manifest, progress and results."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from bedside.errors import InvalidInput, StoreError
from bedside.ingest.fhir import _http

NDJSON_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def check_resource_type(resource_type: str) -> None:
    """Refuse a string that is not a FHIR resource type name (it becomes a URL or file name)."""
    if not isinstance(resource_type, str) or not RESOURCE_TYPE.match(resource_type):
        raise InvalidInput(
            "A FHIR resource type is a capitalised name such as 'Observation'; got "
            f"{resource_type!r}.",
            details={"field": "resource_type"},
        )


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What was asked of ``$export``: recorded in the state file so a rerun resumes the same job."""

    base_url: str
    level: Literal["system", "patient", "group"]
    group_id: str | None
    types: tuple[str, ...]
    since: str | None
    output_format: str | None
    type_filters: tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        base_url: str,
        level: str,
        group_id: str | None,
        types: Sequence[str] | None,
        since: str | None,
        output_format: str | None,
        type_filters: Sequence[str] | None,
    ) -> ExportRequest:
        """Validate export arguments and return the request.

        Raises:
            InvalidInput: For an unknown level, a missing/unexpected/malformed group id, a bad
                resource type or an output format other than NDJSON.
        """
        if level not in ("system", "patient", "group"):
            raise InvalidInput(
                f"Export level must be 'system', 'patient' or 'group'; got {level!r}.",
                details={"field": "level"},
            )
        if (level == "group") != (group_id is not None):
            raise InvalidInput(
                "A group_id is required for level='group' and only for it.",
                details={"field": "group_id"},
            )
        if group_id is not None and not _FHIR_ID.match(group_id):
            raise InvalidInput(
                "group_id must be a FHIR id: letters, digits, '-' and '.', at most 64 characters.",
                details={"field": "group_id"},
            )
        if isinstance(types, str):
            types = [t.strip() for t in types.split(",") if t.strip()]
        for name in types or ():
            check_resource_type(name)
        if output_format is not None and output_format not in NDJSON_FORMATS:
            raise InvalidInput(
                f"output_format must be one of {', '.join(NDJSON_FORMATS)}; got {output_format!r}.",
                details={"field": "output_format"},
            )
        return cls(
            base_url=base_url,
            level=level,  # type: ignore[arg-type]  # checked above
            group_id=group_id,
            types=tuple(types or ()),
            since=since,
            output_format=output_format,
            type_filters=tuple(type_filters or ()),
        )

    @property
    def path(self) -> str:
        """Return the kick-off path relative to the FHIR base."""
        if self.level == "patient":
            return "Patient/$export"
        if self.level == "group":
            return f"Group/{self.group_id}/$export"
        return "$export"

    def query(self) -> list[tuple[str, str]]:
        """Return the kick-off query parameters."""
        pairs: list[tuple[str, str]] = []
        if self.types:
            pairs.append(("_type", ",".join(self.types)))
        if self.since is not None:
            pairs.append(("_since", self.since))
        if self.output_format is not None:
            pairs.append(("_outputFormat", self.output_format))
        pairs.extend(("_typeFilter", item) for item in self.type_filters)
        return pairs

    def to_json(self) -> dict[str, Any]:
        """Return the request as a JSON-ready dict."""
        return {
            "base_url": self.base_url,
            "level": self.level,
            "group_id": self.group_id,
            "types": list(self.types),
            "since": self.since,
            "output_format": self.output_format,
            "type_filters": list(self.type_filters),
        }


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One ``output``/``error``/``deleted`` item of a completion manifest."""

    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """A Bulk Data completion manifest (the 200 answer of the status URL)."""

    transaction_time: str
    request: str
    requires_access_token: bool
    output: tuple[ManifestEntry, ...]
    error: tuple[ManifestEntry, ...] = ()
    deleted: tuple[ManifestEntry, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any], *, url: str) -> ExportManifest:
        """Parse and check a manifest; relative file URLs resolve against ``url``.

        ``requiresAccessToken`` is required by the IG; when a server omits it the token is sent.

        Raises:
            StoreError: Naming the first malformed field (never its value).
        """
        where = _http.describe("GET", url)

        def bad(field_name: str, expected: str) -> StoreError:
            return StoreError(
                f"The export manifest from {where} is malformed: {field_name} must be {expected}.",
                details={"request": where, "field": field_name},
            )

        transaction_time = body.get("transactionTime")
        if not isinstance(transaction_time, str) or not transaction_time:
            raise bad("transactionTime", "a FHIR instant")
        request = body.get("request")
        if not isinstance(request, str) or not request:
            raise bad("request", "the kick-off URL")
        requires_token = body.get("requiresAccessToken", True)
        if not isinstance(requires_token, bool):
            raise bad("requiresAccessToken", "true or false")
        base = httpx.URL(url)
        lists: dict[str, tuple[ManifestEntry, ...]] = {}
        for key in ("output", "error", "deleted"):
            items = body.get(key, [] if key != "output" else None)
            if not isinstance(items, list):
                raise bad(key, "a list")
            entries = []
            for index, item in enumerate(items):
                name = f"{key}[{index}]"
                if not isinstance(item, dict):
                    raise bad(name, "an object with type and url")
                kind = item.get("type")
                if not isinstance(kind, str) or not RESOURCE_TYPE.match(kind):
                    raise bad(f"{name}.type", "a FHIR resource type name")
                link = item.get("url")
                if not isinstance(link, str) or not link:
                    raise bad(f"{name}.url", "a URL")
                absolute = base.join(link)
                if absolute.scheme not in ("http", "https"):
                    raise bad(f"{name}.url", "an http(s) URL")
                count = item.get("count")
                if count is not None and (
                    not isinstance(count, int) or isinstance(count, bool) or count < 0
                ):
                    raise bad(f"{name}.count", "a non-negative integer")
                entries.append(ManifestEntry(type=kind, url=str(absolute), count=count))
            lists[key] = tuple(entries)
        return cls(
            transaction_time=transaction_time,
            request=request,
            requires_access_token=requires_token,
            output=lists["output"],
            error=lists["error"],
            deleted=lists["deleted"],
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """A progress report for a bar: the phase, files and bytes done."""

    phase: Literal["waiting", "downloading", "done"]
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    file_bytes_total: int | None = None
    server_progress: str | None = None


@dataclass(frozen=True, slots=True)
class ExportErrorFile:
    """A downloaded ``error[]`` file: OperationOutcome count and issue codes (no diagnostics)."""

    path: Path
    count: int
    issue_codes: dict[str, int]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export put on disk."""

    dest: Path
    transaction_time: str
    request: str
    files: dict[str, tuple[Path, ...]]
    counts: dict[str, int]
    errors: tuple[ExportErrorFile, ...]
    deleted_files: tuple[Path, ...]
    files_skipped: int
    bytes_downloaded: int

    @property
    def error_count(self) -> int:
        """Return the number of OperationOutcome resources in the error files."""
        return sum(item.count for item in self.errors)
