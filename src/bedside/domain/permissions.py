"""Roles and permissions: deny by default.

A role has a *kind*; its permissions come from the kind. The built-in roles are kinds of their own;
clinical reviewer roles named by a pipeline (``CMIO``, ``clinical_informaticist`` …) are roles of
kind ``clinical_reviewer``. Anything not granted here is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Permission(enum.StrEnum):
    """An action someone may be allowed to take."""

    READ_METRICS = "metrics.read"
    READ_PATIENT_ROWS = "data.rows.read"
    REGISTER_MODEL = "model.register"
    REGISTER_VERSION = "version.register"
    RECORD_GATE = "gate.record"
    VALIDATE_VERSION = "version.validate"
    SIGN_REVIEW = "signature.review"  # approve / reject as a clinical reviewer
    SIGN_RESPONSIBILITY = "signature.responsibility"  # 'reviewed' / 'responsibility' meanings
    DEPLOY = "deployment.deploy"
    PROMOTE = "deployment.promote"
    ROLLBACK = "deployment.rollback"
    RETIRE = "version.retire"
    READ_AUDIT = "audit.read"
    EXPORT_AUDIT = "audit.export"
    CHECKPOINT_AUDIT = "audit.checkpoint"
    MANAGE_USERS = "users.manage"
    REGISTER_PIPELINE = "pipeline.register"
    PREPARE_DATA = "dataset.prepare"


class RoleKind(enum.StrEnum):
    """The built-in kinds of role."""

    DATA_SCIENTIST = "data_scientist"
    ML_ENGINEER = "ml_engineer"
    CLINICAL_REVIEWER = "clinical_reviewer"
    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


P = Permission

# Admins manage people and roles but cannot sign, deploy or see patient rows (11.200(a)(2): no one
# signs as someone else). Data scientists see metrics, never patient-level rows.
KIND_PERMISSIONS: dict[RoleKind, frozenset[Permission]] = {
    RoleKind.DATA_SCIENTIST: frozenset(
        {
            P.READ_METRICS,
            P.REGISTER_MODEL,
            P.REGISTER_VERSION,
            P.RECORD_GATE,
            P.VALIDATE_VERSION,
            P.SIGN_RESPONSIBILITY,
            P.READ_AUDIT,
            P.REGISTER_PIPELINE,
            P.PREPARE_DATA,
        }
    ),
    RoleKind.ML_ENGINEER: frozenset(
        {
            P.READ_METRICS,
            P.READ_PATIENT_ROWS,
            P.REGISTER_MODEL,
            P.REGISTER_VERSION,
            P.RECORD_GATE,
            P.VALIDATE_VERSION,
            P.SIGN_RESPONSIBILITY,
            P.DEPLOY,
            P.PROMOTE,
            P.ROLLBACK,
            P.RETIRE,
            P.READ_AUDIT,
            P.REGISTER_PIPELINE,
            P.PREPARE_DATA,
        }
    ),
    RoleKind.CLINICAL_REVIEWER: frozenset(
        {
            P.READ_METRICS,
            P.SIGN_REVIEW,
            P.SIGN_RESPONSIBILITY,
            P.READ_AUDIT,
        }
    ),
    RoleKind.PRIVACY_OFFICER: frozenset(
        {
            P.READ_METRICS,
            P.READ_PATIENT_ROWS,
            P.READ_AUDIT,
            P.EXPORT_AUDIT,
            P.SIGN_RESPONSIBILITY,
        }
    ),
    RoleKind.AUDITOR: frozenset({P.READ_METRICS, P.READ_AUDIT, P.EXPORT_AUDIT, P.CHECKPOINT_AUDIT}),
    RoleKind.ADMIN: frozenset(
        {
            P.READ_METRICS,
            P.MANAGE_USERS,
            P.READ_AUDIT,
            P.EXPORT_AUDIT,
            P.CHECKPOINT_AUDIT,
            P.REGISTER_PIPELINE,
        }
    ),
}

BUILTIN_ROLES: dict[str, RoleKind] = {kind.value: kind for kind in RoleKind}


def permissions_for(kinds: Iterable[str]) -> frozenset[Permission]:
    """Return the union of permissions of the given role kinds (unknown kinds grant nothing)."""
    granted: set[Permission] = set()
    for kind in kinds:
        try:
            granted |= KIND_PERMISSIONS[RoleKind(kind)]
        except ValueError:
            continue
    return frozenset(granted)


def is_allowed(kinds: Iterable[str], permission: Permission) -> bool:
    """Return whether holders of role kinds ``kinds`` may do ``permission`` (deny by default)."""
    return permission in permissions_for(kinds)
