"""E-signatures (21 CFR Part 11 §11.50, §11.70, §11.100, §11.200): the record, the seal, the rules.

A signature carries the signer's printed name, the server time and the meaning, and is bound to the
SHA-256 of the exact record signed. The signature itself is sealed with an HMAC under the project's
signing key over all of its fields, including the model, version and purpose it belongs to — so a
signature copied to another record, or a record changed after signing, fails verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bedside.domain.canonical import hmac_sha256_hex, sha256_hex
from bedside.domain.models import Meaning, ModelVersion, Purpose, Signature, User, VersionState
from bedside.errors import SignatureRefused

ACCOUNTABILITY_NOTICE = (
    "By signing you confirm your identity and that this electronic signature is the legally "
    "binding equivalent of your handwritten signature (21 CFR 11.100(c)). You are accountable "
    "for actions taken under it."
)

SIGNABLE_STATE: dict[Purpose, VersionState] = {
    Purpose.CLINICAL_REVIEW: VersionState.VALIDATED,
    Purpose.PROMOTION: VersionState.SHADOW,
}


# Evidence that only exists after clinical review (the shadow period's report): a clinical-review
# signature cannot have seen it, so its record leaves it out; a promotion signature binds to it.
AFTER_REVIEW_EVIDENCE: frozenset[str] = frozenset({"shadow_report"})


def signing_record(version: ModelVersion, purpose: Purpose) -> dict[str, Any]:
    """Return the exact record a signature of ``purpose`` on ``version`` is bound to.

    A clinical-review signature binds to the evidence as it stood at review: the keys in
    :data:`AFTER_REVIEW_EVIDENCE` (added later, in the shadow period) are left out of its record.
    A promotion signature binds to all of it, the shadow report included.
    """
    evidence = version.evidence
    if purpose is Purpose.CLINICAL_REVIEW:
        evidence = {k: v for k, v in evidence.items() if k not in AFTER_REVIEW_EVIDENCE}
    return {
        "model": version.model_name,
        "version": version.version,
        "purpose": purpose.value,
        "run_id": version.run_id,
        "pipeline_sha256": version.pipeline_sha256,
        "trained_by": version.created_by,
        "evidence": evidence,
        "gates": sorted(
            (
                {"gate": g.gate, "passed": g.passed, "details": g.details}
                for g in version.gate_results
            ),
            key=lambda g: str(g["gate"]),
        ),
    }


def record_sha256(version: ModelVersion, purpose: Purpose) -> str:
    """Return the SHA-256 of the record a signature would bind to now."""
    return sha256_hex(signing_record(version, purpose))


def seal(key: bytes, signature: Signature) -> str:
    """Return the HMAC-SHA256 seal over every field of ``signature`` but its id and seal."""
    return hmac_sha256_hex(
        key,
        {
            "model": signature.model_name,
            "version": signature.version,
            "purpose": signature.purpose.value,
            "username": signature.username,
            "printed_name": signature.printed_name,
            "role": signature.role,
            "meaning": signature.meaning.value,
            "signed_at": signature.signed_at.isoformat(),
            "record_sha256": signature.record_sha256,
            "comment": signature.comment,
        },
    )


def verify_signature(key: bytes, signature: Signature, version: ModelVersion) -> str | None:
    """Check ``signature`` against ``version``'s current record.

    Returns:
        ``None`` when the signature verifies, else the reason it does not.
    """
    if (signature.model_name, signature.version) != (version.model_name, version.version):
        return (
            f"signature #{signature.id} belongs to {signature.model_name}@{signature.version}, "
            f"not {version.ref}"
        )
    expected_seal = seal(key, signature)
    if expected_seal != signature.signature_hmac:
        return (
            f"signature #{signature.id} does not match its seal (it was altered, copied or forged)"
        )
    if signature.record_sha256 != record_sha256(version, signature.purpose):
        return (
            f"signature #{signature.id} was made on a different record than "
            f"{version.ref}'s current one (the record changed after signing)"
        )
    return None


def check_signing_rules(
    *,
    version: ModelVersion,
    signer: User,
    signer_role_kinds: dict[str, str],
    meaning: Meaning,
    purpose: Purpose,
    role: str,
    eligible_roles: Sequence[str],
    existing: Sequence[Signature],
) -> None:
    """Refuse a signing that breaks a rule; say which rule and what to do.

    Args:
        signer_role_kinds: the signer's roles mapped to their kinds.
        eligible_roles: the roles whose approval counts for this purpose (from the pipeline).
        existing: signatures already made on this version.

    Raises:
        SignatureRefused: with ``details["rule"]`` naming the rule broken.
    """

    def refuse(rule: str, message: str) -> SignatureRefused:
        return SignatureRefused(
            message, details={"rule": rule, "version": version.ref, "signer": signer.username}
        )

    if not signer.is_active or signer.is_locked:
        raise refuse(
            "user_inactive",
            f"User {signer.username!r} is disabled or locked and "
            "cannot sign. An admin can re-enable the account.",
        )
    wanted_state = SIGNABLE_STATE[purpose]
    if version.state is not wanted_state:
        raise refuse(
            "wrong_state",
            f"{version.ref} is '{version.state.value}'; a "
            f"{purpose.value} signature needs it to be '{wanted_state.value}'.",
        )
    if role not in signer.roles:
        raise refuse(
            "wrong_role",
            f"User {signer.username!r} does not hold role {role!r} "
            f"(holds: {', '.join(sorted(signer.roles)) or 'none'}).",
        )
    if meaning in (Meaning.APPROVED, Meaning.REJECTED):
        if role not in eligible_roles:
            raise refuse(
                "wrong_role",
                f"Role {role!r} cannot {meaning.value} for "
                f"{purpose.value}; the pipeline requires one of: "
                f"{', '.join(eligible_roles)}.",
            )
        if signer_role_kinds.get(role) != "clinical_reviewer":
            raise refuse("wrong_role", f"Role {role!r} is not a clinical reviewer role.")
    if meaning is Meaning.APPROVED and signer.username == version.created_by:
        raise refuse(
            "self_approval",
            f"User {signer.username!r} trained {version.ref} and "
            "cannot approve it; another reviewer must sign.",
        )
    for sig in existing:
        if sig.purpose is purpose and sig.username == signer.username:
            raise refuse(
                "duplicate_signer",
                f"User {signer.username!r} already signed "
                f"{version.ref} for {purpose.value} ({sig.meaning.value}, "
                f"{sig.signed_at.isoformat()}); each signer signs once.",
            )
