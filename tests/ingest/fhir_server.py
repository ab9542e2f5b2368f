"""A small FHIR R4 test server (Starlette) for the FHIR client tests.

It serves deterministic synthetic data it generates itself (a few Patients, their heart-rate
Observations, one Group) with the protocol's real status codes and headers:

- ``GET /fhir/{type}``: searchset Bundles paged by ``_count`` with ``link[relation=next]``.
- ``GET /fhir/$export``, ``/fhir/Patient/$export``, ``/fhir/Group/{id}/$export``: kick-off, 202 +
  ``Content-Location`` (needs ``Prefer: respond-async``; honours ``_type``, ``_since``,
  ``_outputFormat``).
- ``GET /fhir/jobs/{id}``: 202 + ``X-Progress`` + ``Retry-After`` while running, then a 200
  manifest; 404 once deleted. ``DELETE /fhir/jobs/{id}``: 202, and the job is forgotten.
- ``GET /fhir/files/{job}/{name}``: NDJSON, with or without ``Range`` support.

Failure modes are knobs on :class:`ServerConfig` that a test sets before it runs the client: queued
error statuses per endpoint (429 storms, a 500 mid-poll), truncated files (connection closed early,
a Content-Length lie, a clean end mid-line), corrupt lines, a resume at the wrong bytes, manifest
error entries, bearer-token
checks and ``requiresAccessToken``. Every request is recorded in :attr:`ServerState.log`.

Error bodies carry OperationOutcome diagnostics with fake PHI (:data:`PHI_MARKER`) so tests can
prove the client never repeats them.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

PHI_MARKER = "Jane Synthetic-Doe MRN 4455667"
TRANSACTION_TIME = "2026-01-01T00:00:00.000Z"
GROUP_ID = "grp-1"
FHIR_JSON = "application/fhir+json"
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")

Truncation = Literal[
    "close", "short_length", "cut", "lines", "corrupt_first", "corrupt_middle", "bad_resume"
]


# -- synthetic data ------------------------------------------------------------------------------


def make_patients(n: int = 7, seed: int = 7) -> list[dict[str, Any]]:
    """Return ``n`` deterministic synthetic Patients."""
    rng = random.Random(seed)
    given = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ira"]
    family = ["Stone", "Rivers", "Marsh", "Vale", "Brook", "Field"]
    patients = []
    for i in range(n):
        patients.append(
            {
                "resourceType": "Patient",
                "id": f"pat-{i + 1}",
                "meta": {"lastUpdated": f"2025-0{1 + i % 6}-15T08:00:00Z"},
                "identifier": [
                    {"system": "urn:example:mrn", "value": f"MRN{rng.randrange(10**6, 10**7)}"}
                ],
                "name": [{"family": rng.choice(family), "given": [rng.choice(given)]}],
                "gender": rng.choice(["female", "male"]),
                "birthDate": f"{rng.randrange(1940, 2005)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}",
            }
        )
    return patients


def make_observations(
    patients: list[dict[str, Any]], per_patient: int = 3, seed: int = 11
) -> list[dict[str, Any]]:
    """Return deterministic heart-rate Observations (LOINC 8867-4), ``per_patient`` each."""
    rng = random.Random(seed)
    observations = []
    for patient in patients:
        for k in range(per_patient):
            observations.append(
                {
                    "resourceType": "Observation",
                    "id": f"obs-{patient['id']}-{k + 1}",
                    "meta": {"lastUpdated": patient["meta"]["lastUpdated"]},
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{patient['id']}"},
                    "effectiveDateTime": f"2025-03-0{1 + k}T1{k}:00:00Z",
                    "valueQuantity": {
                        "value": rng.randrange(55, 130),
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
            )
    return observations


def to_ndjson(resources: Iterable[dict[str, Any]]) -> bytes:
    """Serialise resources as NDJSON (one resource per line, each line newline-terminated)."""
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def outcome(code: str, *, severity: str = "error") -> dict[str, Any]:
    """Return an OperationOutcome whose diagnostics hold fake PHI (it must never be echoed)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": f"Failed for {PHI_MARKER}"}],
    }


# -- state ---------------------------------------------------------------------------------------


