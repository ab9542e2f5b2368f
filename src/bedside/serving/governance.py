"""Governance endpoints of the prediction server: status, deploy, promote, sign, roll back, audit.

``/v1/governance/…`` (an :class:`fastapi.APIRouter`, included by
:func:`bedside.serving.app.create_app` when it is given a platform). Every call needs an API token
(``Authorization: Bearer <token>``, made with ``bedside token create``); a missing, unknown or
revoked token is a 401. Every read and change goes through :class:`bedside.service.Platform`,
which checks the token's user's permissions server side and records a refusal in the audit
ledger (403). Platform calls run in a worker thread, so the event loop that answers predictions
never waits for the database.

Answers hold aggregates and governance records only — never a patient-level row.

The ``governance_*`` functions take the platform and the acting user and return JSON-ready
dicts; the routes are thin wrappers around them (the dashboard and the CLI may reuse them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, Query, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, ModelVersion, Purpose, Signature, User
from bedside.domain.permissions import Permission
from bedside.errors import AuthenticationFailed, InvalidInput

__all__ = [
    "PREFIX",
    "ReasonBody",
    "RollbackBody",
    "SignBody",
    "governance_history",
    "governance_models",
    "governance_monitor",
    "governance_rollback",
    "governance_router",
    "governance_sign",
    "governance_transition",
    "governance_verify_audit",
    "governance_version",
]

logger = logging.getLogger(__name__)

PREFIX: Final = "/v1/governance"
_JSON: Final = "application/json"

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "No token, or an unknown or revoked one (`authentication_failed`)."},
    403: {"description": "The token's user may not do this (`permission_denied`); recorded."},
    404: {"description": "No such model or version (`not_found`)."},
    422: {"description": "A bad path, query or body (`invalid_input`), naming each field."},
}
_CHANGE_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **_ERRORS,
    409: {"description": "The lifecycle forbids it now (`invalid_transition`), naming why."},
}


# ---------------------------------------------------------------------------------- bodies


class ReasonBody(BaseModel):
    """Why (recorded in the audit ledger with the change)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000, description="Why; recorded in the audit ledger.")


class RollbackBody(BaseModel):
    """Why production goes back to the previous version (required)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=2000, description="Why (required).")


class SignBody(BaseModel):
    """An e-signature by the token's user, who re-enters their password (21 CFR 11.200)."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(..., min_length=1, max_length=1024, description="Re-authentication.")
    meaning: Meaning = Field(..., description="approved, rejected, reviewed or responsibility.")
    purpose: Purpose = Field(Purpose.CLINICAL_REVIEW, description="clinical_review or promotion.")
    comment: str = Field("", max_length=2000, description="Shown with the signature.")


# --------------------------------------------------------------------- what the routes do


def _check(platform: Any, actor: User, permission: Permission, kind: str, subject: str) -> None:
    """Refuse (and record the refusal) unless ``actor`` may do ``permission``."""
    with platform._authorised(actor, permission, kind, subject):
        pass


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _signature(sig: Signature, problem: str | None) -> dict[str, Any]:
    return {
        "printed_name": sig.printed_name,
        "username": sig.username,
        "role": sig.role,
        "meaning": sig.meaning.value,
        "purpose": sig.purpose.value,
        "signed_at": _time(sig.signed_at),
        "comment": sig.comment,
        "valid": problem is None,
        "problem": problem,
    }


def _version(version: ModelVersion) -> dict[str, Any]:
    evidence = version.evidence
    return {
        "model": version.model_name,
        "version": version.version,
        "ref": version.ref,
        "state": version.state.value,
        "history": [s.value for s in version.history],
        "state_changed_at": _time(version.state_changed_at),
        "created_at": _time(version.created_at),
        "created_by": version.created_by,
        "run_id": version.run_id,
        "pipeline_sha256": version.pipeline_sha256,
        "dataset_digest": evidence.get("dataset_digest"),
        "threshold": evidence.get("threshold"),
        "operating_point": evidence.get("operating_point"),
        "gates": [
            {
                "gate": g.gate,
                "passed": g.passed,
                "recorded_at": _time(g.recorded_at),
                "recorded_by": g.recorded_by,
                "details": g.details,
            }
            for g in version.gate_results
        ],
    }


