"""Table definitions, and the functions that turn rows into entities (the only crossing).

The schema itself is created by the Alembic migrations in ``migrations/``; these definitions must
match them (a test compares the migrated database with this metadata).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import RowMapping

from bedside.domain.models import (
    ApiToken,
    AuditEvent,
    Checkpoint,
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

metadata = MetaData()

TS = DateTime(timezone=True)

pipelines = Table(
    "pipelines",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(50), nullable=False),
    Column("content", Text, nullable=False),
    Column("registered_at", TS, nullable=False),
    Column("registered_by", String(64), nullable=False),
)

roles = Table(
    "roles",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("full_name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("is_locked", Boolean, nullable=False, default=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("created_at", TS, nullable=False),
    Column("password_changed_at", TS, nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role_name", String(64), ForeignKey("roles.name"), primary_key=True),
    Column("granted_at", TS, nullable=False),
    Column("granted_by", String(64), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("pipeline_sha256", String(64), ForeignKey("pipelines.sha256"), nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("history", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("pipeline_sha256", String(64), ForeignKey("pipelines.sha256"), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("evidence", Text, nullable=False),
    Column("state_changed_at", TS, nullable=False),
    Column("shadow_started_at", TS, nullable=True),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("gate", String(100), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("details", Text, nullable=False),
    Column("recorded_at", TS, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    UniqueConstraint("version_id", "gate", name="uq_gate_results_version_gate"),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("username", String(64), nullable=False),
    Column("printed_name", String(200), nullable=False),
    Column("role", String(64), nullable=False),
    Column("meaning", String(32), nullable=False),
    Column("signed_at", TS, nullable=False),
    Column("record_sha256", String(64), nullable=False),
    Column("signature_hmac", String(64), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    UniqueConstraint("version_id", "purpose", "username", name="uq_signatures_one_per_signer"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("occurred_at", String(40), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(64), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("reason", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Column("recorded_by", String(64), nullable=False),
)

APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints", "signatures")


# -- rows -> entities --------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def to_user(row: RowMapping, role_names: frozenset[str]) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        full_name=row["full_name"],
        roles=role_names,
        is_active=bool(row["is_active"]),
        created_at=utc(row["created_at"]),
        failed_logins=row["failed_logins"],
        is_locked=bool(row["is_locked"]),
    )


def to_role(row: RowMapping) -> Role:
    return Role(name=row["name"], kind=row["kind"], description=row["description"])


def to_token(row: RowMapping, username: str) -> ApiToken:
    return ApiToken(
        id=row["id"],
        username=username,
        name=row["name"],
        prefix=row["prefix"],
        created_at=utc(row["created_at"]),
        revoked_at=utc(row["revoked_at"]) if row["revoked_at"] else None,
    )


def to_pipeline(row: RowMapping) -> PipelineRecord:
    return PipelineRecord(
        sha256=row["sha256"],
        name=row["name"],
        version=row["version"],
        content=row["content"],
        registered_at=utc(row["registered_at"]),
    )


def to_model(row: RowMapping) -> RegisteredModel:
    return RegisteredModel(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=utc(row["created_at"]),
        created_by=row["created_by"],
        pipeline_sha256=row["pipeline_sha256"],
    )


def to_gate(row: RowMapping) -> GateResult:
    return GateResult(
        gate=row["gate"],
        passed=bool(row["passed"]),
        details=_json(row["details"]),
        recorded_at=utc(row["recorded_at"]),
        recorded_by=row["recorded_by"],
    )


def to_version(row: RowMapping, model_name: str, gates: tuple[GateResult, ...]) -> ModelVersion:
    return ModelVersion(
        id=row["id"],
        model_name=model_name,
        version=row["version"],
        state=VersionState(row["state"]),
        created_at=utc(row["created_at"]),
        created_by=row["created_by"],
        pipeline_sha256=row["pipeline_sha256"],
        run_id=row["run_id"],
        evidence=_json(row["evidence"]),
        history=tuple(VersionState(s) for s in _json(row["history"])),
        state_changed_at=utc(row["state_changed_at"]),
        gate_results=gates,
    )


def to_signature(row: RowMapping, model_name: str, version: int) -> Signature:
    return Signature(
        id=row["id"],
        model_name=model_name,
        version=version,
        purpose=Purpose(row["purpose"]),
        username=row["username"],
        printed_name=row["printed_name"],
        role=row["role"],
        meaning=Meaning(row["meaning"]),
        signed_at=utc(row["signed_at"]),
        record_sha256=row["record_sha256"],
        signature_hmac=row["signature_hmac"],
        comment=row["comment"],
    )


def to_event(row: RowMapping) -> AuditEvent:
    return AuditEvent(
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        action=row["action"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        before=_json(row["before"]),
        after=_json(row["after"]),
        reason=row["reason"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def to_checkpoint(row: RowMapping) -> Checkpoint:
    return Checkpoint(
        seq=row["seq"],
        hash=row["hash"],
        recorded_at=row["recorded_at"],
        recorded_by=row["recorded_by"],
    )
