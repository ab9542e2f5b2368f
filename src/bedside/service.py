"""Platform: the use cases of bedside; the only place that composes stores and writes audit events.

Every state change and the audit event that records it are written in one transaction. A refused
attempt (wrong password, missing permission, a signature rule) is recorded in its own transaction
before the error is raised, so the ledger shows attempts as well as successes.
"""

from __future__ import annotations

import csv
import getpass
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.engine import Connection

from bedside.config import Settings
from bedside.domain import lifecycle
from bedside.domain.ledger import VerifyResult, verify_chain
from bedside.domain.lifecycle import Action, LifecyclePolicy, ReviewStatus, SignatureFact
from bedside.domain.models import (
    ApiToken,
    AuditEvent,
    Checkpoint,
    EventDraft,
    GateResult,
    Meaning,
    ModelVersion,
    PipelineRecord,
    Purpose,
    RegisteredModel,
    Role,
    Signature,
    User,
    VersionState,
)
from bedside.domain.permissions import BUILTIN_ROLES, Permission, RoleKind, is_allowed
from bedside.domain.signatures import (
    check_signing_rules,
    record_sha256,
    seal,
    verify_signature,
)
from bedside.errors import (
    AlreadyExists,
    AuthenticationFailed,
    BedsideError,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    SignatureRefused,
)
from bedside.security import (
    KeyRing,
    check_password_policy,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from bedside.stores.accounts import Accounts
from bedside.stores.audit import AuditLog
from bedside.stores.database import Database
from bedside.stores.registry import ModelRegistry

logger = logging.getLogger(__name__)

_IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def utcnow() -> datetime:
    """Return the server's current time in UTC."""
    return datetime.now(UTC)


def parse_ref(ref: str) -> tuple[str, int]:
    """Split ``name@version`` into its parts.

    Raises:
        InvalidInput: the reference is not ``name@version``.
    """
    name, sep, number = ref.rpartition("@")
    if not sep or not name or not number.isdigit():
        raise InvalidInput(
            f"{ref!r} is not a version reference. Expected NAME@VERSION, e.g. sepsis-prediction@3."
        )
    return name, int(number)


def _check_name(kind: str, value: str) -> None:
    if not value or len(value) > 64 or not set(value) <= _IDENT_CHARS:
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use 1–64 letters, digits, '_', '-' or '.'."
        )


