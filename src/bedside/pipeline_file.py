"""Read a pipeline file from disk (the one bit of I/O around :mod:`bedside.domain.specfile`)."""

from __future__ import annotations

import logging
from pathlib import Path

from bedside.domain.specfile import (
    MAX_PIPELINE_BYTES,
    PipelineFile,
    SpecIssue,
    load_pipeline_bytes,
)
from bedside.errors import NotFound, PipelineFileError

__all__ = ["load_pipeline_file"]

logger = logging.getLogger(__name__)


def _refuse(source: str, expected: str, found: str, fix: str) -> PipelineFileError:
    issue = SpecIssue(source, None, None, "", expected, found, fix)
    return PipelineFileError(f"{source} cannot be read: {found}. Fix: {fix}", issues=[issue])


def load_pipeline_file(path: Path | str) -> PipelineFile:
    """Read and validate the pipeline file at ``path``.

    The digest in the result covers the exact bytes on disk; relative paths inside the file
    (such as an ``ndjson_folder`` source) are relative to the file's folder.

    Raises:
        NotFound: there is no file at ``path``.
        PipelineFileError: it is not a readable UTF-8 file, or does not validate (``issues``
            lists every problem, with line numbers).
    """
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise _refuse(
            source,
            "a pipeline YAML file",
            "a folder",
            f"name the file inside it, e.g. {path / 'pipeline.yaml'}",
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PIPELINE_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(
            f"Pipeline file {source!r} does not exist. Fix: check the path, or start from "
            "examples/sepsis/pipeline.yaml",
            details={"path": source},
        ) from None
    except PermissionError:
        raise _refuse(
            source, "a readable file", "no permission to read it", "check the file's permissions"
        ) from None
    except OSError as exc:
        raise _refuse(
            source, "a readable file", exc.strerror or "a read error", "check the path"
        ) from None
    pipeline_file = load_pipeline_bytes(data, source=source)
    logger.info("loaded pipeline file %s (sha256 %s)", source, pipeline_file.content_sha256[:12])
    return pipeline_file
