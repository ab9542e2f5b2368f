"""The dashboard's pages (GET) and actions (POST) under ``/ui``.

Handlers parse the request, call :class:`~bedside.service.Platform` (in a worker thread: it talks
to the database and may train-evaluate), and render a template. They hold no rules of their own:
Platform checks every permission and lifecycle rule and records every refusal in the ledger.
Pages that only read check their permission through ``Platform._authorised`` too, so a refused
page view is in the ledger like a refused action.

Every response is HTML: a user's mistake is shown on the page (``role=alert``), a missing
permission is a 403 page naming it, and nothing a user can send gives a 500.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from bedside.dashboard import views
from bedside.dashboard.permissions import PAGE_PERMISSIONS
from bedside.dashboard.sessions import COOKIE_NAME, COOKIE_PATH, SessionKeys
from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, Purpose, User
from bedside.domain.permissions import Permission, permissions_for
from bedside.errors import (
    AuthenticationFailed,
    BedsideError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SignatureRefused,
)
from bedside.service import Platform

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOGIN_COOKIE: Final = "bedside_login"
_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
#: The validation report is a self-contained file with inline styles and figures.
_REPORT_CSP: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)
_FLASH: Final = {
    "validate": "Validation recorded.",
    "deploy-shadow": "Deployed as shadow.",
    "promote": "Promoted to production.",
    "retire": "Retired.",
    "rollback": "Rolled back: production returned to the previous version.",
    "threshold": "Threshold set; the operating point was recomputed.",
    "sign": "Signature recorded.",
    "verify": "Ledger verified just now.",
    "user-added": "User added.",
    "grant": "Role granted.",
    "revoke": "Role revoked.",
    "disable": "User disabled.",
    "enable": "User enabled (and unlocked).",
}
_MEANINGS: Final = tuple(m.value for m in Meaning)
_PURPOSES: Final = tuple(p.value for p in Purpose)


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in user of a request, their session token and what they may do."""

    user: User
    token: str
    csrf: str
    granted: frozenset[Permission]

    def may(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.granted


class Refusal(Exception):
    """A response to send instead of the page (403, redirect to sign-in)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


class Dashboard:
    """The dashboard's handlers over one Platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.keys = SessionKeys(platform.keys.signing_key())
        self.env = Environment(
            loader=PackageLoader("bedside.dashboard", "templates"),
            autoescape=select_autoescape(["html"], default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["number"] = views.number
        self.env.filters["estimate"] = views.estimate
        self.env.globals["ACTIONS"] = views.ACTIONS

    # -- rendering -----------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        done = request.query_params.get("done", "")
        context.setdefault("flash", _FLASH.get(done, ""))
        context.setdefault("alert", "")
        html = self.env.get_template(template).render(
            session=session, path=request.url.path, **context
        )
        response = HTMLResponse(html, status_code=status)
        self._headers(response)
        if session is not None:
            self._set_cookie(request, response, self.keys.seal(session.token))
        return response

    @staticmethod
    def _headers(response: Response, csp: str = _CSP) -> None:
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"

    @staticmethod
    def _set_cookie(
        request: Request,
        response: Response,
        value: str,
        *,
        name: str = COOKIE_NAME,
        max_age: int | None = None,
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def forbidden(
        self, request: Request, session: Session | None, error: BedsideError | str
    ) -> HTMLResponse:
        message = error if isinstance(error, str) else error.message
        permission = "" if isinstance(error, str) else str(error.details.get("permission", ""))
        return self.render(
            request,
            "error.html",
            session,
            status=403,
            title="Not permitted",
            message=message,
            permission=permission,
        )

    def not_found(self, request: Request, session: Session | None, message: str) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            session,
            status=404,
            title="Not found",
            message=message,
            permission="",
        )

    # -- sessions ------------------------------------------------------------------------------

    async def session(self, request: Request) -> Session | None:
        """Return the request's signed-in session, or None."""
        value = request.cookies.get(COOKIE_NAME)
        opened = self.keys.open(value)
        if opened is None:
            idle = self.keys.is_idle(value)
            if idle is not None:
                await run_in_threadpool(self._revoke_quietly, idle)
            return None
        try:
            user = await run_in_threadpool(self.platform.authenticate_token, opened.token)
        except AuthenticationFailed:
            return None
        granted = await run_in_threadpool(self._granted, user)
        return Session(user, opened.token, self.keys.csrf_token(opened.token), granted)

    def _granted(self, user: User) -> frozenset[Permission]:
        with self.platform._read() as tx:
            return permissions_for(self.platform._kinds(tx, user).values())

    def _revoke_quietly(self, token: str) -> None:
        try:
            user = self.platform.authenticate_token(token)
            self.platform.revoke_token(user, token)
        except BedsideError:
            pass

    async def page_session(self, request: Request) -> Session:
        """Return the session of a page request, or raise a redirect to the sign-in page."""
        session = await self.session(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
            raise Refusal(response)
        return session

    async def post_session(self, request: Request) -> tuple[Session, FormData]:
        """Return the session and form of a POST, or raise a 403 (no session, bad CSRF token)."""
        form = await request.form()
        session = await self.session(request)
        if session is None:
            raise Refusal(
                self.forbidden(
                    request,
                    None,
                    "You are not signed in (or your session timed out). Sign in "
                    "again, then repeat the action.",
                )
            )
        if not self.keys.check_csrf(session.token, _text(form, "csrf_token")):
            raise Refusal(
                self.forbidden(
                    request,
                    session,
                    "The form's security token (CSRF) is missing or wrong; "
                    "nothing was done. Reload the page and try again.",
                )
            )
        return session, form

    async def require(self, request: Request, session: Session, pattern: str) -> None:
        """Check the permission of page ``pattern`` through Platform (a refusal is recorded)."""
        permission = PAGE_PERMISSIONS[pattern]
        if permission is None:
            return

        def check() -> None:
            with self.platform._authorised(
                session.user, permission, "dashboard", request.url.path[:200]
            ):
                pass

        try:
            await run_in_threadpool(check)
        except PermissionDenied as exc:
            raise Refusal(self.forbidden(request, session, exc)) from None

    async def call(
        self, request: Request, session: Session, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run a Platform call in a thread; a PermissionDenied becomes the 403 page."""
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except SignatureRefused:
            raise
        except PermissionDenied as exc:
            raise Refusal(self.forbidden(request, session, exc)) from None

    # -- sign in / out -------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self._login(request, next_url=_safe_next(request.query_params.get("next")))

    def _login(
        self,
        request: Request,
        *,
        next_url: str,
        alert: str = "",
        username: str = "",
        status: int = 200,
    ) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "login.html",
            None,
            status=status,
            alert=alert,
            next_url=next_url,
            username=username,
            csrf_token=self.keys.csrf_token("login:" + nonce),
        )
        self._set_cookie(request, response, nonce, name=LOGIN_COOKIE, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        next_url = _safe_next(_text(form, "next"))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not self.keys.check_csrf("login:" + nonce, _text(form, "csrf_token")):
            return self.forbidden(
                request,
                None,
                "The sign-in form's security token (CSRF) is missing or wrong. "
                "Reload the sign-in page and try again.",
            )
        username = _text(form, "username").strip()[:64]
        password = _text(form, "password")
        try:
            user = await run_in_threadpool(self.platform.authenticate, username, password)
        except AuthenticationFailed:
            locked = await run_in_threadpool(self._is_locked, username)
            alert = (
                "This account is locked after too many failed sign-in attempts. Ask an admin "
                "to enable it again."
                if locked
                else "Wrong username or password."
            )
            return self._login(request, next_url=next_url, alert=alert, username=username)
        token, _ = await run_in_threadpool(
            self.platform.create_token, user, name="dashboard session"
        )
        response = RedirectResponse(next_url, 303)
        self._set_cookie(request, response, self.keys.seal(token))
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        return response

    def _is_locked(self, username: str) -> bool:
        with self.platform._read() as tx:
            user = tx.accounts.find_user(username)
        return user is not None and user.is_locked

    async def logout(self, request: Request) -> Response:
        session, _ = await self.post_session(request)
        await run_in_threadpool(self.platform.revoke_token, session.user, session.token)
        response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH)
        return response

    # -- pages ---------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        session = await self.page_session(request)
        await self.require(request, session, "/ui/")
        statuses = await run_in_threadpool(self.platform.status)
        alerts = await self._latest_alerts(session)
        return self.render(request, "models.html", session, statuses=statuses, alerts=alerts)

    async def _latest_alerts(self, session: Session) -> dict[str, str]:
        if not session.may(Permission.READ_AUDIT):
            return {}
        events = await run_in_threadpool(
            self.platform.list_audit_events, session.user, action_prefix="monitoring.alert"
        )
        latest: dict[str, str] = {}
        for event in events:
            after = event.after or {}
            latest[event.subject_id] = (
                f"{event.occurred_at[:16].replace('T', ' ')}: {after.get('metric', 'metric')} "
                f"{views.number(after.get('value'))} below {views.number(after.get('threshold'))}"
            )
        return latest

    async def model(
        self,
        request: Request,
        name: str,
        *,
        alert: str = "",
        status: int = 200,
        session: Session | None = None,
    ) -> Response:
        session = session or await self.page_session(request)
        await self.require(request, session, "/ui/models/{name}")
        found = await self._model_status(name)
        if found is None:
            return self.not_found(request, session, f"No model named {name!r}.")
        history = None
        if session.may(Permission.READ_AUDIT):
            history = await self.call(request, session, self.platform.history, session.user, name)
        return self.render(
            request,
            "model.html",
            session,
            status=status,
            alert=alert,
            model=found,
            history=history,
        )

    async def _model_status(self, name: str) -> Any:
        statuses = await run_in_threadpool(self.platform.status)
        return next((s for s in statuses if s.model.name == name), None)

    async def monitoring(self, request: Request, name: str) -> Response:
        session = await self.page_session(request)
        await self.require(request, session, "/ui/models/{name}/monitoring")
        found = await self._model_status(name)
        if found is None:
            return self.not_found(request, session, f"No model named {name!r}.")
        events = await self.call(
            request,
            session,
            self.platform.list_audit_events,
            session.user,
            subject_type="model",
            subject_id=name,
            action_prefix="monitoring.",
        )
        view = views.monitoring_view(name, events)
        trends = [
            (metric, view.series(metric), views.sparkline(view.series(metric)))
            for metric in view.metric_names
        ]
        return self.render(
            request,
            "monitoring.html",
            session,
            model=found,
            view=view,
            trends=trends,
        )

    async def _version(self, request: Request, session: Session, name: str, number: str) -> Any:
        if not number.isdigit():
            raise Refusal(self.not_found(request, session, f"{number!r} is not a version number."))
        try:
            return await run_in_threadpool(self.platform.get_version, f"{name}@{int(number)}")
        except (NotFound, InvalidInput):
            raise Refusal(
                self.not_found(request, session, f"No version {name}@{number}.")
            ) from None

    async def version(
        self,
        request: Request,
        name: str,
        number: str,
        *,
        alert: str = "",
        status: int = 200,
        session: Session | None = None,
    ) -> Response:
        session = session or await self.page_session(request)
        await self.require(request, session, "/ui/versions/{name}/{number}")
        version = await self._version(request, session, name, number)
        signatures = await run_in_threadpool(self.platform.verify_signatures, version.ref)
        actions = [
            (slug, label)
            for slug, (label, states) in views.ACTIONS.items()
            if version.state in states and session.may(_ACTION_PERMISSION[slug])
        ]
        return self.render(
            request,
            "version.html",
            session,
            status=status,
            alert=alert,
            version=version,
            lineage=views.lineage(version),
            gates=views.gate_rows(version),
            fairness=views.fairness_table(version),
            operating=views.operating_point(version),
            signatures=signatures,
            actions=actions,
            documents=_document_kinds(),
            has_report=_has_evidence(version),
        )

    async def review(
        self,
        request: Request,
        name: str,
        number: str,
        *,
        alert: str = "",
        status: int = 200,
        session: Session | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        session = session or await self.page_session(request)
        await self.require(request, session, "/ui/versions/{name}/{number}/review")
        version = await self._version(request, session, name, number)
        split, rows = views.operating_points(version)
        meanings = [
            m
            for m in _MEANINGS
            if session.may(
                Permission.SIGN_REVIEW
                if m in ("approved", "rejected")
                else Permission.SIGN_RESPONSIBILITY
            )
        ] or list(_MEANINGS)
        return self.render(
            request,
            "review.html",
            session,
            status=status,
            alert=alert,
            version=version,
            split=split,
            rows=rows,
            columns=views.OPERATING_COLUMNS,
            operating=views.operating_point(version),
            meanings=meanings,
            purposes=_PURPOSES,
            form=form or {},
            roles=sorted(session.user.roles),
        )

    async def report(self, request: Request, name: str, number: str) -> Response:
        session = await self.page_session(request)
        await self.require(request, session, "/ui/versions/{name}/{number}/report")
        version = await self._version(request, session, name, number)
        if not _has_evidence(version):
            return self.not_found(
                request,
                session,
                f"{version.ref} has no validation report: it has no training "
                "evidence (it was not trained with bedside train).",
            )
        return self.render(request, "report.html", session, version=version)

    async def report_raw(self, request: Request, name: str, number: str) -> Response:
        session = await self.page_session(request)
        await self.require(request, session, "/ui/versions/{name}/{number}/report")
        version = await self._version(request, session, name, number)
        if not _has_evidence(version):
            return self.not_found(request, session, f"{version.ref} has no validation report.")
        try:
            html_path, _ = await run_in_threadpool(
                self.platform.write_validation_report, version.ref
            )
        except BedsideError as exc:
            return self.not_found(request, session, exc.message)
        response = HTMLResponse(Path(html_path).read_text(encoding="utf-8"))
        self._headers(response, _REPORT_CSP)
        return response

    async def document(self, request: Request, name: str, number: str, kind: str) -> Response:
        session = await self.page_session(request)
        await self.require(request, session, "/ui/versions/{name}/{number}/documents/{kind}")
        version = await self._version(request, session, name, number)
        render_document = _document_renderer()
        if render_document is None:
            return self.not_found(
                request,
                session,
                "Documents are not available in this installation; "
                "run: bedside docs " + version.ref,
            )
        try:
            produced = await self.call(
                request,
                session,
                render_document,
                self.platform,
                session.user,
                version.ref,
                kind,
                "html",
            )
        except (NotFound, InvalidInput) as exc:
            return self.not_found(request, session, exc.message)
        response = HTMLResponse(_document_text(produced))
        self._headers(response, _REPORT_CSP)
        return response

    async def audit(self, request: Request, *, session: Session | None = None) -> Response:
        session = session or await self.page_session(request)
        await self.require(request, session, "/ui/audit")
        result = await run_in_threadpool(self.platform.verify_audit)
        events = await self.call(request, session, self.platform.list_audit_events, session.user)
        recent = list(reversed(events[-200:]))
        return self.render(
            request,
            "audit.html",
            session,
            result=result,
            events=recent,
            total=len(events),
            summary=views.event_summary,
        )

    async def users(
        self,
        request: Request,
        *,
        alert: str = "",
        status: int = 200,
        session: Session | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        session = session or await self.page_session(request)
        await self.require(request, session, "/ui/admin/users")
        people = await self.call(request, session, self.platform.list_users, session.user)
        roles = await run_in_threadpool(self.platform.list_roles)
        return self.render(
            request,
            "users.html",
            session,
            status=status,
            alert=alert,
            people=people,
            roles=roles,
            form=form or {},
        )

    async def unknown(self, request: Request, rest: str) -> Response:
        session = await self.page_session(request)
        return self.not_found(request, session, f"There is no page /ui/{rest}.")

    # -- actions -------------------------------------------------------------------------------

    async def version_action(self, request: Request, name: str, number: str, slug: str) -> Response:
        session, form = await self.post_session(request)
        version = await self._version(request, session, name, number)
        reason = _text(form, "reason").strip()[:500] or "from the dashboard"
        try:
            if slug == "validate":
                await self.call(
                    request, session, self.platform.validate_version, session.user, version.ref
                )
            else:
                action = {
                    "deploy-shadow": Action.DEPLOY_SHADOW,
                    "promote": Action.PROMOTE,
                    "retire": Action.RETIRE,
                }[slug]
                await self.call(
                    request,
                    session,
                    self.platform.transition,
                    session.user,
                    version.ref,
                    action,
                    reason=reason,
                )
        except _REFUSED as exc:
            return await self.version(
                request,
                name,
                number,
                alert=exc.message,
                status=exc.http_status,
                session=session,
            )
        return _see(f"/ui/versions/{quote(name)}/{version.version}?done={slug}")

    async def rollback(self, request: Request, name: str) -> Response:
        session, form = await self.post_session(request)
        try:
            await self.call(
                request,
                session,
                self.platform.rollback,
                session.user,
                name,
                reason=_text(form, "reason")[:500],
            )
        except _REFUSED as exc:
            return await self.model(
                request, name, alert=exc.message, status=exc.http_status, session=session
            )
        return _see(f"/ui/models/{quote(name)}?done=rollback")

    async def threshold(self, request: Request, name: str, number: str) -> Response:
        session, form = await self.post_session(request)
        version = await self._version(request, session, name, number)
        text = _text(form, "threshold").strip()
        try:
            try:
                value = float(text)
            except ValueError:
                raise InvalidInput(
                    f"The threshold must be a number between 0 and 1; got {text[:20]!r}."
                ) from None
            await self.call(
                request, session, self.platform.set_threshold, session.user, version.ref, value
            )
        except _REFUSED as exc:
            return await self.review(
                request,
                name,
                number,
                alert=exc.message,
                status=exc.http_status,
                session=session,
            )
        return _see(f"/ui/versions/{quote(name)}/{version.version}/review?done=threshold")

    async def sign(self, request: Request, name: str, number: str) -> Response:
        session, form = await self.post_session(request)
        version = await self._version(request, session, name, number)
        meaning_text = _text(form, "meaning")
        purpose_text = _text(form, "purpose") or Purpose.CLINICAL_REVIEW.value
        comment = _text(form, "comment")[:2000]
        role = _text(form, "role") or None
        kept = {"meaning": meaning_text, "purpose": purpose_text, "comment": comment}
        try:
            if meaning_text not in _MEANINGS or purpose_text not in _PURPOSES:
                raise InvalidInput(
                    f"Choose a meaning ({', '.join(_MEANINGS)}) and a purpose "
                    f"({', '.join(_PURPOSES)})."
                )
            meaning = Meaning(meaning_text)
            await run_in_threadpool(
                lambda: self.platform.sign(
                    session.user.username,
                    _text(form, "password"),
                    version.ref,
                    meaning=meaning,
                    purpose=Purpose(purpose_text),
                    role=role,
                    comment=comment,
                )
            )
        except (SignatureRefused, *_REFUSED) as exc:
            needed = (
                Permission.SIGN_REVIEW
                if meaning_text in ("approved", "rejected")
                else Permission.SIGN_RESPONSIBILITY
            )
            if isinstance(exc, SignatureRefused) and not session.may(needed):
                return self.forbidden(
                    request,
                    session,
                    PermissionDenied(
                        f"User {session.user.username!r} may not sign with meaning "
                        f"{meaning_text!r}: it needs the permission {needed.value}. "
                        "The refusal is recorded in the audit ledger.",
                        details={"permission": needed.value},
                    ),
                )
            return await self.review(
                request,
                name,
                number,
                alert=f"Signature refused: {exc.message}",
                status=exc.http_status,
                session=session,
                form=kept,
            )
        return _see(f"/ui/versions/{quote(name)}/{version.version}?done=sign")

    async def verify(self, request: Request) -> Response:
        session, _ = await self.post_session(request)
        await self.require(request, session, "/ui/audit/verify")
        return _see("/ui/audit?done=verify")

    async def add_user(self, request: Request) -> Response:
        session, form = await self.post_session(request)
        roles = [r for r in form.getlist("roles") if isinstance(r, str) and r]
        kept = {"username": _text(form, "username"), "full_name": _text(form, "full_name")}
        try:
            await self.call(
                request,
                session,
                self.platform.add_user,
                session.user,
                _text(form, "username").strip(),
                full_name=_text(form, "full_name"),
                password=_text(form, "password"),
                roles=roles,
            )
        except _REFUSED as exc:
            return await self.users(
                request, alert=exc.message, status=exc.http_status, session=session, form=kept
            )
        return _see("/ui/admin/users?done=user-added")

    async def user_action(self, request: Request, username: str, slug: str) -> Response:
        session, form = await self.post_session(request)
        try:
            if slug in ("grant", "revoke"):
                fn = self.platform.grant_role if slug == "grant" else self.platform.revoke_role
                await self.call(
                    request, session, fn, session.user, username, _text(form, "role").strip()
                )
            else:
                await self.call(
                    request,
                    session,
                    self.platform.set_user_active,
                    session.user,
                    username,
                    active=slug == "enable",
                    reason=_text(form, "reason")[:500],
                )
        except _REFUSED as exc:
            return await self.users(
                request, alert=exc.message, status=exc.http_status, session=session
            )
        return _see(f"/ui/admin/users?done={slug}")


#: What an action may refuse with: the page is shown again with the reason (409/422/404).
_REFUSED: Final = (Conflict, InvalidInput, NotFound)

_ACTION_PERMISSION: Final = {
    "validate": Permission.VALIDATE_VERSION,
    "deploy-shadow": Permission.DEPLOY,
    "promote": Permission.PROMOTE,
    "retire": Permission.RETIRE,
}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _see(url: str) -> Response:
    return RedirectResponse(url, 303)


def _safe_next(value: str | None) -> str:
    """Return a local /ui path to go to after sign-in (never another site)."""
    if not value:
        return "/ui/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/ui") or value.startswith("//"):
        return "/ui/"
    if value.startswith("/ui/login") or "\\" in value:
        return "/ui/"
    return value


def _has_evidence(version: Any) -> bool:
    return isinstance(version.evidence.get("evaluation"), dict)


def _document_renderer() -> Callable[..., Any] | None:
    try:
        import bedside.documents as documents  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    renderer = getattr(documents, "render_document", None)
    return renderer if callable(renderer) else None


#: Document kinds offered when ``bedside.documents`` does not list its own.
_DEFAULT_KINDS: Final = ("model-card", "chai", "hti1", "pccp", "tripod", "annex-iv")


def _document_kinds() -> list[str]:
    """Return the document kinds to link to, or [] when documents are not available."""
    if _document_renderer() is None:
        return []
    import bedside.documents as documents  # type: ignore[import-not-found,unused-ignore]

    kinds = getattr(documents, "KINDS", None) or getattr(documents, "DOCUMENT_KINDS", None)
    if isinstance(kinds, dict):
        return [str(k) for k in kinds]
    if isinstance(kinds, list | tuple | frozenset | set):
        return sorted(str(k) for k in kinds)
    return list(_DEFAULT_KINDS)


def _document_text(produced: Any) -> str:
    """Return the HTML of what ``render_document`` returned (text, bytes, a path or a pair)."""
    if isinstance(produced, tuple | list) and produced:
        produced = produced[0]
    if isinstance(produced, bytes):
        return produced.decode("utf-8")
    if isinstance(produced, Path):
        return produced.read_text(encoding="utf-8")
    if hasattr(produced, "html"):
        return str(produced.html)
    if hasattr(produced, "text"):
        return str(produced.text)
    return str(produced)


def build_router(platform: Platform) -> APIRouter:
    """Return the router of every ``/ui`` page and action over ``platform``."""
    dash = Dashboard(platform)
    router = APIRouter(include_in_schema=False)

    def add(method: str, path: str, handler: Callable[..., Any]) -> None:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request, **request.path_params)
                return response
            except Refusal as refusal:
                return refusal.response
            except BedsideError as exc:  # a rule not expected here: shown on a page, not a 500
                logger.warning("dashboard %s refused: %s", request.url.path, exc.code)
                session = await dash.session(request)
                return dash.render(
                    request,
                    "error.html",
                    session,
                    status=exc.http_status,
                    title="Not permitted" if isinstance(exc, PermissionDenied) else "Refused",
                    message=exc.message,
                    permission=str(exc.details.get("permission", "")),
                )
            except Exception as exc:  # a fault of ours: an HTML page, the type logged (no values)
                logger.error("dashboard %s failed: %s", request.url.path, type(exc).__name__)
                logger.debug("traceback of the dashboard error", exc_info=exc)
                return dash.render(
                    request,
                    "error.html",
                    None,
                    status=500,
                    title="Something went wrong",
                    message="The dashboard could not show this page; see the server log.",
                    permission="",
                )

        router.add_api_route(path, endpoint, methods=[method], response_class=HTMLResponse)

    def action(slug: str) -> Callable[..., Any]:
        async def handler(request: Request, name: str, number: str) -> Response:
            return await dash.version_action(request, name, number, slug)

        return handler

    def user_action(slug: str) -> Callable[..., Any]:
        async def handler(request: Request, username: str) -> Response:
            return await dash.user_action(request, username, slug)

        return handler

    v = "/ui/versions/{name}/{number}"
    add("GET", "/ui/login", dash.login_page)
    add("POST", "/ui/login", dash.login)
    add("POST", "/ui/logout", dash.logout)
    add("GET", "/ui/", dash.models)
    add("GET", "/ui/models/{name}", dash.model)
    add("POST", "/ui/models/{name}/rollback", dash.rollback)
    add("GET", "/ui/models/{name}/monitoring", dash.monitoring)
    add("GET", v, dash.version)
    for slug in views.ACTIONS:
        add("POST", f"{v}/{slug}", action(slug))
    add("GET", f"{v}/review", dash.review)
    add("POST", f"{v}/threshold", dash.threshold)
    add("POST", f"{v}/sign", dash.sign)
    add("GET", f"{v}/report", dash.report)
    add("GET", f"{v}/report/raw", dash.report_raw)
    add("GET", f"{v}/documents/{{kind}}", dash.document)
    add("GET", "/ui/audit", dash.audit)
    add("POST", "/ui/audit/verify", dash.verify)
    add("GET", "/ui/admin/users", dash.users)
    add("POST", "/ui/admin/users", dash.add_user)
    for slug in ("grant", "revoke", "disable", "enable"):
        add("POST", f"/ui/admin/users/{{username}}/{slug}", user_action(slug))
    add("GET", "/ui/{rest:path}", dash.unknown)
    return router


__all__ = ["Dashboard", "Session", "build_router"]
