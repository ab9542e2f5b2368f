"""FHIR R4 access: search with paging and resumable Bulk Data ``$export`` (see docs/fhir.md)."""

from __future__ import annotations

from bedside.ingest.fhir.client import ExportLevel, FhirClient
from bedside.ingest.fhir.manifest import (
    ExportErrorFile,
    ExportManifest,
    ExportProgress,
    ExportRequest,
    ExportResult,
    ManifestEntry,
)

__all__ = [
    "ExportErrorFile",
    "ExportLevel",
    "ExportManifest",
    "ExportProgress",
    "ExportRequest",
    "ExportResult",
    "FhirClient",
    "ManifestEntry",
]