@dataclass
class ServerConfig:
    """Per-test behaviour of the server (reset before each test)."""

    token: str | None = None  # when set, API endpoints answer 401 without this bearer token
    page_size: int = 3
    paging_loop: bool = False  # the second page's next link points to itself
    slow_seconds: float = 0.0  # search waits this long before answering (timeout tests)
    polls_before_ready: int = 2  # 202 answers before the manifest
    retry_after: str | None = "1"  # on 202 polls and queued 429/503; "date:N" = HTTP-date now+N
    # Queued statuses per endpoint ("search", "kickoff", "poll", "delete", "file:<name>");
    # each request pops one; None means "answer normally this time".
    fail: dict[str, list[int | None]] = field(default_factory=dict)
    requires_access_token: bool = False
    range_support: bool = True
    # file name -> queued FileResponse modes, one popped per request (None: send it whole).
    truncate: dict[str, list[Truncation | None]] = field(default_factory=dict)
    with_errors: bool = False  # add an OperationOutcome error file to the manifest
    manifest_counts: bool = True
    observation_files: int = 2  # Observations are split over this many files
    final_newline: bool = True  # False: files end without the last line's newline


@dataclass
class RequestRecord:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    authorization: str | None
    range: str | None
    prefer: str | None
    accept: str | None


@dataclass
class Job:
    """One export job."""

    job_id: str
    request_url: str
    files: dict[str, tuple[str, bytes, int]]  # name -> (resource type, content, resources)
    error_files: dict[str, bytes]
    polls: int = 0