def governance_models(platform: Any, actor: User) -> dict[str, Any]:
    """Every registered model with its production and shadow version and each version's state."""
    _check(platform, actor, Permission.READ_METRICS, "model", "*")
    models = []
    for entry in platform.status():
        live, shadow = entry.production, entry.shadow
        models.append(
            {
                "name": entry.model.name,
                "description": entry.model.description,
                "production": None if live is None else live.version,
                "shadow": None if shadow is None else shadow.version,
                "versions": [
                    {
                        "version": row.version.version,
                        "state": row.version.state.value,
                        "state_changed_at": _time(row.version.state_changed_at),
                        "review": None
                        if row.review is None
                        else {
                            "have": row.review.have,
                            "need": row.review.need,
                            "signers": list(row.review.signers),
                            "missing_roles": list(row.review.missing_roles),
                        },
                    }
                    for row in entry.versions
                ],
            }
        )
    return {"ok": True, "models": models}


def governance_version(platform: Any, actor: User, name: str, number: int) -> dict[str, Any]:
    """One version: state, gates, threshold and signatures (each verified)."""
    ref = f"{name}@{number}"
    _check(platform, actor, Permission.READ_METRICS, "version", ref)
    version = platform.get_version(ref)
    signatures = [_signature(s, p) for s, p in platform.verify_signatures(ref)]
    return {"ok": True, "version": {**_version(version), "signatures": signatures}}


def governance_transition(
    platform: Any, actor: User, name: str, number: int, action: Action, reason: str = ""
) -> dict[str, Any]:
    """Deploy as shadow, promote or retire a version (the Platform checks role and lifecycle)."""
    version = platform.transition(actor, f"{name}@{number}", action, reason=reason)
    return {"ok": True, "version": _version(version)}


def governance_sign(
    platform: Any, actor: User, name: str, number: int, body: SignBody
) -> dict[str, Any]:
    """Sign a version as the token's user, with password re-entry."""
    ref = f"{name}@{number}"
    sig = platform.sign(
        actor.username,
        body.password,
        ref,
        meaning=body.meaning,
        purpose=body.purpose,
        comment=body.comment,
    )
    state = platform.get_version(ref).state
    return {"ok": True, "signature": _signature(sig, None), "state": state.value}


def governance_rollback(platform: Any, actor: User, name: str, reason: str) -> dict[str, Any]:
    """Return production to the version that served before the current one."""
    version = platform.rollback(actor, name, reason=reason)
    return {"ok": True, "version": _version(version)}


def governance_history(
    platform: Any, actor: User, name: str, at: datetime | None = None
) -> dict[str, Any]:
    """Which version was live (and in shadow) at ``at``, who approved it, and every change."""
    return {"ok": True, **platform.history(actor, name, at=at)}


def governance_monitor(platform: Any, actor: User, name: str) -> dict[str, Any]:
    """Run the monitoring check of ``name`` now; return its summary."""
    _check(platform, actor, Permission.READ_METRICS, "model", name)  # before any other check
    return {"ok": True, "result": platform.monitor(actor, name)}


def governance_verify_audit(platform: Any, actor: User) -> dict[str, Any]:
    """Verify the audit ledger's hash chain and checkpoints."""
    _check(platform, actor, Permission.READ_AUDIT, "audit", "verify")
    result = platform.verify_audit()
    return {"ok": True, "verified": result.ok, "description": result.describe(), **asdict(result)}


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            "Query parameter 'at': expected an ISO 8601 time with a UTC offset, e.g. "
            "2026-03-12T03:00:00+00:00.",
            details={
                "errors": [
                    {
                        "field": "at",
                        "expected": "ISO 8601 time with a UTC offset",
                        "received": "time without a UTC offset"
                        if moment is not None
                        else "string (not an ISO 8601 time)",
                    }
                ],
                "error_count": 1,
            },
        )
    return moment


# --------------------------------------------------------------------------------- routes


