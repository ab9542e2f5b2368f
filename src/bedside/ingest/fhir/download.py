"""Bulk Data ``$export`` manifests, resumable NDJSON downloads and the export state file.

Layout of a destination folder (file names come from the manifest's order and resource types, never
from URLs)::

    dest/bedside-export.json              request, status URL, manifest, every finished file
    dest/Patient.001.ndjson               output[] files, numbered per type
    dest/Observation.001.ndjson.part      a download in progress (resumed with HTTP Range)
    dest/errors/OperationOutcome.001.ndjson   error[] files
    dest/deleted/Bundle.001.ndjson        deleted[] files

A file is only renamed from ``.part`` once the transfer is proven whole: the byte count matches
``Content-Length``, the last line is complete and newline-terminated, the first and last lines and
every line a resumed range was spliced into parse as the announced resource type, and the line
count matches the manifest's ``count`` (when given). Anything else is retried (resumed when the
bytes so far are sound, restarted when they are not) and finally raised as an error — never
accepted. Single malformed lines in the middle of a file are the NDJSON ingest's business (it
quarantines them line by line), not a reason to fail the export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson

from bedside.errors import BedsideError, IntegrityError, StoreUnavailable
from bedside.ingest.fhir import _http
from bedside.ingest.fhir.manifest import (
    ExportErrorFile,
    ExportManifest,
    ExportProgress,
    ExportResult,
    ManifestEntry,
)
from bedside.ingest.fhir.state import ExportState

if TYPE_CHECKING:
    from bedside.ingest.fhir.client import FhirClient

logger = logging.getLogger(__name__)

FileKind = Literal["output", "error", "deleted"]
_SUBFOLDER: dict[FileKind, str] = {"output": "", "error": "errors", "deleted": "deleted"}
_ISSUE_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@dataclass(frozen=True, slots=True)
class _Planned:
    kind: FileKind
    entry: ManifestEntry
    relpath: str


def _plan(manifest: ExportManifest) -> list[_Planned]:
    numbers: Counter[tuple[str, str]] = Counter()
    plan: list[_Planned] = []
    for kind, entries in (
        ("output", manifest.output),
        ("error", manifest.error),
        ("deleted", manifest.deleted),
    ):
        for entry in entries:
            numbers[(kind, entry.type)] += 1
            name = f"{entry.type}.{numbers[(kind, entry.type)]:03d}.ndjson"
            sub = _SUBFOLDER[kind]  # type: ignore[index]
            plan.append(_Planned(kind, entry, f"{sub}/{name}" if sub else name))  # type: ignore[arg-type]
    return plan


def download_export(
    client: FhirClient,
    manifest: ExportManifest,
    dest: Path,
    *,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Download every output, error and deleted file of ``manifest`` into ``dest``.

    Files recorded complete in ``dest/bedside-export.json`` (and still the recorded size on disk)
    are skipped; a ``.part`` file is resumed with ``Range`` (or downloaded again if the server
    ignores ranges). The bearer token is sent only when the manifest's ``requiresAccessToken`` is
    true.

    Raises:
        Conflict: If ``dest`` belongs to another export.
        IntegrityError: If a file stays truncated/corrupt after ``client.max_retries`` retries.
        StoreUnavailable: If a file's download keeps failing at the network level or with 5xx.
        AuthenticationFailed, PermissionDenied, NotFound: For 401/403/404 on a file.
    """
    dest.mkdir(parents=True, exist_ok=True)
    state = ExportState.for_manifest(dest, manifest)
    state.save()
    plan = _plan(manifest)
    done = {"files": 0, "bytes": 0}
    skipped = 0

    def emit(phase: Literal["downloading", "done"], file_total: int | None = None) -> None:
        if on_progress is not None:
            on_progress(
                ExportProgress(
                    phase=phase,
                    files_done=done["files"],
                    files_total=len(plan),
                    bytes_done=done["bytes"],
                    file_bytes_total=file_total,
                )
            )

    def tick(size: int, file_total: int | None) -> None:
        done["bytes"] += size
        emit("downloading", file_total)

    emit("downloading")
    for item in plan:
        final = dest / item.relpath
        record = state.files.get(item.relpath)
        if (
            record is not None
            and record.get("url") == item.entry.url
            and final.is_file()
            and final.stat().st_size == record.get("bytes")
        ):
            skipped += 1
            done["files"] += 1
            emit("downloading")
            continue
        if record is not None:
            logger.warning(
                "%s was recorded complete but changed on disk; downloading again", item.relpath
            )
            state.files.pop(item.relpath)
        state.files[item.relpath] = _download_file(
            client, item, dest, with_token=manifest.requires_access_token, tick=tick
        )
        state.save()
        done["files"] += 1
        logger.info(
            "downloaded %s (%d resources, %d of %d files)",
            item.relpath,
            state.files[item.relpath]["lines"],
            done["files"],
            len(plan),
        )
        emit("downloading")
    emit("done")
    return _result(dest, manifest, plan, state, skipped=skipped, bytes_downloaded=done["bytes"])