@dataclass
class Tx:
    """The stores, bound to one open transaction."""

    conn: Connection
    accounts: Accounts = field(init=False)
    registry: ModelRegistry = field(init=False)
    audit: AuditLog = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.conn)
        self.registry = ModelRegistry(self.conn)
        self.audit = AuditLog(self.conn)


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """A version with what its sign-off still needs (for ``bedside status``)."""

    version: ModelVersion
    review: ReviewStatus | None
    invalid_signatures: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model, its versions and which are live."""

    model: RegisteredModel
    versions: tuple[VersionStatus, ...]

    @property
    def production(self) -> ModelVersion | None:
        return next(
            (v.version for v in self.versions if v.version.state is VersionState.PRODUCTION), None
        )

    @property
    def shadow(self) -> ModelVersion | None:
        return next(
            (v.version for v in self.versions if v.version.state is VersionState.SHADOW), None
        )


class Platform:
    """The use cases of bedside over one governance database and key ring."""

    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        *,
        clock: Callable[[], datetime] = utcnow,
        lockout_threshold: int = 5,
        hasher: PasswordHasher | None = None,
        home: Path | None = None,
        artifacts_root: Path | None = None,
        alert_webhook_url: str | None = None,
    ) -> None:
        self.database = database
        self.keys = keys
        self._clock = clock
        self.lockout_threshold = lockout_threshold
        # Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile); tests pass a cheaper
        # hasher to stay fast. Verification reads the cost from each stored hash.
        self._hasher = hasher or PasswordHasher()
        # Where the project's files live (work folders, reports) and its artifacts.
        self.home = home
        self.artifacts_root = artifacts_root
        # Where monitoring alerts are POSTed (none: recorded in the ledger and logged only).
        self.alert_webhook_url = alert_webhook_url

    @classmethod
    def from_settings(cls, settings: Settings, *, check_schema: bool = True) -> Platform:
        """Open the project that ``settings`` describe."""
        database = Database(settings.database_url)
        if check_schema:
            database.check_schema()
        return cls(
            database,
            KeyRing(settings.keys_dir),
            lockout_threshold=settings.lockout_threshold,
            home=settings.home,
            artifacts_root=Path(settings.artifacts_url),
            alert_webhook_url=settings.alert_webhook_url,
        )

    # -- plumbing ------------------------------------------------------------------------------

    def now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the platform clock must return timezone-aware times")
        return moment.astimezone(UTC)

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        with self.database.transaction() as conn:
            yield Tx(conn)

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        with self.database.read() as conn:
            yield Tx(conn)

    def _event(
        self,
        tx: Tx,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str = "",
    ) -> AuditEvent:
        event = tx.audit.append(
            EventDraft(
                actor=actor,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
                before=before,
                after=after,
                reason=reason,
            ),
            now=self.now(),
        )
        logger.info("audit #%d %s %s:%s by %s", event.seq, action, subject_type, subject_id, actor)
        return event

    def _record_refusal(
        self, actor: str, action: str, subject_type: str, subject_id: str, error: BedsideError
    ) -> None:
        """Record a refused attempt in its own transaction (it must survive the error)."""
        with self._tx() as tx:
            self._event(
                tx,
                actor,
                action,
                subject_type,
                subject_id,
                after={
                    "refused": error.code,
                    **{k: v for k, v in error.details.items() if k == "rule"},
                },
                reason=error.message,
            )

    def _kinds(self, tx: Tx, user: User) -> dict[str, str]:
        kinds = {}
        for role in user.roles:
            found = tx.accounts.find_role(role)
            if found is not None:
                kinds[role] = found.kind
        return kinds

    def _require(self, tx: Tx, actor: User, permission: Permission, subject: str) -> None:
        fresh = tx.accounts.find_user(actor.username)
        if fresh is None or not fresh.is_active or fresh.is_locked:
            raise PermissionDenied(f"User {actor.username!r} is disabled, locked or unknown.")
        if not is_allowed(self._kinds(tx, fresh).values(), permission):
            raise PermissionDenied(
                f"User {actor.username!r} (roles: {', '.join(sorted(fresh.roles)) or 'none'}) "
                f"may not {permission.value} on {subject}. Ask an admin for a role that may.",
                details={"permission": permission.value},
            )

    @contextmanager
    def _authorised(
        self, actor: User, permission: Permission, subject_type: str, subject_id: str
    ) -> Iterator[Tx]:
        """Open a transaction for ``actor`` doing ``permission``; record a refusal if denied."""
        try:
            with self._tx() as tx:
                self._require(tx, actor, permission, f"{subject_type} {subject_id}")
                yield tx
        except PermissionDenied as exc:
            self._record_refusal(
                actor.username, f"denied.{permission.value}", subject_type, subject_id, exc
            )
            raise

    # -- project set-up ------------------------------------------------------------------------

    def initialise(self, *, admin_username: str, admin_full_name: str, admin_password: str) -> User:
        """Create the schema, the built-in roles and the first admin of a new project.

        Raises:
            AlreadyExists: the project already has users.
        """
        _check_name("User name", admin_username)
        check_password_policy(admin_password)
        self.database.upgrade()
        self.keys.create()
        with self._tx() as tx:
            if tx.accounts.list_users():
                raise AlreadyExists(
                    "This project already has users; it is initialised. Add more "
                    "with: bedside user add"
                )
            actor = f"system:{getpass.getuser()}"
            for name in BUILTIN_ROLES:
                if tx.accounts.find_role(name) is None:
                    tx.accounts.add_role(
                        name, kind=name, description="built-in role", now=self.now()
                    )
                    self._event(
                        tx,
                        actor,
                        "role.created",
                        "role",
                        name,
                        after={"kind": name},
                        reason="project initialised",
                    )
            user = tx.accounts.add_user(
                admin_username,
                full_name=admin_full_name,
                password_hash=hash_password(admin_password, hasher=self._hasher),
                now=self.now(),
            )
            self._event(
                tx,
                actor,
                "user.created",
                "user",
                admin_username,
                after={"full_name": admin_full_name},
                reason="first admin of the project",
            )
            tx.accounts.grant(user, RoleKind.ADMIN.value, by=actor, now=self.now())
            self._event(
                tx,
                actor,
                "role.granted",
                "user",
                admin_username,
                after={"role": "admin"},
                reason="first admin of the project",
            )
            return tx.accounts.get_user(admin_username)

    # -- authentication ------------------------------------------------------------------------

    def authenticate(self, username: str, password: str | None) -> User:
        """Check a user's password; count failures and lock the account after too many.

        Raises:
            AuthenticationFailed: the password is missing or wrong, or the account is locked
                or disabled. The message never says which of user or password was wrong.
        """
        if not password:
            raise AuthenticationFailed("A password is required.")
        with self._tx() as tx:
            user = tx.accounts.find_user(username)
            stored = tx.accounts.password_hash(username)
            ok = stored is not None and verify_password(stored, password, hasher=self._hasher)
            if user is not None and ok and user.is_active and not user.is_locked:
                if user.failed_logins:
                    tx.accounts.update_user(username, failed_logins=0)
                return tx.accounts.get_user(username)
        # Failure: record it (and a lock-out) in its own transaction.
        with self._tx() as tx:
            user = tx.accounts.find_user(username)
            if user is None:
                self._event(
                    tx,
                    "anonymous",
                    "auth.failed",
                    "user",
                    username[:64],
                    reason="unknown user name",
                )
            elif not user.is_active or user.is_locked:
                self._event(
                    tx,
                    username,
                    "auth.failed",
                    "user",
                    username,
                    reason="account disabled or locked",
                )
            else:
                failures = user.failed_logins + 1
                locked = failures >= self.lockout_threshold
                tx.accounts.update_user(username, failed_logins=failures, is_locked=locked)
                self._event(
                    tx,
                    username,
                    "auth.failed",
                    "user",
                    username,
                    after={"failed_logins": failures},
                    reason="wrong password",
                )
                if locked:
                    self._event(
                        tx,
                        "system",
                        "user.locked",
                        "user",
                        username,
                        before={"is_locked": False},
                        after={"is_locked": True},
                        reason=f"{failures} failed password attempts (21 CFR 11.300(d))",
                    )
                    logger.warning("user %s locked after %d failed attempts", username, failures)
        raise AuthenticationFailed(
            f"Authentication failed for {username!r}: wrong user name or "
            "password, or the account is disabled or locked."
        )

    def authenticate_token(self, token: str) -> User:
        """Return the user an API token belongs to.

        Raises:
            AuthenticationFailed: unknown, revoked, or the user is disabled.
        """
        with self._read() as tx:
            found = tx.accounts.find_token_owner(hash_token(token))
        if found is None or found[0].revoked_at is not None:
            raise AuthenticationFailed("The API token is unknown or revoked.")
        user = found[1]
        if not user.is_active or user.is_locked:
            raise AuthenticationFailed(f"User {user.username!r} is disabled or locked.")
        return user

    # -- users and roles -----------------------------------------------------------------------

    def add_role(self, actor: User, name: str, *, kind: str, description: str = "") -> Role:
        """Create a role of a built-in kind (e.g. ``CMIO`` of kind ``clinical_reviewer``)."""
        _check_name("Role name", name)
        if kind not in BUILTIN_ROLES:
            raise InvalidInput(f"Role kind {kind!r} is unknown. Kinds: {', '.join(BUILTIN_ROLES)}.")
        with self._authorised(actor, Permission.MANAGE_USERS, "role", name) as tx:
            role = tx.accounts.add_role(name, kind=kind, description=description, now=self.now())
            self._event(tx, actor.username, "role.created", "role", name, after={"kind": kind})
            return role

    def list_roles(self) -> list[Role]:
        with self._read() as tx:
            return tx.accounts.list_roles()

    def add_user(
        self,
        actor: User,
        username: str,
        *,
        full_name: str,
        password: str,
        roles: list[str] | None = None,
    ) -> User:
        """Create a user (admins only), optionally with roles."""
        _check_name("User name", username)
        if not full_name.strip():
            raise InvalidInput(
                "A user needs a full (printed) name: it appears on every "
                "signature they make (21 CFR 11.50)."
            )
        check_password_policy(password)
        password_hash = hash_password(password, hasher=self._hasher)
        with self._authorised(actor, Permission.MANAGE_USERS, "user", username) as tx:
            user = tx.accounts.add_user(
                username, full_name=full_name.strip(), password_hash=password_hash, now=self.now()
            )
            self._event(
                tx,
                actor.username,
                "user.created",
                "user",
                username,
                after={"full_name": full_name.strip()},
            )
            for role in roles or []:
                self._grant(tx, actor, user, role)
            return tx.accounts.get_user(username)

    def _grant(self, tx: Tx, actor: User, user: User, role: str) -> None:
        if tx.accounts.find_role(role) is None:
            known = [r.name for r in tx.accounts.list_roles()]
            import difflib

            close = difflib.get_close_matches(role, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise NotFound(
                f"No role named {role!r}.{hint} Roles: {', '.join(known)}. A clinical "
                f"reviewer role is created with: bedside role add {role} "
                "--kind clinical_reviewer"
            )
        if role in user.roles:
            raise AlreadyExists(f"User {user.username!r} already holds role {role!r}.")
        tx.accounts.grant(user, role, by=actor.username, now=self.now())
        self._event(
            tx,
            actor.username,
            "role.granted",
            "user",
            user.username,
            before={"roles": sorted(user.roles)},
            after={"roles": sorted(user.roles | {role})},
        )

    def grant_role(self, actor: User, username: str, role: str) -> User:
        with self._authorised(actor, Permission.MANAGE_USERS, "user", username) as tx:
            user = tx.accounts.get_user(username)
            self._grant(tx, actor, user, role)
            return tx.accounts.get_user(username)

    def revoke_role(self, actor: User, username: str, role: str) -> User:
        with self._authorised(actor, Permission.MANAGE_USERS, "user", username) as tx:
            user = tx.accounts.get_user(username)
            if role not in user.roles:
                raise NotFound(f"User {username!r} does not hold role {role!r}.")
            if role == RoleKind.ADMIN.value and username == actor.username:
                raise InvalidInput("You cannot remove your own admin role; ask another admin.")
            tx.accounts.revoke(user, role)
            self._event(
                tx,
                actor.username,
                "role.revoked",
                "user",
                username,
                before={"roles": sorted(user.roles)},
                after={"roles": sorted(user.roles - {role})},
            )
            return tx.accounts.get_user(username)

    def set_user_active(
        self, actor: User, username: str, *, active: bool, reason: str = ""
    ) -> User:
        """Disable (or re-enable, which also unlocks) a user. Users are never deleted."""
        with self._authorised(actor, Permission.MANAGE_USERS, "user", username) as tx:
            user = tx.accounts.get_user(username)
            if not active and username == actor.username:
                raise InvalidInput("You cannot disable your own account; ask another admin.")
            values: dict[str, Any] = {"is_active": active}
            if active:
                values.update(is_locked=False, failed_logins=0)
            tx.accounts.update_user(username, **values)
            self._event(
                tx,
                actor.username,
                "user.enabled" if active else "user.disabled",
                "user",
                username,
                before={"is_active": user.is_active, "is_locked": user.is_locked},
                after={"is_active": active, "is_locked": False if active else user.is_locked},
                reason=reason,
            )
            return tx.accounts.get_user(username)

    def list_users(self, actor: User) -> list[User]:
        with self._authorised(actor, Permission.MANAGE_USERS, "user", "*") as tx:
            return tx.accounts.list_users()

    def create_token(self, user: User, *, name: str) -> tuple[str, ApiToken]:
        """Create an API token for ``user`` (who has just authenticated); return it once."""
        token, prefix, digest = new_token()
        with self._tx() as tx:
            record = tx.accounts.add_token(
                tx.accounts.get_user(user.username),
                name=name,
                prefix=prefix,
                token_hash=digest,
                now=self.now(),
            )
            self._event(
                tx,
                user.username,
                "token.created",
                "user",
                user.username,
                after={"token": prefix + "…", "name": name},
            )
        return token, record

    def revoke_token(self, user: User, token: str) -> None:
        with self._tx() as tx:
            found = tx.accounts.find_token_owner(hash_token(token))
            if found is None:
                raise NotFound("No such API token.")
            record, owner = found
            if owner.username != user.username and not is_allowed(
                self._kinds(tx, user).values(), Permission.MANAGE_USERS
            ):
                raise PermissionDenied("Only the token's owner or an admin can revoke it.")
            tx.accounts.revoke_token(record.id, now=self.now())
            self._event(
                tx,
                user.username,
                "token.revoked",
                "user",
                owner.username,
                after={"token": record.prefix + "…"},
            )

    # -- pipelines, models, versions -----------------------------------------------------------

    def register_pipeline(
        self, actor: User, *, content: str, source: str = "<pipeline>"
    ) -> tuple[PipelineRecord, RegisteredModel]:
        """Register a pipeline file: store it, create its reviewer roles and its model.

        Raises:
            PipelineFileError: the file does not validate.
        """
        from bedside.domain.specfile import load_pipeline_text

        pipeline_file = load_pipeline_text(content, source=source)
        spec = pipeline_file.spec
        policy = policy_from_spec(spec)
        model_name = spec.model_name
        with self._authorised(actor, Permission.REGISTER_PIPELINE, "pipeline", model_name) as tx:
            record, is_new = tx.registry.add_pipeline(
                sha256=pipeline_file.content_sha256,
                name=spec.pipeline.name,
                version=spec.pipeline.version,
                content=content,
                by=actor.username,
                now=self.now(),
            )
            if is_new:
                self._event(
                    tx,
                    actor.username,
                    "pipeline.registered",
                    "pipeline",
                    record.sha256,
                    after={"name": record.name, "version": record.version},
                )
            for role in sorted(set(policy.review.roles) | set(policy.promotion_roles)):
                existing = tx.accounts.find_role(role)
                if existing is None:
                    tx.accounts.add_role(
                        role,
                        kind=RoleKind.CLINICAL_REVIEWER.value,
                        description=f"clinical reviewer named by {record.name}",
                        now=self.now(),
                    )
                    self._event(
                        tx,
                        actor.username,
                        "role.created",
                        "role",
                        role,
                        after={"kind": "clinical_reviewer"},
                        reason=f"named by pipeline {record.name} {record.version}",
                    )
                elif existing.kind != RoleKind.CLINICAL_REVIEWER.value:
                    raise InvalidInput(
                        f"The pipeline names {role!r} as a reviewer role, but {role!r} already "
                        f"exists with kind {existing.kind!r}. Use another role name."
                    )
            model = tx.registry.find_model(model_name)
            if model is None:
                model = tx.registry.add_model(
                    model_name,
                    description=spec.pipeline.description or "",
                    by=actor.username,
                    pipeline_sha256=record.sha256,
                    now=self.now(),
                )
                self._event(
                    tx,
                    actor.username,
                    "model.registered",
                    "model",
                    model_name,
                    after={"pipeline_sha256": record.sha256},
                )
            elif model.pipeline_sha256 != record.sha256:
                tx.registry.set_model_pipeline(model, record.sha256)
                self._event(
                    tx,
                    actor.username,
                    "model.pipeline_changed",
                    "model",
                    model_name,
                    before={"pipeline_sha256": model.pipeline_sha256},
                    after={"pipeline_sha256": record.sha256},
                )
                model = tx.registry.get_model(model_name)
            return record, model

    def register_version(
        self,
        actor: User,
        model_name: str,
        *,
        run_id: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a new trained version of ``model_name`` in state ``candidate``."""
        with self._authorised(actor, Permission.REGISTER_VERSION, "model", model_name) as tx:
            model = tx.registry.get_model(model_name)
            if model.pipeline_sha256 is None:
                raise InvalidInput(
                    f"Model {model_name!r} has no pipeline file; register one "
                    "with: bedside pipeline register PIPELINE.yaml"
                )
            version = tx.registry.add_version(
                model,
                by=actor.username,
                pipeline_sha256=model.pipeline_sha256,
                run_id=run_id,
                evidence=evidence or {},
                now=self.now(),
            )
            self._event(
                tx,
                actor.username,
                "version.registered",
                "version",
                version.ref,
                after={
                    "state": version.state.value,
                    "run_id": run_id,
                    "pipeline_sha256": model.pipeline_sha256,
                },
            )
            return version

    def get_version(self, ref: str) -> ModelVersion:
        name, number = parse_ref(ref)
        with self._read() as tx:
            return tx.registry.get_version(name, number)

    def list_models(self) -> list[RegisteredModel]:
        with self._read() as tx:
            return tx.registry.list_models()

    def list_signatures(self, ref: str) -> list[Signature]:
        name, number = parse_ref(ref)
        with self._read() as tx:
            return tx.registry.list_signatures(tx.registry.get_version(name, number))

    def record_gate_result(
        self,
        actor: User,
        ref: str,
        *,
        gate: str,
        passed: bool,
        details: dict[str, Any] | None = None,
    ) -> GateResult:
        """Record one validation gate's result for a candidate version."""
        name, number = parse_ref(ref)
        with self._authorised(actor, Permission.RECORD_GATE, "version", ref) as tx:
            version = tx.registry.get_version(name, number)
            if version.state is not VersionState.CANDIDATE:
                raise InvalidTransition(
                    f"Gate results are recorded for candidates; {ref} is '{version.state.value}'."
                )
            policy = self._policy(tx, version)
            if gate not in policy.required_gates:
                raise InvalidInput(
                    f"Gate {gate!r} is not a gate of {ref}'s pipeline; its gates "
                    f"are: {', '.join(policy.required_gates) or 'none'}."
                )
            before = next((g for g in version.gate_results if g.gate == gate), None)
            result = tx.registry.put_gate_result(
                version,
                gate=gate,
                passed=passed,
                details=details or {},
                by=actor.username,
                now=self.now(),
            )
            self._event(
                tx,
                actor.username,
                "gate.recorded",
                "version",
                ref,
                before=None if before is None else {"gate": gate, "passed": before.passed},
                after={"gate": gate, "passed": passed, "details": details or {}},
            )
            return result

    # -- data preparation -----------------------------------------------------------------------

    def prepare_dataset(
        self,
        actor: User,
        pipeline_path: Path,
        *,
        token: str | None = None,
        progress: Callable[[str], None] = lambda _step: None,
    ) -> Any:
        """Run the pipeline's data preparation stage and record the snapshot (or the block).

        Returns:
            :class:`bedside.prepare.PreparedDataset`, or :class:`bedside.prepare.BlockedDataset`
            when a blocking check stopped it (recorded in the ledger as ``dataset.blocked``).
        """
        from bedside.pipeline_file import load_pipeline_file
        from bedside.prepare import BlockedDataset, prepare

        loaded = load_pipeline_file(pipeline_path)
        spec = loaded.spec
        if self.home is None or self.artifacts_root is None:
            raise InvalidInput("This platform has no project folder; open it from settings.")
        with self._authorised(actor, Permission.PREPARE_DATA, "pipeline", spec.name):
            pass  # permission checked (and a refusal recorded) before any data is read
        result = prepare(
            spec,
            pipeline_dir=pipeline_path.resolve().parent,
            work_dir=self.home / "work" / spec.model_name,
            artifacts_root=self.artifacts_root,
            key_ring=self.keys,
            as_of=self.now().date(),
            created_at=self.now(),
            token=token,
            progress=progress,
        )
        with self._tx() as tx:
            if isinstance(result, BlockedDataset):
                self._event(
                    tx,
                    actor.username,
                    "dataset.blocked",
                    "pipeline",
                    spec.name,
                    after={"check": result.check, "pipeline_sha256": loaded.content_sha256},
                    reason=result.summary,
                )
            else:
                self._event(
                    tx,
                    actor.username,
                    "dataset.prepared",
                    "dataset",
                    result.digest,
                    after={
                        "pipeline": spec.name,
                        "pipeline_sha256": loaded.content_sha256,
                        "rows": result.rows,
                        "patients": result.patients,
                        "counts": result.counts,
                    },
                )
        return result

    # -- training and validation ----------------------------------------------------------------

    def _latest_dataset(self, tx: Tx, pipeline_name: str) -> str:
        events = tx.audit.list_events(action_prefix="dataset.prepared")
        for event in reversed(events):
            if (event.after or {}).get("pipeline") == pipeline_name:
                return event.subject_id
        raise NotFound(
            f"No dataset has been prepared for pipeline {pipeline_name!r}. Run: "
            "bedside prepare PIPELINE.yaml"
        )

    def train_version(
        self,
        actor: User,
        pipeline_path: Path,
        *,
        tracker: Any,
        dataset_digest: str | None = None,
        repo: Path | None = None,
        lock_file: Path | None = None,
        n_boot: int = 1000,
        progress: Callable[[str], None] = lambda _step: None,
    ) -> ModelVersion:
        """Train the pipeline's model on a prepared snapshot; register it as a candidate.

        The MLflow run carries the lineage tags and the dataset input; the model is registered
        in MLflow and mirrored here as a ``candidate``; every gate's outcome is recorded (a
        ledger event each). ``bedside validate`` then makes it ``validated`` or ``rejected``.
        """
        from bedside.pipeline_file import load_pipeline_file
        from bedside.stores.snapshots import find_snapshot, read_snapshot
        from bedside.train_stage import train_and_evaluate

        loaded = load_pipeline_file(pipeline_path)
        spec = loaded.spec
        if self.artifacts_root is None:
            raise InvalidInput("This platform has no artifacts folder; open it from settings.")
        with self._authorised(actor, Permission.REGISTER_VERSION, "model", spec.model_name) as tx:
            model = tx.registry.get_model(spec.model_name)
            if model.pipeline_sha256 != loaded.content_sha256:
                raise InvalidInput(
                    f"{pipeline_path} differs from the pipeline file registered for "
                    f"{spec.model_name}. Register it first: bedside pipeline register "
                    f"{pipeline_path}"
                )
            digest = dataset_digest or self._latest_dataset(tx, spec.name)
        folder = find_snapshot(self.artifacts_root, digest)
        frame, manifest = read_snapshot(folder, self.keys)
        production = None
        with self._read() as tx:
            live = next(
                (v for v in tx.registry.list_versions(model) if v.state is VersionState.PRODUCTION),
                None,
            )
        if live is not None and "feature_schema" in live.evidence:
            from bedside.serving.schema import FeatureSchema

            production = (
                live.ref,
                self.load_version_model(live.ref),
                FeatureSchema.from_dicts(live.evidence["feature_schema"]),
            )
        progress(f"dataset {manifest.digest[:12]}: {manifest.rows:,} rows")
        run_folder = self.artifacts_root / "models" / spec.model_name / "pending"
        trained = train_and_evaluate(
            spec,
            frame,
            dataset_digest=manifest.digest,
            dataset_source=folder.resolve().as_uri(),
            model_folder=run_folder,
            key_ring=self.keys,
            model_context=f"bedside-model:{spec.model_name}:pending",
            tracker=tracker,
            pipeline_path=pipeline_path,
            repo=repo or pipeline_path.parent,
            lock_file=lock_file,
            user=actor.username,
            n_boot=n_boot,
            production=production,
            progress=progress,
        )
        mlflow_version = tracker.register_model(
            trained.logged,
            spec.model_name,
            tags={
                "bedside.dataset.digest": manifest.digest,
                "bedside.pipeline.sha256": loaded.content_sha256,
            },
        )
        version = self.register_version(
            actor,
            spec.model_name,
            run_id=trained.run_id,
            evidence={**trained.evidence, "mlflow_version": mlflow_version.version},
        )
        final = self.artifacts_root / "models" / spec.model_name / str(version.version)
        if final.exists():
            raise InvalidInput(f"{final} already exists; remove it or restore the registry.")
        # Re-encrypt under the version's own context, so a model file moved to another
        # version (or a pending one) fails to load.
        from bedside.train_stage import EVIDENCE_FILE, load_model, save_model

        estimator = load_model(
            trained.model_path,
            key_ring=self.keys,
            context=f"bedside-model:{spec.model_name}:pending",
        )
        save_model(estimator, final, key_ring=self.keys, context=model_context(version))
        (run_folder / EVIDENCE_FILE).replace(final / EVIDENCE_FILE)
        trained.model_path.unlink()
        from bedside.stores.crypto import encrypt_bytes

        (final / PROFILE_FILE).write_bytes(
            bytes(
                encrypt_bytes(
                    trained.profile_json.encode("utf-8"),
                    key_ring=self.keys,
                    key_id=self.keys.current_data_key_id(),
                    context=model_context(version) + ":profile",
                )
            )
        )
        progress("writing the validation report")
        self.write_validation_report(version.ref)
        for outcome in trained.gate_outcomes:
            self.record_gate_result(
                actor,
                version.ref,
                gate=outcome.gate,
                passed=outcome.passed,
                details={
                    "verdict": outcome.verdict,
                    "summary": outcome.summary,
                    "checks": [c.to_dict() for c in outcome.checks],
                },
            )
        return self.get_version(version.ref)

    def write_validation_report(self, ref: str) -> tuple[Path, Path]:
        """(Re)write a version's validation report (HTML + JSON), with its signatures so far."""
        from dataclasses import asdict

        from bedside.reports.validation import write_validation_report

        version = self.get_version(ref)
        if self.artifacts_root is None:
            raise InvalidInput("This platform has no artifacts folder; open it from settings.")
        folder = self.artifacts_root / "models" / version.model_name / str(version.version)
        signatures = [asdict(s) for s in self.list_signatures(ref)]
        return write_validation_report(
            version.evidence,
            folder,
            model_ref=version.ref,
            generated_at=self.now(),
            signatures=signatures,
        )

    def validate_version(self, actor: User, ref: str) -> ModelVersion:
        """Make a candidate ``validated`` when every gate passed, else ``rejected``."""
        version = self.get_version(ref)
        if version.gate_results and all(g.passed for g in version.gate_results):
            return self.transition(
                actor, ref, Action.VALIDATE, reason="every validation gate passed"
            )
        failed = [g.gate for g in version.gate_results if not g.passed]
        if not failed:
            return self.transition(actor, ref, Action.VALIDATE)  # raises: says what is missing
        return self.transition(
            actor, ref, Action.REJECT, reason="gate(s) not passed: " + ", ".join(failed)
        )

    def set_threshold(self, actor: User, ref: str, threshold: float) -> ModelVersion:
        """Set a validated version's operating threshold: a clinical decision, before sign-off.

        Only a clinical reviewer may set it, and only before any approval signature (changing it
        afterwards would change the signed record, so those signatures would stop verifying).
        The operating point at the new threshold (sensitivity, specificity, PPV, NPV, alerts per
        100 admissions on the test split) is recorded with it; serving decides with it.
        """
        import numpy as np

        from bedside.domain.evaluation import evaluate
        from bedside.serving.schema import FeatureSchema
        from bedside.stores.snapshots import find_snapshot, read_snapshot
        from bedside.train_stage import encode

        if not (isinstance(threshold, float | int) and 0.0 < float(threshold) < 1.0):
            raise InvalidInput(
                f"The threshold must be a probability between 0 and 1 "
                f"(exclusive); got {threshold!r}."
            )
        name, number = parse_ref(ref)
        with self._authorised(actor, Permission.SIGN_REVIEW, "version", ref) as tx:
            version = tx.registry.get_version(name, number)
            if version.state is not VersionState.VALIDATED:
                raise InvalidTransition(
                    f"The threshold is chosen at clinical review: {ref} is "
                    f"'{version.state.value}', not 'validated'."
                )
            if any(s.meaning is Meaning.APPROVED for s in tx.registry.list_signatures(version)):
                raise InvalidTransition(
                    f"{ref} already has approval signatures; changing the "
                    "threshold now would invalidate them."
                )
        evidence = dict(version.evidence)
        if self.artifacts_root is None or "feature_schema" not in evidence:
            raise InvalidInput(f"{ref} has no training evidence to set a threshold on.")
        frame, _ = read_snapshot(
            find_snapshot(self.artifacts_root, evidence["dataset_digest"]), self.keys
        )
        test = frame[frame["split"] == "test"]
        schema = FeatureSchema.from_dicts(evidence["feature_schema"])
        p = np.asarray(self.load_version_model(ref).predict_proba(encode(test, schema)))[:, 1]
        result = evaluate(
            test[evidence["label"]].to_numpy(), p, threshold=float(threshold), seed=0, n_boot=0
        )
        operating = next(
            r for r in result.to_dict()["threshold_table"] if r["source"] == "operating"
        )
        before = {"threshold": evidence.get("threshold")}
        evidence.update(
            threshold=float(threshold),
            operating_point=operating,
            threshold_rule=f"chosen at clinical review by {actor.username}",
        )
        with self._tx() as tx:
            tx.registry.set_evidence(version, evidence)
            self._event(
                tx,
                actor.username,
                "version.threshold_set",
                "version",
                ref,
                before=before,
                after={"threshold": float(threshold), "operating_point": operating},
            )
        return self.get_version(ref)

    def reproduce_version(self, actor: User, ref: str, *, tolerance: float = 0.0) -> dict[str, Any]:
        """Retrain a version from its recorded lineage and compare predictions on the test split.

        The dataset snapshot is found by its digest (and re-verified on load), the estimator,
        parameters and seed come from the version's evidence, the pipeline from its hash.

        Returns:
            ``{"identical", "within_tolerance", "max_abs_difference", "rows", "tolerance"}``;
            recorded in the ledger as ``version.reproduced``.
        """
        import numpy as np

        from bedside.serving.schema import FeatureSchema
        from bedside.stores.snapshots import find_snapshot, read_snapshot
        from bedside.train_stage import encode
        from bedside.training import fit

        version = self.get_version(ref)
        evidence = version.evidence
        if "dataset_digest" not in evidence or self.artifacts_root is None:
            raise InvalidInput(f"{ref} has no recorded training lineage to reproduce from.")
        with self._authorised(actor, Permission.REGISTER_VERSION, "version", ref):
            pass
        frame, manifest = read_snapshot(
            find_snapshot(self.artifacts_root, evidence["dataset_digest"]), self.keys
        )
        schema = FeatureSchema.from_dicts(evidence["feature_schema"])
        label = evidence["label"]
        train = frame[frame["split"] == "train"]
        test = frame[frame["split"] == "test"]
        refit = fit(
            encode(train, schema),
            train[label].to_numpy(),
            feature_names=schema.names,
            estimator_path=evidence["estimator"],
            params=evidence["params"],
            seed=int(evidence["seed"]),
        )
        original = self.load_version_model(ref)
        X = encode(test, schema)
        new = refit.predict_proba(X)
        old = np.asarray(original.predict_proba(X))[:, 1]
        difference = float(np.max(np.abs(new - old))) if len(X) else 0.0
        result = {
            "identical": bool(np.array_equal(new, old)),
            "within_tolerance": difference <= tolerance,
            "max_abs_difference": difference,
            "rows": len(X),
            "tolerance": tolerance,
            "dataset_digest": manifest.digest,
        }
        with self._tx() as tx:
            self._event(tx, actor.username, "version.reproduced", "version", ref, after=result)
        return result

    def load_version_model(self, ref: str) -> Any:
        """Load bedside's encrypted copy of a version's model (tamper is refused)."""
        from bedside.train_stage import MODEL_FILE, load_model

        version = self.get_version(ref)
        if self.artifacts_root is None:
            raise InvalidInput("This platform has no artifacts folder; open it from settings.")
        path = self.artifacts_root / "models" / version.model_name / str(version.version)
        return load_model(path / MODEL_FILE, key_ring=self.keys, context=model_context(version))

    # -- lifecycle -----------------------------------------------------------------------------

    def _policy(self, tx: Tx, version: ModelVersion) -> LifecyclePolicy:
        if version.pipeline_sha256 is None:
            raise InvalidTransition(f"{version.ref} has no pipeline file recorded.")
        record = tx.registry.find_pipeline(version.pipeline_sha256)
        if record is None:  # pragma: no cover - foreign key makes this impossible
            raise NotFound(f"Pipeline {version.pipeline_sha256[:12]} is missing.")
        from bedside.domain.specfile import load_pipeline_text

        return policy_from_spec(load_pipeline_text(record.content, source=record.name).spec)

    def _facts(
        self, tx: Tx, version: ModelVersion
    ) -> tuple[lifecycle.VersionFacts, tuple[str, ...]]:
        key = self.keys.signing_key()
        valid: list[SignatureFact] = []
        invalid: list[str] = []
        for sig in tx.registry.list_signatures(version):
            problem = verify_signature(key, sig, version)
            if problem is None:
                valid.append(SignatureFact(sig.username, sig.role, sig.meaning, sig.purpose))
            else:
                invalid.append(problem)
        facts = lifecycle.VersionFacts(
            ref=version.ref,
            state=version.state,
            history=version.history,
            gate_results={g.gate: g.passed for g in version.gate_results},
            signatures=tuple(valid),
            shadow_started_at=tx.registry.shadow_started_at(version),
            shadow_report_passed=(version.evidence.get("shadow_report") or {}).get("passed"),
        )
        return facts, tuple(invalid)

    def _transition(
        self, tx: Tx, actor: str, version: ModelVersion, action: Action, *, reason: str
    ) -> ModelVersion:
        policy = self._policy(tx, version)
        facts, _invalid = self._facts(tx, version)
        target = lifecycle.plan_transition(facts, action, policy, now=self.now())
        updated = tx.registry.set_state(version, target, now=self.now())
        self._event(
            tx,
            actor,
            f"version.{action.value}",
            "version",
            version.ref,
            before={"state": version.state.value},
            after={"state": target.value},
            reason=reason,
        )
        return updated

    def transition(
        self, actor: User, ref: str, action: Action, *, reason: str = ""
    ) -> ModelVersion:
        """Move a version by ``action`` if its preconditions hold; record it.

        Raises:
            InvalidTransition: naming what is missing (recorded in the ledger as an attempt).
        """
        permission = {
            Action.VALIDATE: Permission.VALIDATE_VERSION,
            Action.REJECT: Permission.VALIDATE_VERSION,
            Action.APPROVE: Permission.VALIDATE_VERSION,
            Action.DEPLOY_SHADOW: Permission.DEPLOY,
            Action.PROMOTE: Permission.PROMOTE,
            Action.RETIRE: Permission.RETIRE,
            Action.RESTORE: Permission.ROLLBACK,
        }[action]
        name, number = parse_ref(ref)
        try:
            with self._authorised(actor, permission, "version", ref) as tx:
                version = tx.registry.get_version(name, number)
                if action is Action.PROMOTE:
                    return self._promote(tx, actor, version, reason=reason)
                if action is Action.DEPLOY_SHADOW:
                    model = tx.registry.get_model(name)
                    busy = [
                        v.ref
                        for v in tx.registry.list_versions(model)
                        if v.state is VersionState.SHADOW
                    ]
                    if busy:
                        raise InvalidTransition(
                            f"Cannot deploy {ref} as shadow: {busy[0]} is already in shadow. "
                            f"Promote or retire {busy[0]} first."
                        )
                return self._transition(tx, actor.username, version, action, reason=reason)
        except InvalidTransition as exc:
            self._record_refusal(actor.username, f"refused.{action.value}", "version", ref, exc)
            raise

    def _promote(self, tx: Tx, actor: User, version: ModelVersion, *, reason: str) -> ModelVersion:
        model = tx.registry.get_model(version.model_name)
        current = [
            v for v in tx.registry.list_versions(model) if v.state is VersionState.PRODUCTION
        ]
        promoted = self._transition(
            tx,
            actor.username,
            version,
            Action.PROMOTE,
            reason=reason or "promoted after shadow period",
        )
        for old in current:
            tx.registry.set_state(old, VersionState.RETIRED, now=self.now())
            self._event(
                tx,
                actor.username,
                "version.retire",
                "version",
                old.ref,
                before={"state": old.state.value},
                after={"state": VersionState.RETIRED.value},
                reason=f"superseded by {version.ref}",
            )
        return promoted

    def rollback(self, actor: User, model_name: str, *, reason: str) -> ModelVersion:
        """Return production to the version that served before the current one, in one step."""
        if not reason.strip():
            raise InvalidInput("A rollback needs a reason (it is recorded in the audit ledger).")
        try:
            with self._authorised(actor, Permission.ROLLBACK, "model", model_name) as tx:
                model = tx.registry.get_model(model_name)
                versions = tx.registry.list_versions(model)
                current = next((v for v in versions if v.state is VersionState.PRODUCTION), None)
                if current is None:
                    raise InvalidTransition(
                        f"{model_name} has no production version to roll back from."
                    )
                candidates = [
                    v
                    for v in versions
                    if v.state is VersionState.RETIRED
                    and VersionState.PRODUCTION in v.history
                    and v.id != current.id
                ]
                if not candidates:
                    raise InvalidTransition(
                        f"{model_name} has no earlier production version to "
                        f"return to; only {current.ref} ever served."
                    )
                target = max(candidates, key=lambda v: v.state_changed_at)
                tx.registry.set_state(current, VersionState.RETIRED, now=self.now())
                self._event(
                    tx,
                    actor.username,
                    "version.retire",
                    "version",
                    current.ref,
                    before={"state": "production"},
                    after={"state": "retired"},
                    reason=f"rolled back: {reason}",
                )
                return self._transition(
                    tx,
                    actor.username,
                    target,
                    Action.RESTORE,
                    reason=f"rollback from {current.ref}: {reason}",
                )
        except InvalidTransition as exc:
            self._record_refusal(actor.username, "refused.rollback", "model", model_name, exc)
            raise

    # -- signatures ----------------------------------------------------------------------------

    def sign(
        self,
        username: str,
        password: str | None,
        ref: str,
        *,
        meaning: Meaning,
        purpose: Purpose = Purpose.CLINICAL_REVIEW,
        role: str | None = None,
        comment: str = "",
    ) -> Signature:
        """Sign a version with re-authentication (21 CFR 11.200: name and password each time).

        An approval that completes the clinical review moves the version to ``approved``; a
        rejection moves it to ``rejected``. Every refusal is recorded in the ledger.

        Raises:
            SignatureRefused: a Part 11 rule refuses the signing (details["rule"] names it).
            AuthenticationFailed: the password is missing or wrong.
        """
        subject = ref
        try:
            if not password:
                raise SignatureRefused(
                    "Signing needs your password again (re-authentication, 21 CFR 11.200).",
                    details={"rule": "reauth_missing"},
                )
            try:
                signer = self.authenticate(username, password)
            except AuthenticationFailed as exc:
                raise SignatureRefused(
                    f"Re-authentication failed: {exc.message}", details={"rule": "reauth_failed"}
                ) from None
            name, number = parse_ref(ref)
            with self._tx() as tx:
                version = tx.registry.get_version(name, number)
                policy = self._policy(tx, version)
                kinds = self._kinds(tx, signer)
                eligible = (
                    policy.review.roles
                    if purpose is Purpose.CLINICAL_REVIEW
                    else policy.promotion_roles
                )
                permission = (
                    Permission.SIGN_REVIEW
                    if meaning in (Meaning.APPROVED, Meaning.REJECTED)
                    else Permission.SIGN_RESPONSIBILITY
                )
                if not is_allowed(kinds.values(), permission):
                    raise SignatureRefused(
                        f"User {username!r} (roles: {', '.join(sorted(signer.roles)) or 'none'}) "
                        f"may not sign with meaning {meaning.value!r}.",
                        details={"rule": "wrong_role"},
                    )
                chosen = role or _pick_role(signer, eligible, kinds, meaning)
                existing = tx.registry.list_signatures(version)
                check_signing_rules(
                    version=version,
                    signer=signer,
                    signer_role_kinds=kinds,
                    meaning=meaning,
                    purpose=purpose,
                    role=chosen,
                    eligible_roles=eligible,
                    existing=existing,
                )
                digest = record_sha256(version, purpose)
                draft = Signature(
                    id=0,
                    model_name=version.model_name,
                    version=version.version,
                    purpose=purpose,
                    username=signer.username,
                    printed_name=signer.full_name,
                    role=chosen,
                    meaning=meaning,
                    signed_at=self.now(),
                    record_sha256=digest,
                    signature_hmac="",
                    comment=comment,
                )
                sig = tx.registry.add_signature(
                    version, replace(draft, signature_hmac=seal(self.keys.signing_key(), draft))
                )
                self._event(
                    tx,
                    signer.username,
                    "signature.signed",
                    "version",
                    ref,
                    after={
                        "purpose": purpose.value,
                        "meaning": meaning.value,
                        "role": chosen,
                        "printed_name": signer.full_name,
                        "signed_at": sig.signed_at.isoformat(),
                        "record_sha256": digest,
                    },
                    reason=comment,
                )
                self._after_signature(tx, signer, version, policy, purpose, meaning)
                return sig
        except (SignatureRefused, AlreadyExists, NotFound, InvalidInput) as exc:
            if isinstance(exc, AlreadyExists):
                exc = SignatureRefused(exc.message, details={"rule": "duplicate_signer"})
            self._record_refusal(username[:64], "signature.refused", "version", subject[:200], exc)
            raise exc from None

    def _after_signature(
        self,
        tx: Tx,
        signer: User,
        version: ModelVersion,
        policy: LifecyclePolicy,
        purpose: Purpose,
        meaning: Meaning,
    ) -> None:
        if purpose is not Purpose.CLINICAL_REVIEW:
            return
        facts, _ = self._facts(tx, version)
        if meaning is Meaning.REJECTED:
            self._transition(
                tx, signer.username, version, Action.REJECT, reason="rejected at clinical review"
            )
            return
        status = lifecycle.review_status(
            facts.signatures,
            purpose=Purpose.CLINICAL_REVIEW,
            need=policy.review.required_approvers,
            roles=policy.review.roles,
        )
        if meaning is Meaning.APPROVED and status.is_satisfied:
            self._transition(
                tx,
                signer.username,
                version,
                Action.APPROVE,
                reason="clinical review complete: " + ", ".join(status.signers),
            )

    def verify_signatures(self, ref: str) -> list[tuple[Signature, str | None]]:
        """Return each signature on ``ref`` with ``None`` (verifies) or why it does not."""
        name, number = parse_ref(ref)
        key = self.keys.signing_key()
        with self._read() as tx:
            version = tx.registry.get_version(name, number)
            return [
                (s, verify_signature(key, s, version)) for s in tx.registry.list_signatures(version)
            ]

    # -- status --------------------------------------------------------------------------------

    def shadow_report(self, actor: User, ref: str) -> dict[str, Any]:
        """Write the shadow report of a version in shadow; record its verdict as evidence.

        Agreement with production, score distributions, would-be alerts and — where outcomes
        arrived — the performance of both on the same cases (:mod:`bedside.shadow_stage`). The
        verdict (``evidence["shadow_report"]["passed"]``) is what the promotion signature binds to
        and what ``auto_promote`` needs.
        """
        from bedside.shadow_stage import shadow_report

        return shadow_report(self, actor, ref)

    def issue_documents(
        self, actor: User, ref: str, kinds: str | list[str], *, out_dir: Path | None = None
    ) -> list[Any]:
        """Write regulatory documents for ``ref`` from its record; record each file's hash."""
        from bedside.documents import issue_documents

        return issue_documents(self, actor, ref, kinds, out_dir=out_dir)

    def status(self) -> list[ModelStatus]:
        """Return every model with its versions and what each version's sign-off still needs."""
        out = []
        with self._read() as tx:
            for model in tx.registry.list_models():
                rows = []
                for version in tx.registry.list_versions(model):
                    review = None
                    invalid: tuple[str, ...] = ()
                    if version.state is VersionState.VALIDATED:
                        policy = self._policy(tx, version)
                        facts, invalid = self._facts(tx, version)
                        review = lifecycle.review_status(
                            facts.signatures,
                            purpose=Purpose.CLINICAL_REVIEW,
                            need=policy.review.required_approvers,
                            roles=policy.review.roles,
                        )
                    rows.append(VersionStatus(version, review, invalid))
                out.append(ModelStatus(model, tuple(rows)))
        return out

    # -- monitoring -----------------------------------------------------------------------------

    def monitor(
        self, actor: User, model_name: str, *, window: timedelta | None = None
    ) -> dict[str, Any]:
        """Check the production version over time: drift per feature and of the score
        (Evidently's tests and thresholds), performance with CIs where outcomes arrived, subgroup
        metrics, alerts (ledger, log, webhook; de-duplicated) and the retraining trigger; write the
        monitoring report. A fired trigger never deploys anything: a retrained candidate must pass
        the same gates and signatures. See :func:`bedside.monitor_stage.run_monitoring`.
        """
        from bedside.monitor_stage import run_monitoring

        return run_monitoring(self, actor, model_name, window=window)

    def retrain(
        self,
        actor: User,
        pipeline_path: Path,
        *,
        tracker: Any,
        repo: Path | None = None,
        lock_file: Path | None = None,
        n_boot: int = 1000,
        token: str | None = None,
        progress: Callable[[str], None] = lambda _step: None,
    ) -> Any:
        """Answer a fired ``retraining_trigger``: prepare fresh data and train a new candidate.

        Runs only after monitoring recorded ``monitoring.retraining_triggered`` for the pipeline's
        model. The candidate goes through the same gates (judged at training), the same
        validation and the same signatures as any other; nothing is deployed. Records
        ``monitoring.retrained`` linking the trigger event to the candidate.

        Returns:
            The candidate :class:`ModelVersion`, or :class:`bedside.prepare.BlockedDataset` when a
            blocking data check stopped the fresh dataset (then nothing is trained).

        Raises:
            InvalidTransition: the trigger has not fired for this model.
        """
        from bedside.pipeline_file import load_pipeline_file
        from bedside.prepare import BlockedDataset

        model_name = load_pipeline_file(pipeline_path).spec.model_name
        with self._authorised(actor, Permission.REGISTER_VERSION, "model", model_name) as tx:
            fired = [
                e
                for e in tx.audit.list_events(
                    subject_type="model",
                    subject_id=model_name,
                    action_prefix="monitoring.retraining_triggered",
                )
            ]
        if not fired:
            raise InvalidTransition(
                f"The retraining_trigger of {model_name} has not fired (no "
                "monitoring.retraining_triggered event); run bedside monitor first, or train a "
                "candidate on purpose with bedside prepare and bedside train."
            )
        prepared = self.prepare_dataset(actor, pipeline_path, token=token, progress=progress)
        if isinstance(prepared, BlockedDataset):
            return prepared
        version = self.train_version(
            actor,
            pipeline_path,
            tracker=tracker,
            dataset_digest=prepared.digest,
            repo=repo,
            lock_file=lock_file,
            n_boot=n_boot,
            progress=progress,
        )
        with self._tx() as tx:
            self._event(
                tx,
                actor.username,
                "monitoring.retrained",
                "model",
                model_name,
                after={
                    "candidate": version.ref,
                    "dataset_digest": prepared.digest,
                    "trigger_event": fired[-1].seq,
                },
                reason="retraining_trigger fired; the candidate must pass the same gates and "
                "signatures and is not deployed",
            )
        return version

    def monitor_scheduled(self, model_name: str) -> dict[str, Any]:
        """The server's scheduled check: recorded as ``system:scheduler``, no permission check."""
        from bedside.monitor_stage import run_monitoring

        return run_monitoring(self, None, model_name)

    # -- deployment history and registry aliases -------------------------------------------------

    def history(
        self, actor: User, model_name: str, *, at: datetime | None = None
    ) -> dict[str, Any]:
        """Say which version of ``model_name`` was in production (and shadow) at ``at``.

        Answered from the audit ledger alone (state changes with their server times), with the
        signatures that approved the live version: "which version was live at 03:00 on 12 March,
        and who approved it".
        """
        moment = (at or self.now()).astimezone(UTC)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._authorised(actor, Permission.READ_AUDIT, "model", model_name) as tx:
            tx.registry.get_model(model_name)
            states: dict[str, str] = {}
            changes: list[dict[str, Any]] = []
            prefix = f"{model_name}@"
            for event in tx.audit.list_events(subject_type="version", action_prefix="version."):
                if not event.subject_id.startswith(prefix) or event.occurred_at > stamp:
                    continue
                after = event.after or {}
                if "state" in after:
                    states[event.subject_id] = after["state"]
                    changes.append(
                        {
                            "time": event.occurred_at,
                            "version": event.subject_id,
                            "state": after["state"],
                            "by": event.actor,
                            "reason": event.reason,
                        }
                    )
            live = next((r for r, st in states.items() if st == "production"), None)
            shadow = next((r for r, st in states.items() if st == "shadow"), None)
            approvals: list[dict[str, Any]] = []
            if live is not None:
                name, number = parse_ref(live)
                version = tx.registry.get_version(name, number)
                approvals = [
                    {
                        "printed_name": s.printed_name,
                        "role": s.role,
                        "meaning": s.meaning.value,
                        "purpose": s.purpose.value,
                        "signed_at": s.signed_at.isoformat(),
                    }
                    for s in tx.registry.list_signatures(version)
                    if s.meaning is Meaning.APPROVED and s.signed_at <= moment
                ]
        return {
            "model": model_name,
            "at": stamp,
            "production": live,
            "shadow": shadow,
            "approved_by": approvals,
            "changes": changes,
        }

    def mirror_aliases(self, tracker: Any, model_name: str) -> dict[str, str | None]:
        """Make MLflow's ``champion``/``shadow`` aliases point where bedside's lifecycle says."""
        from bedside.stores.tracking import Alias

        with self._read() as tx:
            versions = tx.registry.list_versions(tx.registry.get_model(model_name))
        wanted = {Alias.CHAMPION: VersionState.PRODUCTION, Alias.SHADOW: VersionState.SHADOW}
        result: dict[str, str | None] = {}
        for alias, state in wanted.items():
            holder = next((v for v in versions if v.state is state), None)
            mlflow_version = None if holder is None else holder.evidence.get("mlflow_version")
            if mlflow_version is None:
                if tracker.find_version_by_alias(model_name, alias) is not None:
                    tracker.delete_alias(model_name, alias)
            else:
                tracker.set_alias(model_name, alias, str(mlflow_version))
            result[alias.value] = None if mlflow_version is None else str(mlflow_version)
        return result

    # -- audit ---------------------------------------------------------------------------------

    def verify_audit(self, *, extra_checkpoints: list[Checkpoint] | None = None) -> VerifyResult:
        """Verify the whole ledger against its chain and every recorded checkpoint."""
        with self._read() as tx:
            checkpoints = tx.audit.list_checkpoints() + list(extra_checkpoints or [])
            return verify_chain(tx.audit.iter_events(), checkpoints)

    def checkpoint_audit(self, actor: User) -> Checkpoint:
        """Record the ledger's current head as a checkpoint (and as an event)."""
        with self._authorised(actor, Permission.CHECKPOINT_AUDIT, "audit", "checkpoint") as tx:
            checkpoint = tx.audit.add_checkpoint(actor=actor.username, now=self.now())
            self._event(
                tx,
                actor.username,
                "audit.checkpoint",
                "audit",
                str(checkpoint.seq),
                after={"seq": checkpoint.seq, "hash": checkpoint.hash},
            )
            return checkpoint

    def list_audit_events(self, actor: User, **filters: Any) -> list[AuditEvent]:
        with self._authorised(actor, Permission.READ_AUDIT, "audit", "events") as tx:
            return tx.audit.list_events(**filters)

    def export_audit(self, actor: User, folder: Path) -> dict[str, Path]:
        """Write the ledger as JSON Lines and CSV for inspectors; record the export."""
        folder.mkdir(parents=True, exist_ok=True)
        jsonl_path = folder / "audit-ledger.jsonl"
        csv_path = folder / "audit-ledger.csv"
        with self._authorised(actor, Permission.EXPORT_AUDIT, "audit", "export") as tx:
            count = 0
            with (
                jsonl_path.open("w", encoding="utf-8") as jf,
                csv_path.open("w", encoding="utf-8", newline="") as cf,
            ):
                writer = csv.writer(cf)
                columns = [
                    "seq",
                    "occurred_at",
                    "actor",
                    "action",
                    "subject_type",
                    "subject_id",
                    "before",
                    "after",
                    "reason",
                    "prev_hash",
                    "hash",
                ]
                writer.writerow(columns)
                for event in tx.audit.iter_events():
                    row = {c: getattr(event, c) for c in columns}
                    jf.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                    writer.writerow(
                        [
                            json.dumps(row[c], ensure_ascii=False, sort_keys=True)
                            if c in ("before", "after")
                            else row[c]
                            for c in columns
                        ]
                    )
                    count += 1
            self._event(
                tx,
                actor.username,
                "audit.exported",
                "audit",
                "export",
                after={"events": count, "files": [jsonl_path.name, csv_path.name]},
            )
        return {"jsonl": jsonl_path, "csv": csv_path}