def governance_router(platform: Any, *, on_change: Callable[[], object] | None = None) -> APIRouter:
    """Return the governance endpoints over ``platform``.

    Args:
        platform: the :class:`bedside.service.Platform` every call goes through.
        on_change: called (in a worker thread) after a deployment changed, so this server
            process serves the new state at once (e.g. a registry sync); a failure is logged.
    """
    router = APIRouter(prefix=PREFIX, tags=["governance"])
    bearer = HTTPBearer(
        auto_error=False,
        description="An API token: `bedside token create --name NAME` prints one.",
    )

    async def user_of(credentials: HTTPAuthorizationCredentials | None) -> User:
        if credentials is None or not credentials.credentials.strip():
            raise AuthenticationFailed(
                "This endpoint needs an API token: send 'Authorization: Bearer <token>' "
                "(create one with: bedside token create --name NAME)."
            )
        user: User = await asyncio.to_thread(
            platform.authenticate_token, credentials.credentials.strip()
        )
        return user

    async def run(call: Callable[..., dict[str, Any]], *args: Any, status: int = 200) -> Response:
        result = await asyncio.to_thread(call, platform, *args)
        return Response(orjson.dumps(result), status_code=status, media_type=_JSON)

    async def changed(response: Response) -> Response:
        if on_change is not None:
            try:
                await asyncio.to_thread(on_change)
            except Exception as exc:  # the change is recorded; the watcher retries the swap
                logger.warning("served models not refreshed after a change: %s", type(exc).__name__)
        return response

    Credentials = Security(bearer)

    @router.get(
        "/models", summary="Every model, its production and shadow version", responses=_ERRORS
    )
    async def models(credentials: HTTPAuthorizationCredentials | None = Credentials) -> Response:
        return await run(governance_models, await user_of(credentials))

    @router.get(
        "/versions/{name}/{number}",
        summary="A version: state, gates, threshold, signatures",
        responses=_ERRORS,
    )
    async def version(
        name: str, number: int, credentials: HTTPAuthorizationCredentials | None = Credentials
    ) -> Response:
        return await run(governance_version, await user_of(credentials), name, number)

    def transition_route(path: str, action: Action, summary: str) -> None:
        @router.post(
            f"/versions/{{name}}/{{number}}/{path}", summary=summary, responses=_CHANGE_ERRORS
        )
        async def transition(
            name: str,
            number: int,
            body: ReasonBody | None = None,
            credentials: HTTPAuthorizationCredentials | None = Credentials,
        ) -> Response:
            actor = await user_of(credentials)
            reason = body.reason if body is not None else ""
            return await changed(
                await run(governance_transition, actor, name, number, action, reason)
            )

        transition.__name__ = f"version_{path.replace('-', '_')}"

    transition_route("deploy-shadow", Action.DEPLOY_SHADOW, "Deploy an approved version as shadow")
    transition_route("promote", Action.PROMOTE, "Promote the shadow version to production")
    transition_route("retire", Action.RETIRE, "Retire a version")

    @router.post(
        "/versions/{name}/{number}/signatures",
        status_code=201,
        summary="Sign a version (password re-entry)",
        responses={
            **_CHANGE_ERRORS,
            403: {"description": "Refused by a Part 11 rule (`signature_refused`, recorded)."},
        },
    )
    async def sign(
        name: str,
        number: int,
        body: SignBody,
        credentials: HTTPAuthorizationCredentials | None = Credentials,
    ) -> Response:
        actor = await user_of(credentials)
        return await changed(await run(governance_sign, actor, name, number, body, status=201))

    @router.post(
        "/models/{name}/rollback",
        summary="Return production to the previous version",
        responses=_CHANGE_ERRORS,
    )
    async def rollback(
        name: str,
        body: RollbackBody,
        credentials: HTTPAuthorizationCredentials | None = Credentials,
    ) -> Response:
        actor = await user_of(credentials)
        return await changed(await run(governance_rollback, actor, name, body.reason))

    @router.get(
        "/models/{name}/history",
        summary="Which version was live at a time, and who approved it",
        responses=_ERRORS,
    )
    async def history(
        name: str,
        at: str | None = Query(None, description="ISO 8601 time with a UTC offset (default: now)"),
        credentials: HTTPAuthorizationCredentials | None = Credentials,
    ) -> Response:
        actor = await user_of(credentials)
        return await run(governance_history, actor, name, _parse_at(at))

    @router.post(
        "/models/{name}/monitor",
        summary="Run the monitoring check now (drift, performance, alerts, trigger)",
        responses=_CHANGE_ERRORS,
    )
    async def monitor(
        name: str, credentials: HTTPAuthorizationCredentials | None = Credentials
    ) -> Response:
        return await run(governance_monitor, await user_of(credentials), name)

    @router.get("/audit/verify", summary="Verify the audit ledger", responses=_ERRORS)
    async def verify(credentials: HTTPAuthorizationCredentials | None = Credentials) -> Response:
        return await run(governance_verify_audit, await user_of(credentials))

    return router
