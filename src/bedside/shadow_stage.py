"""The shadow report of a version in shadow: read its period from the inference log, judge, record.

:func:`shadow_report` is what ``bedside version shadow-report NAME@VERSION`` runs. It reads every
request the shadow version saw since it entered shadow, compares it with production
(:func:`bedside.domain.shadow.compare_shadow`), writes the report (HTML + JSON) under
``<home>/reports/shadow/<model>/<version>/<stamp>/``, stores a summary in the version's evidence
under ``"shadow_report"`` (with the SHA-256 of the JSON report) and records
``version.shadow_report`` in the ledger. A promotion signature binds the evidence, so the report
cannot be replaced once the version has one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime
from typing import Any

from bedside.domain.models import ModelVersion, Purpose, User, VersionState
from bedside.domain.permissions import Permission
from bedside.domain.shadow import ShadowCriteria, ShadowResult, compare_shadow
from bedside.errors import InvalidInput, InvalidTransition
from bedside.service import Platform, Tx, parse_ref
from bedside.serving.log_reader import InferenceLogReader, InferenceRecord

__all__ = ["EVIDENCE_KEY", "shadow_report"]

logger = logging.getLogger(__name__)

#: Where the summary lives in the version's evidence.
EVIDENCE_KEY = "shadow_report"
_SKIPPED = "skipped"


def _check_reportable(tx: Tx, version: ModelVersion) -> None:
    if version.state is not VersionState.SHADOW:
        raise InvalidTransition(
            f"{version.ref} is '{version.state.value}'; a shadow report is made for a version in "
            f"'shadow'. Deploy it as shadow first (bedside version deploy-shadow {version.ref}) "
            "and let it see traffic.",
            details={"state": version.state.value},
        )
    signed = [s for s in tx.registry.list_signatures(version) if s.purpose is Purpose.PROMOTION]
    if signed:
        raise InvalidTransition(
            f"{version.ref} already has {len(signed)} promotion signature(s) (the first by "
            f"{signed[0].username!r}); they bind its evidence, shadow report included, so "
            "replacing the report would invalidate them. Promote or retire it instead.",
            details={"rule": "signed_evidence"},
        )


def _error_kind(error: str) -> str:
    """Return the kind of a shadow error: the exception type, or ``input`` — never a value."""
    return error.split(":", 1)[0].strip()[:64] or "unknown"


def _compare(
    version: ModelVersion,
    records: list[InferenceRecord],
    *,
    start: datetime,
    end: datetime,
    criteria: ShadowCriteria,
    n_boot: int,
    seed: int,
) -> tuple[ShadowResult, dict[str, int]]:
    nan = math.nan
    shadow_p: list[float] = []
    production_p: list[float] = []
    production_d: list[float] = []
    labels: list[float] = []
    received: list[float] = []
    errors: Counter[str] = Counter()
    skipped = missing = 0
    production_versions: Counter[str] = Counter()
    production_thresholds: dict[float, datetime] = {}
    for record in records:
        shadow = record.shadow
        if shadow is None:
            missing += 1
            continue
        if shadow.get("probability") is None:
            error = str(shadow.get("error") or "unknown")
            if error.startswith(_SKIPPED):
                skipped += 1
            else:
                errors[_error_kind(error)] += 1
            continue
        shadow_p.append(float(shadow["probability"]))
        received.append(record.received.timestamp())
        label = (record.outcome or {}).get("label")
        labels.append(nan if label is None else float(label))
        if record.probability is None or record.version is None:
            production_p.append(nan)
            production_d.append(nan)
            continue
        production_p.append(float(record.probability))
        production_d.append(float(bool(record.decision)))
        production_versions[f"{record.model}@{record.version}"] += 1
        if record.threshold is not None:
            production_thresholds[float(record.threshold)] = record.received
    notes: list[str] = []
    production_threshold = None
    if production_thresholds:  # the latest one; a change mid-period is said in the report
        production_threshold = max(production_thresholds, key=production_thresholds.__getitem__)
        if len(production_thresholds) > 1:
            notes.append(
                f"Production's threshold changed during the period "
                f"({', '.join(f'{t:g}' for t in sorted(production_thresholds))}); its "
                f"performance is given at the latest, {production_threshold:g}. Agreement and "
                "alerts use the decisions production actually returned."
            )
    signed = version.evidence.get("threshold")
    if signed is None:
        raise InvalidInput(
            f"{version.ref} has no signed threshold in its evidence; reviewers set it with "
            f"bedside version threshold {version.ref} VALUE before sign-off."
        )
    result = compare_shadow(
        shadow_probability=shadow_p,
        production_probability=production_p,
        production_decision=production_d,
        labels=labels,
        received=received,
        shadow_threshold=float(signed),
        production_threshold=production_threshold,
        period_start=start.timestamp(),
        period_end=end.timestamp(),
        errors=sum(errors.values()),
        skipped=skipped,
        missing=missing,
        error_kinds=dict(errors),
        criteria=criteria,
        n_boot=n_boot,
        seed=seed,
        notes=tuple(notes),
    )
    return result, dict(production_versions)


def _summary(result: ShadowResult) -> dict[str, Any]:
    """Return the few numbers the evidence and the ledger keep (no row-level data)."""
    counts, agreement, alerts = result.counts, result.agreement, result.alerts
    performance = result.performance

    def auroc(side: str) -> float | None:
        found = performance[side]
        return None if found is None else found["metrics"]["auroc"]["value"]

    return {
        "scored": counts["scored"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "missing": counts["missing"],
        "shadow_alone": counts["shadow_alone"],
        "labelled": performance["n_labelled"],
        "identical_share": agreement.get("identical_share"),
        "cohen_kappa": agreement.get("cohen_kappa"),
        "shadow_alerts_per_100": (alerts["shadow"] or {}).get("per_100_requests"),
        "production_alerts_per_100": (alerts["production"] or {}).get("per_100_requests"),
        "shadow_auroc": auroc("shadow"),
        "production_auroc": auroc("production"),
        "not_evaluated": list(result.not_evaluated),
    }


def shadow_report(
    platform: Platform,
    actor: User,
    ref: str,
    *,
    now: datetime | None = None,
    criteria: ShadowCriteria | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the shadow report of ``ref`` and record its verdict in the version's evidence.

    Args:
        actor: who asks (needs permission to read metrics).
        ref: ``NAME@VERSION`` of a version in shadow.
        now: the end of the period (the platform's clock when None).
        criteria: the pass/fail criteria (:class:`ShadowCriteria` defaults when None).
        n_boot, seed: the bootstrap of the performance intervals.

    Returns:
        ``passed``, ``html``, ``json``, ``sha256``, ``generated_at``, ``criteria``,
        ``summary`` and the criteria ``outcomes``.

    Raises:
        PermissionDenied: ``actor`` may not read metrics (recorded in the ledger).
        InvalidTransition: the version is not in shadow, or a promotion signature already binds
            its evidence (recorded in the ledger as a refused attempt).
        NotFound: no such model or version.
    """
    if platform.home is None:
        raise InvalidInput("This platform has no project folder; open it from settings.")
    criteria = criteria or ShadowCriteria()
    name, number = parse_ref(ref)
    end = platform.now() if now is None else now
    if end.tzinfo is None:
        raise InvalidInput("The report's end time needs a time zone (e.g. 2026-03-15T09:00Z).")
    try:
        with platform._authorised(actor, Permission.READ_METRICS, "version", ref) as tx:
            version = tx.registry.get_version(name, number)
            _check_reportable(tx, version)
            start = tx.registry.shadow_started_at(version)
        assert start is not None, "a version in shadow has a shadow start"
        if end < start:
            raise InvalidInput(
                f"The report's end {end.isoformat()} is before {ref} entered shadow "
                f"({start.isoformat()})."
            )
        reader = InferenceLogReader(platform.home / "inference-log", key_ring=platform.keys)
        records = [
            r
            for r in reader.records()
            if r.model == name and r.shadow_version == str(number) and start <= r.received <= end
        ]
        result, production_versions = _compare(
            version, records, start=start, end=end, criteria=criteria, n_boot=n_boot, seed=seed
        )
        generated = platform.now()
        data = {
            "report": "shadow",
            "model": name,
            "version": ref,
            "production_versions": production_versions,
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "generated_at": generated.isoformat(),
            **result.to_dict(),
        }
        from bedside.reports.shadow import write_shadow_report

        stamp = generated.strftime("%Y%m%dT%H%M%S%fZ")
        folder = platform.home / "reports" / "shadow" / name / str(number) / stamp
        html, json_path, digest = write_shadow_report(data, folder)
        summary = _summary(result)
        entry = {
            "passed": result.passed,
            "sha256": digest,
            "html": str(html),
            "json": str(json_path),
            "generated_at": generated.isoformat(),
            "period": data["period"],
            "criteria": criteria.to_dict(),
            "summary": summary,
        }
        with platform._authorised(actor, Permission.READ_METRICS, "version", ref) as tx:
            version = tx.registry.get_version(name, number)
            _check_reportable(tx, version)  # again: a signature may have come meanwhile
            before = version.evidence.get(EVIDENCE_KEY)
            tx.registry.set_evidence(version, {**version.evidence, EVIDENCE_KEY: entry})
            platform._event(
                tx,
                actor.username,
                "version.shadow_report",
                "version",
                ref,
                before=None
                if before is None
                else {"passed": before.get("passed"), "sha256": before.get("sha256")},
                after={"passed": result.passed, "sha256": digest, "summary": summary},
                reason="shadow report "
                + ("passed" if result.passed else "failed")
                + (
                    f"; not evaluated: {', '.join(result.not_evaluated)}"
                    if result.not_evaluated
                    else ""
                ),
            )
    except InvalidTransition as exc:
        platform._record_refusal(actor.username, "refused.shadow_report", "version", ref, exc)
        raise
    logger.info("shadow report of %s: passed=%s, %d scored", ref, result.passed, summary["scored"])
    return {
        **entry,
        "ref": ref,
        "outcomes": [o.to_dict() for o in result.outcomes],
    }