class ServerState:
    """Everything the server knows: data, config, jobs and the request log."""

    def __init__(self) -> None:
        self.patients = make_patients()
        self.observations = make_observations(self.patients)
        self.group_members = [p["id"] for p in self.patients[:4]]
        self.config = ServerConfig()
        self.jobs: dict[str, Job] = {}  # live jobs (a DELETE removes one)
        self.created_jobs: dict[str, Job] = {}  # every job this test created, for assertions
        self.deleted_jobs: list[str] = []
        self.log: list[RequestRecord] = []
        self._next_job = 0

    def reset(self) -> None:
        """Forget jobs, the log and any per-test configuration."""
        self.config = ServerConfig()
        self.jobs.clear()
        self.created_jobs.clear()
        self.deleted_jobs.clear()
        self.log.clear()
        self._next_job = 0

    def requests(self, method: str, path_part: str) -> list[RequestRecord]:
        """Return the logged requests of a method whose path contains ``path_part``."""
        return [r for r in self.log if r.method == method and path_part in r.path]

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Return every resource of a type."""
        if resource_type == "Patient":
            return self.patients
        if resource_type == "Observation":
            return self.observations
        return []

    def file_content(self, job_id: str, name: str) -> bytes:
        """Return the exact bytes the server serves for an export file (even after a DELETE)."""
        job = self.created_jobs[job_id]
        if name in job.files:
            return job.files[name][1]
        return job.error_files[name]

    def new_job_id(self) -> str:
        """Return a fresh job id."""
        self._next_job += 1
        return f"job-{self._next_job}"


@dataclass(frozen=True)
class RunningFhirServer:
    """A FHIR test server reachable over TCP (what the ``fhir_server`` fixture returns)."""

    base_url: str  # e.g. http://127.0.0.1:54321/fhir
    state: ServerState


# -- helpers -------------------------------------------------------------------------------------


def _fhir(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=FHIR_JSON)


def _retry_after(config: ServerConfig) -> dict[str, str]:
    value = config.retry_after
    if value is None:
        return {}
    if value.startswith("date:"):
        value = email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
    return {"Retry-After": value}


def _failure(state: ServerState, key: str) -> Response | None:
    queue = state.config.fail.get(key)
    if not queue:
        return None
    status = queue.pop(0)
    if status is None:
        return None
    headers = _retry_after(state.config) if status in (429, 503) else {}
    code = {429: "throttled", 503: "transient", 500: "exception"}.get(status, "processing")
    return _fhir(outcome(code), status, headers)


def _unauthorised(request: Request, state: ServerState, *, required: bool) -> Response | None:
    if not required or state.config.token is None:
        return None
    if request.headers.get("authorization") == f"Bearer {state.config.token}":
        return None
    return _fhir(outcome("login"), 401, {"WWW-Authenticate": 'Bearer realm="fhir"'})


def _log(request: Request, state: ServerState) -> None:
    state.log.append(
        RequestRecord(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            authorization=request.headers.get("authorization"),
            range=request.headers.get("range"),
            prefer=request.headers.get("prefer"),
            accept=request.headers.get("accept"),
        )
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


# -- endpoints -----------------------------------------------------------------------------------


async def search(request: Request) -> Response:
    """Answer a search with one page of a searchset Bundle."""
    state: ServerState = request.app.state.fhir
    _log(request, state)
    if (denied := _unauthorised(request, state, required=True)) is not None:
        return denied
    if state.config.slow_seconds:
        await asyncio.sleep(state.config.slow_seconds)
    if (failed := _failure(state, "search")) is not None:
        return failed
    resource_type = request.path_params["type"]
    if resource_type not in ("Patient", "Observation"):
        return _fhir(outcome("not-supported"), 404)
    matches = state.resources(resource_type)
    subject = request.query_params.get("subject")
    if subject is not None:
        matches = [r for r in matches if r.get("subject", {}).get("reference") == subject]
    count = int(request.query_params.get("_count", state.config.page_size))
    offset = int(request.query_params.get("_offset", "0"))
    page = matches[offset : offset + count]
    links = [{"relation": "self", "url": str(request.url)}]
    if offset + count < len(matches):
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]
        query.append(("_offset", str(offset + count)))
        next_url = f"{_base(request)}/{resource_type}?{urlencode(query)}"
        if state.config.paging_loop and offset > 0:
            next_url = str(request.url)  # a broken server: the page links to itself
        links.append({"relation": "next", "url": next_url})
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{_base(request)}/{resource_type}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page
        ],
    }
    return _fhir(bundle)


async def kick_off(request: Request) -> Response:
    """Start an export job: 202 + Content-Location."""
    state: ServerState = request.app.state.fhir
    _log(request, state)
    if (denied := _unauthorised(request, state, required=True)) is not None:
        return denied
    if (failed := _failure(state, "kickoff")) is not None:
        return failed
    if request.headers.get("prefer") != "respond-async":
        return _fhir(outcome("invalid"), 400)
    if FHIR_JSON not in (request.headers.get("accept") or ""):
        return _fhir(outcome("invalid"), 400)
    output_format = request.query_params.get("_outputFormat")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        return _fhir(outcome("not-supported"), 400)
    group_id = request.path_params.get("group_id")
    members: set[str] | None = None
    if group_id is not None:
        if group_id != GROUP_ID:
            return _fhir(outcome("not-found"), 404)
        members = set(state.group_members)
    types_param = request.query_params.get("_type")
    types = types_param.split(",") if types_param else ["Patient", "Observation"]
    since = request.query_params.get("_since")

    def keep(resource: dict[str, Any]) -> bool:
        if since is not None and resource["meta"]["lastUpdated"] <= since:
            return False
        if members is None:
            return True
        owner = (
            resource["id"]
            if resource["resourceType"] == "Patient"
            else (resource["subject"]["reference"].split("/", 1)[1])
        )
        return owner in members

    files: dict[str, tuple[str, bytes, int]] = {}  # name -> (type, content, resources)
    for resource_type in types:
        selected = [r for r in state.resources(resource_type) if keep(r)]
        parts = state.config.observation_files if resource_type == "Observation" else 1
        size = -(-len(selected) // parts) if selected else 0
        for n in range(parts):
            chunk = selected[n * size : (n + 1) * size]
            if chunk:
                content = to_ndjson(chunk)
                if not state.config.final_newline:
                    content = content[:-1]
                files[f"{resource_type}.{n + 1}.ndjson"] = (resource_type, content, len(chunk))
    error_files = {}
    if state.config.with_errors:
        error_files["errors.ndjson"] = to_ndjson(
            [outcome("not-found"), outcome("processing"), outcome("not-found")]
        )
    job = Job(state.new_job_id(), str(request.url), files, error_files)
    state.jobs[job.job_id] = job
    state.created_jobs[job.job_id] = job
    return _fhir(
        outcome("informational", severity="information"),
        202,
        {"Content-Location": f"{_base(request)}/jobs/{job.job_id}"},
    )


async def job_status(request: Request) -> Response:
    """Poll (GET) or cancel (DELETE) an export job."""
    state: ServerState = request.app.state.fhir
    _log(request, state)
    if (denied := _unauthorised(request, state, required=True)) is not None:
        return denied
    job = state.jobs.get(request.path_params["job_id"])
    if request.method == "DELETE":
        if (failed := _failure(state, "delete")) is not None:
            return failed
        if job is None:
            return _fhir(outcome("not-found"), 404)
        del state.jobs[job.job_id]
        state.deleted_jobs.append(job.job_id)
        return _fhir(outcome("informational", severity="information"), 202)
    if (failed := _failure(state, "poll")) is not None:
        return failed
    if job is None:
        return _fhir(outcome("not-found"), 404)
    job.polls += 1
    if job.polls <= state.config.polls_before_ready:
        percent = int(100 * job.polls / (state.config.polls_before_ready + 1))
        return Response(
            status_code=202,
            headers={"X-Progress": f"{percent}% complete", **_retry_after(state.config)},
        )
    base = _base(request)
    manifest = {
        "transactionTime": TRANSACTION_TIME,
        "request": job.request_url,
        "requiresAccessToken": state.config.requires_access_token,
        "output": [
            {
                "type": resource_type,
                "url": f"{base}/files/{job.job_id}/{name}",
                **({"count": count} if state.config.manifest_counts else {}),
            }
            for name, (resource_type, _, count) in job.files.items()
        ],
        "error": [
            {"type": "OperationOutcome", "url": f"{base}/files/{job.job_id}/{name}"}
            for name in job.error_files
        ],
    }
    expires = email.utils.formatdate(time.time() + 3600, usegmt=True)
    return JSONResponse(manifest, headers={"Expires": expires})


async def export_file(request: Request) -> Response:
    """Serve one NDJSON file, honouring Range when enabled, with the configured truncation."""
    state: ServerState = request.app.state.fhir
    _log(request, state)
    if (
        denied := _unauthorised(request, state, required=state.config.requires_access_token)
    ) is not None:
        return denied
    job_id, name = request.path_params["job_id"], request.path_params["name"]
    if (failed := _failure(state, f"file:{name}")) is not None:
        return failed
    job = state.jobs.get(job_id)
    if job is None or (name not in job.files and name not in job.error_files):
        return _fhir(outcome("not-found"), 404)
    content = state.file_content(job_id, name)
    status, start, headers = 200, 0, {}
    if state.config.range_support:
        headers["Accept-Ranges"] = "bytes"
        wanted = request.headers.get("range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(content):
                return Response(
                    status_code=416, headers={"Content-Range": f"bytes */{len(content)}"}
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
    body = content[start:]
    planned = state.config.truncate.get(name)
    mode = planned.pop(0) if planned else None
    return FileResponse(body, status, headers, mode)


def cut_point(body: bytes) -> int:
    """Return where a truncated transfer of ``body`` stops: near the middle, inside a line."""
    cut = max(1, len(body) // 2)
    return cut + 1 if body[cut - 1 : cut] == b"\n" else cut


class FileResponse(Response):
    """An NDJSON body sent honestly or broken in one of the ways real transfers break.

    Modes (the cut is :func:`cut_point`, always inside a line): ``close`` announces the full
    Content-Length, sends up to the cut and drops the connection; ``short_length`` announces and
    sends only up to the cut (a Content-Length lie, cleanly framed); ``cut`` sends up to the cut
    with chunked framing and ends cleanly; ``lines`` sends the first half of the lines, chunked,
    ending cleanly on a line boundary; ``corrupt_first`` / ``corrupt_middle`` garble the first /
    the middle line; ``bad_resume`` answers a Range request with the bytes 7 further on under the
    right Content-Range (a server whose file changed or whose ranges are broken).
    """

    def __init__(
        self, body: bytes, status: int, headers: dict[str, str], mode: Truncation | None
    ) -> None:
        super().__init__(body, status, headers=headers, media_type=NDJSON)
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        half = cut_point(body)
        if self.mode == "lines":
            half = body.index(b"\n", len(body) // 2) + 1
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        if self.mode in (None, "corrupt_first", "corrupt_middle", "bad_resume"):
            if self.mode == "corrupt_first":
                body = b"<html>" + body[6:]
            elif self.mode == "corrupt_middle":
                middle = body.index(b"\n", len(body) // 2) + 1
                body = body[:middle] + b"{not json" + body[middle + 9 :]
            elif self.mode == "bad_resume" and self.status_code == 206:
                body = body[7:]
            headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            return
        if self.mode == "close":
            headers.append((b"content-length", str(len(body)).encode()))
        elif self.mode == "short_length":
            headers.append((b"content-length", str(half).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        if self.mode == "close":
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await asyncio.sleep(0.05)  # let the bytes reach the client before the connection drops
            return  # uvicorn closes the connection: the response never completes
        await send({"type": "http.response.body", "body": body[:half]})


def create_app(state: ServerState) -> Starlette:
    """Return the test server's ASGI app bound to ``state``."""
    app = Starlette(
        routes=[
            Route("/fhir/$export", kick_off, methods=["GET"]),
            Route("/fhir/Patient/$export", kick_off, methods=["GET"]),
            Route("/fhir/Group/{group_id}/$export", kick_off, methods=["GET"]),
            Route("/fhir/jobs/{job_id}", job_status, methods=["GET", "DELETE"]),
            Route("/fhir/files/{job_id}/{name}", export_file, methods=["GET"]),
            Route("/fhir/{type}", search, methods=["GET"]),
        ]
    )
    app.state.fhir = state
    return app
