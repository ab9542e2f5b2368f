"""Entities: the plain values every store returns and every interface renders."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class VersionState(enum.StrEnum):
    """Where a model version is in its life."""

    CANDIDATE = "candidate"
    VALIDATED = "validated"
    APPROVED = "approved"
    SHADOW = "shadow"
    PRODUCTION = "production"
    RETIRED = "retired"
    REJECTED = "rejected"


class Meaning(enum.StrEnum):
    """The meaning of an e-signature (21 CFR 11.50(a)(3))."""

    REVIEWED = "reviewed"
    APPROVED = "approved"
    REJECTED = "rejected"
    RESPONSIBILITY = "responsibility"


class Purpose(enum.StrEnum):
    """What a signature is for: the clinical review of a version, or its promotion to production."""

    CLINICAL_REVIEW = "clinical_review"
    PROMOTION = "promotion"


@dataclass(frozen=True, slots=True)
class User:
    """A person who can act in bedside."""

    id: int
    username: str
    full_name: str
    roles: frozenset[str]
    is_active: bool
    created_at: datetime
    failed_logins: int = 0
    is_locked: bool = False


@dataclass(frozen=True, slots=True)
class Role:
    """A role and the kind of role it is (its permissions come from the kind)."""

    name: str
    kind: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's metadata (the token itself is only ever shown once, at creation)."""

    id: int
    username: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PipelineRecord:
    """A pipeline file as registered: its hash, names and exact text."""

    sha256: str
    name: str
    version: str
    content: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model that has versions."""

    id: int
    name: str
    description: str
    created_at: datetime
    created_by: str
    pipeline_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class GateResult:
    """The recorded outcome of one validation gate for one version."""

    gate: str
    passed: bool
    details: dict[str, Any]
    recorded_at: datetime
    recorded_by: str


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One trained version of a registered model and where it is in its life."""

    id: int
    model_name: str
    version: int
    state: VersionState
    created_at: datetime
    created_by: str
    pipeline_sha256: str | None
    run_id: str | None
    evidence: dict[str, Any]
    history: tuple[VersionState, ...]
    state_changed_at: datetime
    gate_results: tuple[GateResult, ...] = ()

    @property
    def ref(self) -> str:
        """Return ``name@version``, how people name a version."""
        return f"{self.model_name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Signature:
    """An e-signature: who, when, what it means, and the hash of the exact record signed."""

    id: int
    model_name: str
    version: int
    purpose: Purpose
    username: str
    printed_name: str
    role: str
    meaning: Meaning
    signed_at: datetime
    record_sha256: str
    signature_hmac: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event of the hash-chained audit ledger."""

    seq: int
    occurred_at: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A recorded ledger head: the sequence number and hash an auditor can hold the ledger to."""

    seq: int
    hash: str
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An audit event before the ledger gives it a place in the chain."""

    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str = ""
