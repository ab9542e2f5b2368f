"""Retry timing, safe request descriptions and HTTP-status-to-error mapping for the FHIR client.

Nothing here echoes a response body or a query string: FHIR search parameters and OperationOutcome
diagnostics can hold patient data, so errors name only the method, the URL *path* and the status.
"""

from __future__ import annotations

import email.utils
import random
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from bedside.errors import (
    AuthenticationFailed,
    BedsideError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StoreError,
    StoreUnavailable,
)

# Statuses worth another attempt: rate limiting and server-side failures. 501 Not Implemented and
# 505 HTTP Version Not Supported are 5xx answers that no retry can change.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_PERMANENT_5XX = frozenset({501, 505})

# OperationOutcome issue codes come from a fixed FHIR value set; anything else is not repeated.
_ISSUE_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")
_MAX_OUTCOME_BYTES = 64 * 1024
ParamValue = str | int | float | Sequence[str]
FHIR_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return the delay in seconds that a ``Retry-After`` header asks for, or ``None``.

    Args:
        value: The header value: delay-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current time as a POSIX timestamp (for the HTTP-date form).

    Returns:
        A delay of at least 0 seconds, or ``None`` when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "GMT" was implied.
        return None
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Return an exponential backoff delay with jitter for the given retry attempt (0-based).

    The delay is drawn uniformly from ``[d/2, d]`` where ``d = min(cap, base * 2**attempt)``
    ("equal jitter"), so concurrent clients spread out but never retry immediately.
    """
    ceiling = min(cap, base * (2.0 ** min(attempt, 30)))
    return ceiling / 2.0 + rng.random() * ceiling / 2.0


def describe(method: str, url: httpx.URL | str) -> str:
    """Return ``"METHOD /path"`` for an error message: the path only, never the query string."""
    return f"{method} {httpx.URL(str(url)).path or '/'}"


def issue_codes(response: httpx.Response) -> list[str]:
    """Return the ``issue.code`` values of an OperationOutcome body (never its diagnostics text).

    The response must already be read; anything but a small JSON OperationOutcome gives ``[]``.
    """
    content = response.content
    if not content or len(content) > _MAX_OUTCOME_BYTES:
        return []
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    issues = body.get("issue")
    if not isinstance(issues, list):
        return []
    codes: list[str] = []
    for issue in issues:
        code = issue.get("code") if isinstance(issue, dict) else None
        if isinstance(code, str) and _ISSUE_CODE.match(code) and code not in codes:
            codes.append(code)
    return codes


def is_transient(response: httpx.Response) -> bool:
    """Return whether a response says "try again later" (429/5xx, or an issue code 'transient')."""
    status = response.status_code
    if status in RETRY_STATUSES or (status >= 500 and status not in _PERMANENT_5XX):
        return True
    return response.status_code >= 400 and "transient" in issue_codes(response)


def error_for_status(response: httpx.Response, method: str, *, attempts: int = 1) -> BedsideError:
    """Build the bedside error for a failed response, naming method, path and status only.

    Args:
        response: The (read) failed response.
        method: The HTTP method used.
        attempts: How many attempts were made, for the message when retries ran out.

    Returns:
        ``AuthenticationFailed`` (401), ``PermissionDenied`` (403), ``NotFound`` (404/410),
        ``StoreUnavailable`` (429/5xx after retries) or ``InvalidInput`` (other 4xx).
    """
    status = response.status_code
    target = describe(method, response.request.url)
    codes = issue_codes(response)
    outcome = f" (OperationOutcome issue codes: {', '.join(codes)})" if codes else ""
    details: dict[str, Any] = {"status": status, "request": target, "issue_codes": codes}
    if status == 401:
        return AuthenticationFailed(
            f"The FHIR server refused {target} with 401 Unauthorized{outcome}. "
            "Pass a valid bearer token (token=... / --token) and check that it has not expired.",
            details=details,
        )
    if status == 403:
        return PermissionDenied(
            f"The FHIR server refused {target} with 403 Forbidden{outcome}. "
            "The token is valid but lacks the scopes for this request; ask the server's "
            "administrator for read access (e.g. system/*.read).",
            details=details,
        )
    if status in (404, 410):
        return NotFound(
            f"The FHIR server answered {status} for {target}{outcome}: it does not exist "
            "(or no longer exists). Check the base URL, resource type or export job.",
            details=details,
        )
    if status == 501:
        return InvalidInput(
            f"The FHIR server does not implement {target} (501 Not Implemented){outcome}. Check "
            "its CapabilityStatement: not every server supports $export or every search.",
            details=details,
        )
    if is_transient(response):
        details["attempts"] = attempts
        return StoreUnavailable(
            f"The FHIR server answered {status} for {target}{outcome} and kept failing after "
            f"{attempts} attempt(s). Try again later or raise max_retries.",
            details=details,
        )
    return InvalidInput(
        f"The FHIR server rejected {target} with {status}{outcome}. "
        "Check the request parameters against the server's CapabilityStatement.",
        details=details,
    )


def check_range(name: str, value: float, *, minimum: float) -> None:
    """Refuse a FhirClient setting below its minimum."""
    if value < minimum:
        raise InvalidInput(
            f"FhirClient {name} must be at least {minimum:g}; got {value!r}.",
            details={"field": name},
        )


def instant(value: str | datetime | None) -> str | None:
    """Return ``_since`` as a FHIR instant string, refusing naive datetimes and bad strings."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(
                "since must be timezone-aware (FHIR instants carry a zone); "
                "use e.g. datetime(2024, 1, 1, tzinfo=UTC).",
                details={"field": "since"},
            )
        return value.isoformat()
    if not FHIR_INSTANT.match(value):
        raise InvalidInput(
            f"since must be a FHIR instant such as 2024-01-01T00:00:00Z; got {value!r}.",
            details={"field": "since"},
        )
    return value


def query(params: Mapping[str, ParamValue] | None) -> list[tuple[str, str]] | None:
    """Flatten search parameters to pairs; a sequence value repeats the parameter."""
    if params is None:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, str | int | float):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(item)) for item in value)
    return pairs


def json_object(response: httpx.Response, method: str) -> dict[str, Any]:
    """Parse a JSON object body or raise ``StoreError`` (naming the path, not the body)."""
    target = describe(method, response.request.url)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise StoreError(
            f"The FHIR server answered {target} ({response.status_code}) with a body that is not "
            "a JSON object.",
            details={"request": target, "status": response.status_code},
        )
    return body


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """Return the Bundle's ``link[relation=next].url``, or ``None`` on the last page."""
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def same_origin(url: httpx.URL, base: httpx.URL) -> bool:
    """Return whether two URLs share scheme, host and port (where the token may go)."""
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
