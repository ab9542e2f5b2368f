"""Ingest FHIR R4 NDJSON (bulk-export folders and files, gzip too) with a line-level quarantine.

``ingest_ndjson(source, dest)`` checks every line, writes accepted resources to
``dest/raw/<Type>.ndjson``, rejected lines to ``dest/quarantine/`` and an :class:`IngestReport` to
``dest/ingest-report.json``. See ``docs/ingest.md``.
"""

from __future__ import annotations

from bedside.ingest.ndjson.report import FileReport, IngestReport
from bedside.ingest.ndjson.rules import R4_RESOURCE_TYPES, Problem, ReasonCode, check_resource
from bedside.ingest.ndjson.run import (
    DEFAULT_MAX_LINE_BYTES,
    QUARANTINE_DIR,
    RAW_DIR,
    REPORT_NAME,
    Progress,
    ingest_ndjson,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "QUARANTINE_DIR",
    "R4_RESOURCE_TYPES",
    "RAW_DIR",
    "REPORT_NAME",
    "FileReport",
    "IngestReport",
    "Problem",
    "Progress",
    "ReasonCode",
    "check_resource",
    "ingest_ndjson",
]