PROFILE_FILE = "reference-profile.json.enc"


def model_context(version: ModelVersion) -> str:
    """Return the encryption context binding a model file to its version."""
    return f"bedside-model:{version.model_name}:{version.version}"


def _pick_role(
    signer: User, eligible: tuple[str, ...], kinds: dict[str, str], meaning: Meaning
) -> str:
    if meaning in (Meaning.APPROVED, Meaning.REJECTED):
        usable = sorted(r for r in signer.roles if r in eligible)
    else:
        usable = sorted(signer.roles)
    if len(usable) == 1:
        return usable[0]
    if not usable:
        raise SignatureRefused(
            f"User {signer.username!r} holds none of the roles that may sign this "
            f"(pipeline requires one of: {', '.join(eligible)}).",
            details={"rule": "wrong_role"},
        )
    raise SignatureRefused(
        f"User {signer.username!r} holds several eligible roles "
        f"({', '.join(usable)}); say which with --role.",
        details={"rule": "ambiguous_role"},
    )


def policy_from_spec(spec: Any) -> LifecyclePolicy:
    """Read the lifecycle policy (gates, reviewers, promotion) out of a pipeline spec."""
    validation = spec.validation
    review = validation.clinical_review
    deployment = spec.deployment
    roles = tuple(review.roles)
    return LifecyclePolicy(
        required_gates=tuple(
            name
            for name, gate in zip(validation.gate_names, validation.gates, strict=True)
            if gate.kind != "clinical_review"
        ),
        review=lifecycle.ReviewPolicy(required_approvers=review.required_approvers, roles=roles),
        promotion_roles=tuple(deployment.promotion_roles or roles),
        auto_promote=deployment.auto_promote,
        shadow_duration=deployment.shadow_duration,
    )
