"""The ``bedside-export.json`` state file that makes an export folder resumable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from bedside.errors import Conflict, InvalidInput, StoreError
from bedside.ingest.fhir.manifest import ExportManifest, ExportRequest

STATE_FILE = "bedside-export.json"
STATE_FORMAT = "bedside-export/1"


class ExportState:
    """The ``bedside-export.json`` file of a destination folder (loaded, changed, saved)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE
        self.request: dict[str, Any] | None = None
        self.status_url: str | None = None
        self.manifest: ExportManifest | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.cleaned_up = False

    @classmethod
    def open(cls, folder: Path, request: ExportRequest) -> ExportState:
        """Load the folder's state for ``request`` or start a new one.

        Raises:
            Conflict: If the folder holds another request's export or stray NDJSON files.
        """
        state = cls._load(folder)
        wanted = request.to_json()
        if state.request is None and state.manifest is None:
            state.request = wanted
        elif state.request != wanted:
            raise Conflict(
                f"{state.path} records a different export request (another server, level, "
                "types or since). Use an empty folder, or delete the folder's contents to start "
                "over.",
                details={"state_file": str(state.path)},
            )
        return state

    @classmethod
    def for_manifest(cls, folder: Path, manifest: ExportManifest) -> ExportState:
        """Load the folder's state for ``manifest`` or start a new one.

        Raises:
            Conflict: If the folder's state belongs to a different manifest.
        """
        state = cls._load(folder)
        if state.manifest is None:
            state.manifest = manifest
        elif state.manifest.raw != manifest.raw:
            raise Conflict(
                f"{state.path} belongs to a different export (transactionTime or files differ). "
                "Download into an empty folder.",
                details={"state_file": str(state.path)},
            )
        return state

    @classmethod
    def _load(cls, folder: Path) -> ExportState:
        state = cls(folder)
        if not state.path.exists():
            stray = _export_files(folder)
            if stray:
                raise Conflict(
                    f"{folder} already holds {len(stray)} NDJSON file(s) but no {STATE_FILE}; "
                    "bedside will not mix exports. Choose an empty folder.",
                    details={"folder": str(folder)},
                )
            return state
        try:
            data = orjson.loads(state.path.read_bytes())
            if data.get("format") != STATE_FORMAT:
                raise ValueError("format")
            state.request = data.get("request")
            state.status_url = data.get("status_url")
            raw = data.get("manifest")
            state.manifest = (
                ExportManifest.from_json(raw, url=state.status_url or "http://state.invalid/")
                if raw is not None
                else None
            )
            state.files = dict(data.get("files") or {})
            state.cleaned_up = bool(data.get("cleaned_up", False))
        except (OSError, ValueError, AttributeError, StoreError) as exc:
            raise InvalidInput(
                f"{state.path} is not a readable {STATE_FORMAT} state file. Remove the folder's "
                "contents (or choose another folder) to start the export again.",
                details={"state_file": str(state.path)},
            ) from exc
        return state

    def save(self) -> None:
        """Write the state atomically (a crash leaves the old or the new file, never half)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {
            "format": STATE_FORMAT,
            "request": self.request,
            "status_url": self.status_url,
            "manifest": self.manifest.raw if self.manifest is not None else None,
            "files": self.files,
            "cleaned_up": self.cleaned_up,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        os.replace(tmp, self.path)


def _export_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for sub in ("", "errors", "deleted"):
        where = folder / sub if sub else folder
        if where.is_dir():
            found.extend(p for p in where.iterdir() if p.name.endswith((".ndjson", ".ndjson.part")))
    return found
