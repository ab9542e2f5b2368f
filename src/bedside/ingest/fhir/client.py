"""A FHIR R4 REST client: bearer auth, retries with backoff, search paging, Bulk Data ``$export``.

Facts implemented (REGULATORY.md §10.1-10.2): search follows ``Bundle.link[relation=next]`` until
it is absent; ``$export`` is kicked off with ``Prefer: respond-async`` (202 + ``Content-Location``),
polled with backoff (202 + ``X-Progress``/``Retry-After``, 429), completed by a 200 manifest,
downloaded as NDJSON (see :mod:`bedside.ingest.fhir.download`) and cancelled with ``DELETE`` on
the status URL.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from bedside import __version__
from bedside.errors import BedsideError, InvalidInput, StoreError, StoreUnavailable
from bedside.ingest.fhir import _http
from bedside.ingest.fhir.download import download_export
from bedside.ingest.fhir.manifest import (
    ExportManifest,
    ExportProgress,
    ExportRequest,
    ExportResult,
    check_resource_type,
)
from bedside.ingest.fhir.state import ExportState

logger = logging.getLogger(__name__)

ExportLevel = Literal["system", "patient", "group"]
ParamValue = _http.ParamValue
ProgressCallback = Callable[[ExportProgress], None]

FHIR_JSON = "application/fhir+json"


class FhirClient:
    """Talk to one FHIR R4 server: search with paging and Bulk Data ``$export``.

    Every request carries ``Authorization: Bearer <token>`` when a token is given (only to the
    base URL's origin, and to export files when the manifest says ``requiresAccessToken``). 408,
    429 and 5xx answers, timeouts and connection errors are retried up to ``max_retries`` times,
    waiting what ``Retry-After`` asks for (seconds or HTTP-date) or else an exponential backoff
    with jitter capped at ``max_backoff``. Failures raise :mod:`bedside.errors` classes naming the
    method, URL path and status, never a query string or a response body.

    Args:
        base_url: The FHIR base, e.g. ``https://ehr.example.org/fhir``.
        token: A bearer access token, or ``None`` for an open server.
        timeout: Seconds allowed for connecting and for each read/write.
        max_retries: Retries after the first attempt of each request (0 disables retrying).
        backoff: First backoff delay in seconds; it doubles per retry.
        max_backoff: Cap of the computed backoff (a server's ``Retry-After`` is honoured as given).
        transport: An ``httpx`` transport (tests, proxies, custom TLS); default is the network.
        sleep: The function used to wait between attempts and polls.

    Raises:
        InvalidInput: If an argument is out of range or the base URL is not http(s).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = httpx.URL(base_url if base_url.endswith("/") else base_url + "/")
        if base.scheme not in ("http", "https") or not base.host:
            raise InvalidInput(
                "FHIR base URL must be an absolute http(s) URL such as "
                f"https://ehr.example.org/fhir; got scheme {base.scheme!r}.",
                details={"field": "base_url"},
            )
        if base.query:
            raise InvalidInput(
                "FHIR base URL must not carry a query string; pass search parameters to search().",
                details={"field": "base_url"},
            )
        _http.check_range("timeout", timeout, minimum=0.001)
        _http.check_range("max_retries", max_retries, minimum=0)
        _http.check_range("backoff", backoff, minimum=0)
        _http.check_range("max_backoff", max_backoff, minimum=0)
        self._base = base
        self._token = token or None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._sleep = sleep
        self._rng = random.Random()
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            headers={"User-Agent": f"bedside/{__version__}"},
        )

    @property
    def base_url(self) -> str:
        """Return the FHIR base URL (with a trailing slash)."""
        return str(self._base)

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- search -----------------------------------------------------------------------------

    def search(
        self, resource_type: str, params: Mapping[str, ParamValue] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every resource matched by a search, following ``next`` links page by page.

        Args:
            resource_type: The FHIR type searched, e.g. ``"Observation"``.
            params: Search parameters; a sequence value repeats the parameter.

        Yields:
            Each ``Bundle.entry.resource`` (``search.mode = outcome`` entries are skipped).

        Raises:
            InvalidInput: For a malformed resource type or a rejected request (4xx).
            AuthenticationFailed: On 401.
            StoreError: If the server answers something other than a Bundle, a ``next`` link
                repeats a page already fetched (a paging loop) or leaves the server's origin.
            StoreUnavailable: When retries run out.
        """
        check_resource_type(resource_type)
        url = self._base.join(resource_type)
        query: Mapping[str, ParamValue] | None = params
        requested: set[str] = set()
        pages = 0
        while True:
            response = self._request(
                "GET", url, headers=self._headers(FHIR_JSON, url), params=_http.query(query)
            )
            requested.add(str(response.request.url))
            if response.status_code != 200:
                raise _http.error_for_status(response, "GET")
            bundle = _http.json_object(response, "GET")
            if bundle.get("resourceType") != "Bundle":
                raise StoreError(
                    f"The FHIR server answered {_http.describe('GET', url)} with a JSON body that "
                    "is not a Bundle; a search must return a searchset Bundle.",
                    details={"request": _http.describe("GET", url)},
                )
            pages += 1
            for entry in bundle.get("entry") or ():
                if not isinstance(entry, dict):
                    continue
                search = entry.get("search")
                if isinstance(search, dict) and search.get("mode") == "outcome":
                    continue
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    yield resource
            next_link = _http.next_link(bundle)
            if next_link is None:
                logger.debug("search %s finished after %d page(s)", resource_type, pages)
                return
            next_url = response.request.url.join(next_link)
            if str(next_url) in requested:
                raise StoreError(
                    f"Paging loop: page {pages + 1} of a {resource_type} search links back to a "
                    "page already fetched. The server's paging is broken; stopping instead of "
                    "looping forever.",
                    details={"resource_type": resource_type, "page": pages + 1},
                )
            if not _http.same_origin(next_url, self._base):
                raise StoreError(
                    f"Page {pages + 1} of a {resource_type} search links to another server; "
                    "refusing to follow it (and to send the access token there).",
                    details={"resource_type": resource_type, "page": pages + 1},
                )
            url, query = next_url, None

    # -- bulk data $export ------------------------------------------------------------------

    def start_export(
        self,
        level: ExportLevel = "system",
        *,
        group_id: str | None = None,
        types: Sequence[str] | None = None,
        since: str | datetime | None = None,
        output_format: str | None = None,
        type_filters: Sequence[str] | None = None,
    ) -> str:
        """Kick off a Bulk Data export and return its status (polling) URL.

        Args:
            level: ``"system"`` (``/$export``), ``"patient"`` (``/Patient/$export``) or
                ``"group"`` (``/Group/{group_id}/$export``).
            group_id: The Group's id, required for (and only for) ``level="group"``.
            types: Resource types to export (``_type``); all types when omitted.
            since: Only resources changed after this instant (``_since``); a timezone-aware
                datetime or a FHIR instant string.
            output_format: ``_outputFormat``; one of the NDJSON formats (server default if omitted).
            type_filters: ``_typeFilter`` search queries, sent as given.

        Returns:
            The absolute status URL from ``Content-Location``.

        Raises:
            InvalidInput: For bad arguments or a rejected kick-off.
            StoreError: If the server does not answer 202 with a ``Content-Location``.
        """
        request = ExportRequest.build(
            base_url=self.base_url,
            level=level,
            group_id=group_id,
            types=types,
            since=_http.instant(since),
            output_format=output_format,
            type_filters=type_filters,
        )
        return self._kick_off(request)

    def wait_for_export(
        self,
        status_url: str,
        *,
        on_progress: ProgressCallback | None = None,
        max_wait: float | None = None,
    ) -> ExportManifest:
        """Poll an export's status URL until it completes and return the manifest.

        Args:
            status_url: The URL :meth:`start_export` returned.
            on_progress: Called after every poll with the server's ``X-Progress`` text.
            max_wait: Give up after waiting this many seconds in total (``None``: no limit).

        Raises:
            NotFound: If the server no longer knows the job (cancelled or expired).
            StoreUnavailable: If polling keeps failing or ``max_wait`` is exceeded.
            StoreError: If the completion manifest is malformed.
        """
        url = httpx.URL(status_url)
        waited = 0.0
        polls = 0
        while True:
            response = self._request("GET", url, headers=self._headers("application/json", url))
            polls += 1
            if response.status_code == 200:
                manifest = ExportManifest.from_json(
                    _http.json_object(response, "GET"), url=str(url)
                )
                logger.info(
                    "export complete after %d poll(s): %d output file(s), %d error file(s)",
                    polls,
                    len(manifest.output),
                    len(manifest.error),
                )
                return manifest
            if response.status_code != 202:
                raise _http.error_for_status(response, "GET")
            server_progress = (response.headers.get("X-Progress") or "")[:100] or None
            if on_progress is not None:
                on_progress(ExportProgress(phase="waiting", server_progress=server_progress))
            delay = self._retry_delay(response, polls - 1)
            if max_wait is not None and waited + delay > max_wait:
                raise StoreUnavailable(
                    f"The bulk export did not complete within {max_wait:g} s ({polls} polls). "
                    "It is still running on the server; run the export again later to resume "
                    "waiting, or cancel it.",
                    details={"polls": polls, "waited_seconds": waited},
                )
            logger.debug("export in progress (poll %d); next poll in %.2f s", polls, delay)
            self._sleep(delay)
            waited += delay

    def cancel_export(self, status_url: str) -> None:
        """Cancel (or clean up) an export with ``DELETE`` on its status URL.

        Raises:
            NotFound: If the server does not know the job.
        """
        url = httpx.URL(status_url)
        response = self._request("DELETE", url, headers=self._headers(FHIR_JSON, url))
        if response.status_code not in (200, 202, 204):
            raise _http.error_for_status(response, "DELETE")
        logger.info("export job cancelled")

    def download_export(
        self,
        manifest: ExportManifest,
        dest: str | Path,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ExportResult:
        """Download every file of a completed export into ``dest`` (resuming earlier attempts).

        See :func:`bedside.ingest.fhir.download.download_export`.
        """
        return download_export(self, manifest, Path(dest), on_progress=on_progress)

    def export(
        self,
        dest: str | Path,
        level: ExportLevel = "system",
        *,
        group_id: str | None = None,
        types: Sequence[str] | None = None,
        since: str | datetime | None = None,
        output_format: str | None = None,
        type_filters: Sequence[str] | None = None,
        on_progress: ProgressCallback | None = None,
        max_wait: float | None = None,
        delete_when_done: bool = True,
    ) -> ExportResult:
        """Run a whole Bulk Data export into ``dest``: kick off, wait, download; resumable.

        ``dest/bedside-export.json`` records the request, the status URL and each finished file,
        so running the same export into the same folder again picks up where it stopped: it
        keeps polling the same job, skips finished files and resumes partial ones.

        Args:
            dest: The destination folder (created if missing).
            level, group_id, types, since, output_format, type_filters: As :meth:`start_export`.
            on_progress: Called with :class:`ExportProgress` while waiting and downloading.
            max_wait: As :meth:`wait_for_export`.
            delete_when_done: Send ``DELETE`` to the status URL once every file is on disk, so
                the server can free the files.

        Raises:
            Conflict: If ``dest`` holds a different export.
            IntegrityError: If a file stays truncated or corrupt after every retry.
            NotFound, AuthenticationFailed, StoreUnavailable, StoreError: See the other methods.
        """
        folder = Path(dest)
        request = ExportRequest.build(
            base_url=self.base_url,
            level=level,
            group_id=group_id,
            types=types,
            since=_http.instant(since),
            output_format=output_format,
            type_filters=type_filters,
        )
        state = ExportState.open(folder, request)
        if state.manifest is None:
            if state.status_url is None:
                state.status_url = self._kick_off(request)
                state.save()
            else:
                logger.info("resuming the wait for an export started earlier")
            manifest = self.wait_for_export(
                state.status_url, on_progress=on_progress, max_wait=max_wait
            )
            state.manifest = manifest
            state.save()
        result = download_export(self, state.manifest, folder, on_progress=on_progress)
        if delete_when_done and state.status_url is not None and not state.cleaned_up:
            try:
                self.cancel_export(state.status_url)
            except BedsideError as exc:  # the files are safe; a failed clean-up is not fatal
                logger.warning(
                    "could not delete the finished export job on the server: %s", exc.code
                )
            state = ExportState.open(folder, request)
            state.cleaned_up = True
            state.save()
        return result

    # -- internals shared with download.py --------------------------------------------------

    def _kick_off(self, request: ExportRequest) -> str:
        url = self._base.join(request.path)
        headers = self._headers(FHIR_JSON, url)
        headers["Prefer"] = "respond-async"
        response = self._request("GET", url, headers=headers, params=request.query())
        target = _http.describe("GET", url)
        if response.status_code != 202:
            if response.status_code < 300:
                raise StoreError(
                    f"The FHIR server answered {target} with {response.status_code} instead of "
                    "202 Accepted; it does not run $export as an asynchronous request.",
                    details={"status": response.status_code, "request": target},
                )
            raise _http.error_for_status(response, "GET")
        location = response.headers.get("Content-Location")
        if not location:
            raise StoreError(
                f"The FHIR server accepted {target} (202) without a Content-Location header, so "
                "there is no status URL to poll.",
                details={"request": target},
            )
        logger.info("bulk export kicked off (%s)", request.level)
        return str(url.join(location))

    def _headers(
        self, accept: str, url: httpx.URL, *, token_for_any_origin: bool = False
    ) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._token and (token_for_any_origin or _http.same_origin(url, self._base)):
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _retry_delay(self, response: httpx.Response | None, attempt: int) -> float:
        if response is not None:
            asked = _http.parse_retry_after(response.headers.get("Retry-After"), now=time.time())
            if asked is not None:
                return asked
        return _http.backoff_delay(attempt, base=self.backoff, cap=self.max_backoff, rng=self._rng)

    def _request(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; return the first non-transient answer."""
        target = _http.describe(method, url)
        query = httpx.QueryParams(tuple(params)) if params else None
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, url, headers=headers, params=query)
            except httpx.TimeoutException as exc:
                if attempt >= self.max_retries:
                    raise StoreUnavailable(
                        f"{target} timed out after {self.timeout:g} s, {attempt + 1} time(s). The "
                        "FHIR server may be overloaded; try later or raise the timeout.",
                        details={"request": target, "attempts": attempt + 1},
                    ) from exc
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise StoreUnavailable(
                        f"Could not reach the FHIR server for {target} at {url.host}:"
                        f"{url.port or ''} ({type(exc).__name__}) after {attempt + 1} attempt(s). "
                        "Check the base URL and that the server is up.",
                        details={"request": target, "attempts": attempt + 1},
                    ) from exc
            else:
                if not _http.is_transient(response):
                    return response
                if attempt >= self.max_retries:
                    raise _http.error_for_status(response, method, attempts=attempt + 1)
            delay = self._retry_delay(response, attempt)
            logger.info(
                "%s failed (%s); retry %d of %d in %.2f s",
                target,
                response.status_code if response is not None else "network error",
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1
