"""The single exception hierarchy of bedside.

Every error a user can cause or meet is one of these classes. Each class carries a stable ``code``
(a slug used in JSON errors, CLI output and docs) and the HTTP status an interface returns for it,
so callers catch classes, never inspect codes::

    BedsideError(Exception)                       code, http_status
    ├─ ConfigError                                bad or missing setting / project
    ├─ InvalidInput(BedsideError, ValueError)     bad request, record or argument
    │  ├─ PipelineFileError                       the pipeline file is invalid (has issues)
    │  └─ ExpressionError                         an expression outside the safe grammar
    ├─ NotFound(BedsideError, LookupError)        a named thing is missing
    ├─ Conflict                                   the request contradicts the current state
    │  ├─ AlreadyExists
    │  └─ InvalidTransition                       a lifecycle step whose preconditions are not met
    ├─ PermissionDenied                           the actor may not do this
    │  ├─ AuthenticationFailed                    wrong/missing password or token
    │  └─ SignatureRefused                        an e-signature rule (Part 11) refuses the signing
    ├─ IntegrityError                             tamper evidence: a hash, chain or signature fails
    ├─ ModelError                                 a served model failed to score a request
    └─ StoreError                                 the backend failed
       ├─ StoreUnavailable
       └─ SchemaOutOfDate

Messages say what happened, what was expected and what was found, and the next step. They never
contain patient data or secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BedsideError(Exception):
    """Base class of every bedside error."""

    code: ClassVar[str] = "bedside_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error body: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(BedsideError):
    """A setting or the project folder is missing or invalid."""

    code = "config_error"
    http_status = 500


class InvalidInput(BedsideError, ValueError):
    """A request, record, file or argument is not what was expected."""

    code = "invalid_input"
    http_status = 422


class PipelineFileError(InvalidInput):
    """The pipeline file does not validate; ``issues`` lists every problem found."""

    code = "invalid_pipeline_file"

    def __init__(self, message: str, *, issues: list[Any] | None = None) -> None:
        self.issues = list(issues or [])
        super().__init__(message, details={"issues": [str(i) for i in self.issues]})


class ExpressionError(InvalidInput):
    """An expression is outside the safe gate/trigger grammar."""

    code = "invalid_expression"


class NotFound(BedsideError, LookupError):
    """A named model, version, user or record does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(BedsideError):
    """The request contradicts the current state."""

    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict):
    """Something with this name already exists."""

    code = "already_exists"


class InvalidTransition(Conflict):
    """A lifecycle transition whose preconditions are not met."""

    code = "invalid_transition"


class PermissionDenied(BedsideError):
    """The actor is not allowed to do this."""

    code = "permission_denied"
    http_status = 403


class AuthenticationFailed(PermissionDenied):
    """A password or token is wrong, missing, expired or disabled."""

    code = "authentication_failed"
    http_status = 401


class SignatureRefused(PermissionDenied):
    """A Part 11 e-signature rule refuses this signing."""

    code = "signature_refused"


class IntegrityError(BedsideError):
    """Tamper evidence: a hash chain, record hash or signature does not verify."""

    code = "integrity_error"
    http_status = 500


class ModelError(BedsideError):
    """A served model raised while scoring a request (the request itself was valid)."""

    code = "model_error"
    http_status = 503


class StoreError(BedsideError):
    """The storage backend failed."""

    code = "store_error"
    http_status = 503


class StoreUnavailable(StoreError):
    """The storage backend cannot be reached."""

    code = "store_unavailable"


class SchemaOutOfDate(StoreError):
    """The database schema is older (or newer) than this version of bedside expects."""

    code = "schema_out_of_date"


ALL_ERRORS: tuple[type[BedsideError], ...] = (
    BedsideError,
    ConfigError,
    InvalidInput,
    PipelineFileError,
    ExpressionError,
    NotFound,
    Conflict,
    AlreadyExists,
    InvalidTransition,
    PermissionDenied,
    AuthenticationFailed,
    SignatureRefused,
    IntegrityError,
    ModelError,
    StoreError,
    StoreUnavailable,
    SchemaOutOfDate,
)