def _result(
    dest: Path,
    manifest: ExportManifest,
    plan: list[_Planned],
    state: ExportState,
    *,
    skipped: int,
    bytes_downloaded: int,
) -> ExportResult:
    files: dict[str, list[Path]] = {}
    counts: dict[str, int] = {}
    errors: list[ExportErrorFile] = []
    deleted: list[Path] = []
    for item in plan:
        record = state.files[item.relpath]
        path = dest / item.relpath
        if item.kind == "output":
            files.setdefault(item.entry.type, []).append(path)
            counts[item.entry.type] = counts.get(item.entry.type, 0) + int(record["lines"])
        elif item.kind == "error":
            errors.append(ExportErrorFile(path, int(record["lines"]), dict(record["issue_codes"])))
        else:
            deleted.append(path)
    return ExportResult(
        dest=dest,
        transaction_time=manifest.transaction_time,
        request=manifest.request,
        files={key: tuple(value) for key, value in files.items()},
        counts=counts,
        errors=tuple(errors),
        deleted_files=tuple(deleted),
        files_skipped=skipped,
        bytes_downloaded=bytes_downloaded,
    )


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(
        self,
        make_error: Callable[[int], BedsideError],
        *,
        restart: bool,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__("retry")
        self.make_error = make_error
        self.restart = restart
        self.response = response


def _integrity(relpath: str, problem: str) -> Callable[[int], BedsideError]:
    def make(attempts: int) -> BedsideError:
        return IntegrityError(
            f"Export file {relpath}: {problem}; still wrong after {attempts} attempt(s). The "
            "partial data is kept as a .part file and a rerun resumes it; if this persists the "
            "server is sending a broken file.",
            details={"file": relpath, "attempts": attempts},
        )

    return make


def _download_file(
    client: FhirClient,
    item: _Planned,
    dest: Path,
    *,
    with_token: bool,
    tick: Callable[[int, int | None], None],
) -> dict[str, Any]:
    final = dest / item.relpath
    part = final.with_name(final.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    url = httpx.URL(item.entry.url)
    junctions: list[int] = []  # offsets where this call appended a resumed range to the .part
    attempt = 0
    while True:
        try:
            server_says_complete = _fetch(
                client,
                url,
                part,
                relpath=item.relpath,
                with_token=with_token,
                tick=tick,
                junctions=junctions,
            )
            record = _verify(
                part, item, junctions=junctions, allow_unterminated=server_says_complete
            )
            os.replace(part, final)
            return record
        except _Retry as retry:
            if attempt >= client.max_retries:
                raise retry.make_error(attempt + 1) from None
            if retry.restart:
                part.unlink(missing_ok=True)
                junctions.clear()
            delay = client._retry_delay(retry.response, attempt)
            logger.info(
                "download of %s failed; retry %d of %d in %.2f s",
                item.relpath,
                attempt + 1,
                client.max_retries,
                delay,
            )
            client._sleep(delay)
            attempt += 1


def _fetch(
    client: FhirClient,
    url: httpx.URL,
    part: Path,
    *,
    relpath: str,
    with_token: bool,
    tick: Callable[[int, int | None], None],
    junctions: list[int],
) -> bool:
    """Fetch (the rest of) one file into ``part``; return True if a 416 says it is all there."""
    offset = part.stat().st_size if part.exists() else 0
    headers = (
        client._headers("application/fhir+ndjson", url, token_for_any_origin=True)
        if with_token
        else {"Accept": "application/fhir+ndjson"}
    )
    headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets into the file itself
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with client._http.stream("GET", url, headers=headers, follow_redirects=True) as response:
            status = response.status_code
            if status == 416 and offset:
                total = _content_range(response.headers.get("Content-Range"))[2]
                if total == offset:
                    return True
                raise _Retry(_integrity(relpath, "the server refused to resume it"), restart=True)
            if status not in (200, 206):
                response.read()
                if _http.is_transient(response):
                    raise _Retry(
                        lambda n: _http.error_for_status(response, "GET", attempts=n),
                        restart=False,
                        response=response,
                    )
                raise _http.error_for_status(response, "GET")
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            if status == 206:
                start = _content_range(response.headers.get("Content-Range"))[0]
                if start != offset or encoded or not offset:
                    raise _Retry(
                        _integrity(relpath, "the server resumed it at the wrong byte offset"),
                        restart=True,
                    )
                mode = "ab"
                junctions.append(offset)
            else:
                mode = "wb"  # no Range support: the whole file again
                junctions.clear()
            declared = None if encoded else _int(response.headers.get("Content-Length"))
            received = 0
            with part.open(mode) as fh:
                for chunk in response.iter_bytes() if encoded else response.iter_raw():
                    fh.write(chunk)
                    received += len(chunk)
                    tick(len(chunk), declared)
            if declared is not None and received != declared:
                raise _Retry(
                    _integrity(relpath, f"received {received} of {declared} announced bytes"),
                    restart=False,
                )
    except httpx.TransportError as exc:
        reason = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
        where = _http.describe("GET", url)

        def unavailable(attempts: int) -> BedsideError:
            return StoreUnavailable(
                f"Downloading export file {relpath} ({where}) kept failing ({reason}) after "
                f"{attempts} attempt(s). The partial file is kept; rerun to resume.",
                details={"file": relpath, "attempts": attempts},
            )

        raise _Retry(unavailable, restart=False) from exc
    return False


def _verify(
    part: Path, item: _Planned, *, junctions: Sequence[int], allow_unterminated: bool
) -> dict[str, Any]:
    """Check that a downloaded file arrived whole; return its state record.

    This checks the *transfer*, not every resource (the NDJSON ingest quarantines bad lines
    one by one): the last line is complete and newline-terminated, the first line, the last line
    and every line a resumed range was spliced into parse as the announced resource type, and the
    number of non-blank lines matches the manifest's ``count``. A cut-off last line is resumed;
    anything else starts the file again.
    """
    expected = item.entry.type
    size = part.stat().st_size
    pending = sorted(j for j in junctions if 0 < j < size)
    digest = hashlib.sha256()
    lines = 0
    codes: Counter[str] = Counter()
    start = 0
    with part.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            end = start + len(raw)
            digest.update(raw)
            is_last = end == size
            spliced = False
            while pending and pending[0] < end:
                spliced = spliced or pending[0] > start  # a junction inside this line
                pending.pop(0)
            body = raw.strip()
            if body:
                lines += 1
                if is_last and not raw.endswith(b"\n"):
                    _check_unterminated(body, number, item, allow_unterminated)
                if lines == 1 or is_last or spliced or item.kind == "error":
                    resource = _parse_line(body, number, item, spliced=spliced)
                    if item.kind == "error":
                        for issue in resource.get("issue") or ():
                            code = issue.get("code") if isinstance(issue, dict) else None
                            if isinstance(code, str) and _ISSUE_CODE.match(code):
                                codes[code] += 1
            start = end
    if item.entry.count is not None and lines != item.entry.count:
        raise _Retry(
            _integrity(
                item.relpath,
                f"it holds {lines} resources but the manifest announces {item.entry.count}",
            ),
            restart=True,
        )
    return {
        "url": item.entry.url,
        "kind": item.kind,
        "type": expected,
        "bytes": size,
        "lines": lines,
        "sha256": digest.hexdigest(),
        "issue_codes": dict(sorted(codes.items())),
    }


def _check_unterminated(body: bytes, number: int, item: _Planned, allowed: bool) -> None:
    """Refuse a last line without newline: cut off (resume) unless the server says it is whole."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Retry(
            _integrity(item.relpath, f"the last line ({number}) is cut off (truncated)"),
            restart=False,
        ) from None
    if not allowed:
        raise _Retry(
            _integrity(item.relpath, f"the last line ({number}) has no newline (truncated)"),
            restart=False,
        )


def _parse_line(body: bytes, number: int, item: _Planned, *, spliced: bool) -> dict[str, Any]:
    """Parse one checked line; a bad one means the file (or a resumed splice) is not sound."""
    where = "the line joining a resumed range" if spliced else f"line {number}"
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Retry(_integrity(item.relpath, f"{where} is not valid JSON"), restart=True) from None
    if not isinstance(resource, dict) or resource.get("resourceType") != item.entry.type:
        raise _Retry(
            _integrity(item.relpath, f"{where} is not a {item.entry.type} resource"),
            restart=True,
        )
    return resource


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    match = _CONTENT_RANGE.match(value.strip()) if value else None
    if match is None:
        return None, None, None
    start, end, total = match.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None
