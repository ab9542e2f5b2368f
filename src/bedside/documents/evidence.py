"""Gather one plain, PHI-free :class:`Evidence` object from the record of a model version.

Every document kind reads this object and nothing else, so what a document can say is exactly
what is gathered here. Only known keys are copied, one by one, from the registry (the version, its
evidence and gate results), the registered pipeline file, the dataset snapshot's manifest, the
e-signatures and the audit ledger: an unexpected key in any of them never reaches a document, so
nothing row-level that might have slipped into a record is rendered. The manifest and the ledger
hold counts, digests, names of columns and categories, never patient values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bedside.domain.models import AuditEvent, ModelVersion, Signature
from bedside.errors import BedsideError

logger = logging.getLogger(__name__)

__all__ = ["Evidence", "SignatureView", "gather_evidence"]

_SPLITS = ("validation", "test")
_SPLIT_KEYS = (
    "n_rows",
    "n_patients",
    "n_events",
    "prevalence",
    "threshold",
    "ci_method",
    "confidence_level",
    "n_boot",
    "stratified",
    "treat_all_net_benefit",
)
_METRIC_KEYS = ("value", "ci_lower", "ci_upper", "reason", "ci_reason")
_GROUP_KEYS = ("attribute", "group", "n_rows", "n_patients", "n_events", "status", "reasons")
_DISPARITY_KEYS = (
    "attribute",
    "metric",
    "kind",
    "method",
    "value",
    "ci_lower",
    "ci_upper",
    "groups_compared",
    "reason",
)
_CHECK_KEYS = (
    "key",
    "metric",
    "attribute",
    "direction",
    "threshold",
    "value",
    "ci_lower",
    "ci_upper",
    "compared",
    "judged_value",
    "verdict",
    "reason",
)
_MANIFEST_KEYS = ("digest", "created_at", "rows", "counts", "time_range", "source", "split")
_SHADOW_KEYS = ("passed", "sha256", "summary", "started_at", "ended_at", "rows", "duration")


def _pick(data: Any, keys: Sequence[str]) -> dict[str, Any]:
    """Return the known ``keys`` of a mapping (anything else is dropped)."""
    if not isinstance(data, Mapping):
        return {}
    return {k: _plain(data[k]) for k in keys if k in data}


def _plain(value: Any) -> Any:
    """Return ``value`` as plain JSON-like values (mappings, lists, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return utc_text(value)
    return value


def utc_text(moment: datetime | str) -> str:
    """Return a time as ``YYYY-MM-DD HH:MM:SS UTC`` (how documents show every time)."""
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
        moment = parsed
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class SignatureView:
    """An e-signature manifestation (21 CFR 11.50): printed name, time (UTC), meaning."""

    printed_name: str
    role: str
    meaning: str
    purpose: str
    signed_at: str
    verified: bool
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    """One ledger event about the version or its model (who, when, what; no payload)."""

    seq: int
    occurred_at: str
    actor: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything a regulatory document may say about one model version, as plain values.

    ``None`` or an empty container means *not recorded*; documents then say where the value
    would come from. ``missing`` says why a whole source could not be read (e.g. the dataset
    manifest is not on this machine).
    """

    model_name: str
    version: int
    ref: str
    state: str
    history: tuple[str, ...]
    created_at: str
    created_by: str
    state_changed_at: str
    generated_at: str
    bedside_version: str
    run_id: str | None
    pipeline_sha256: str | None
    #: The version's evidence: training facts.
    training: dict[str, Any]
    #: Per split ("validation", "test"): counts, CI method, and ``metrics`` {name: value/CI}.
    evaluation: dict[str, dict[str, Any]]
    #: Subgroup analysis: attributes, groups (with metrics), disparities, settings.
    fairness: dict[str, Any]
    #: The recorded gate outcomes: gate, passed, recorded_at/by, verdict, summary, checks.
    gates: tuple[dict[str, Any], ...]
    comparison_with_production: dict[str, Any] | None
    shadow_report: dict[str, Any] | None
    operating_point: dict[str, Any] | None
    feature_schema: tuple[dict[str, Any], ...]
    #: The registered pipeline file as plain values (``model_dump``), or ``{}``.
    pipeline: dict[str, Any]
    #: The dataset snapshot's manifest (known keys only), or ``{}``.
    dataset: dict[str, Any]
    signatures: tuple[SignatureView, ...]
    version_events: tuple[EventView, ...]
    monitoring_events: tuple[EventView, ...]
    documents_issued: tuple[EventView, ...]
    missing: dict[str, str] = field(default_factory=dict)

    # -- shortcuts the document kinds share ----------------------------------------------------

    @property
    def model_card(self) -> dict[str, Any]:
        """Return the pipeline file's ``model_card:`` section (``{}`` when absent)."""
        card = self.pipeline.get("model_card")
        return card if isinstance(card, dict) else {}

    def stage(self, name: str) -> dict[str, Any]:
        """Return the pipeline file's stage ``name`` as plain values (``{}`` when unknown)."""
        for stage in self.pipeline.get("stages", ()):
            if isinstance(stage, dict) and stage.get("name") == name:
                return stage
        return {}

    def gate_spec(self, kind: str) -> dict[str, Any] | str | None:
        """Return the pipeline file's pre-specified gate of ``kind`` (e.g. ``statistical``)."""
        for gate in self.stage("validation").get("gates", ()):
            if isinstance(gate, dict) and gate.get(kind) is not None:
                value = gate[kind]
                return value if isinstance(value, dict | str) else str(value)
        return None


def _signatures(
    signatures: Sequence[tuple[Signature, str | None]],
) -> tuple[SignatureView, ...]:
    return tuple(
        SignatureView(
            printed_name=s.printed_name,
            role=s.role,
            meaning=str(s.meaning.value),
            purpose=str(s.purpose.value),
            signed_at=utc_text(s.signed_at),
            verified=problem is None,
            problem=problem,
        )
        for s, problem in signatures
    )


# Only these payload keys of ledger events are shown (never a free payload).
_EVENT_DETAILS = {
    "version.": ("state", "threshold"),
    "gate.": ("gate", "passed"),
    "signature.signed": ("meaning", "purpose", "role"),
    "monitoring.checked": ("drift_score", "dataset_drift", "trigger_fired", "alert", "rows"),
    "monitoring.alert": ("metric", "value", "threshold"),
    "monitoring.retraining_triggered": ("trigger",),
    "document.issued": ("kind", "format", "sha256"),
}


def _event_view(event: AuditEvent) -> EventView:
    keys: tuple[str, ...] = ()
    for prefix, wanted in _EVENT_DETAILS.items():
        if event.action.startswith(prefix):
            keys = wanted
            break
    return EventView(
        seq=event.seq,
        occurred_at=utc_text(event.occurred_at),
        actor=event.actor,
        action=event.action,
        details=_pick(event.after or {}, keys),
    )


def _evaluation(evidence: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    evaluation = evidence.get("evaluation")
    if not isinstance(evaluation, Mapping):
        return out
    for split in _SPLITS:
        data = evaluation.get(split)
        if not isinstance(data, Mapping):
            continue
        picked = _pick(data, _SPLIT_KEYS)
        metrics = data.get("metrics")
        picked["metrics"] = (
            {str(k): _pick(v, _METRIC_KEYS) for k, v in metrics.items()}
            if isinstance(metrics, Mapping)
            else {}
        )
        out[split] = picked
    return out


def _fairness(evidence: Mapping[str, Any]) -> dict[str, Any]:
    data = evidence.get("fairness")
    if not isinstance(data, Mapping):
        by_gate = evidence.get("fairness_by_gate")
        if isinstance(by_gate, Mapping) and by_gate:
            data = next(iter(by_gate.values()))
    if not isinstance(data, Mapping):
        return {}
    groups = []
    for group in data.get("groups", ()):
        picked = _pick(group, _GROUP_KEYS)
        metrics = group.get("metrics") if isinstance(group, Mapping) else None
        picked["metrics"] = (
            {str(k): _pick(v, _METRIC_KEYS) for k, v in metrics.items()}
            if isinstance(metrics, Mapping)
            else {}
        )
        groups.append(picked)
    return {
        **_pick(
            data,
            (
                "attributes",
                "ci_method",
                "confidence_level",
                "n_boot",
                "min_group_size",
                "min_group_events",
                "threshold",
            ),
        ),
        "groups": groups,
        "disparities": [_pick(d, _DISPARITY_KEYS) for d in data.get("disparities", ())],
    }


def _gates(version: ModelVersion) -> tuple[dict[str, Any], ...]:
    out = []
    for result in version.gate_results:
        details = result.details if isinstance(result.details, Mapping) else {}
        out.append(
            {
                "gate": result.gate,
                "passed": bool(result.passed),
                "recorded_at": utc_text(result.recorded_at),
                "recorded_by": result.recorded_by,
                "verdict": details.get("verdict"),
                "summary": details.get("summary"),
                "checks": [_pick(c, _CHECK_KEYS) for c in details.get("checks", ())],
            }
        )
    return tuple(out)


def _pipeline(content: str | None) -> tuple[dict[str, Any], str | None]:
    if content is None:
        return {}, "the registered pipeline file is not in the registry"
    from bedside.domain.specfile import load_pipeline_text

    try:
        spec = load_pipeline_text(content, source="registered pipeline file").spec
    except BedsideError as exc:
        return {}, f"the registered pipeline file no longer loads ({exc.code})"
    return spec.pipeline.model_dump(mode="json"), None


def _dataset(artifacts_root: Path | None, digest: Any) -> tuple[dict[str, Any], str | None]:
    if not isinstance(digest, str) or not digest:
        return {}, "the version's evidence names no dataset digest"
    if artifacts_root is None:
        return {}, "this platform has no artifacts folder, where dataset manifests are kept"
    from bedside.stores.snapshots import list_snapshots

    for manifest in list_snapshots(artifacts_root):
        if manifest.digest == digest:
            data = manifest.to_dict()
            picked = _pick(data, _MANIFEST_KEYS)
            extraction = data.get("extraction") or {}
            picked["extraction"] = _pick(
                extraction,
                ("cohort", "features", "label", "pipeline", "pipeline_version", "ingest"),
            )
            deid = data.get("deidentification") or {}
            policy = deid.get("policy") if isinstance(deid, Mapping) else None
            picked["deidentification"] = {
                **_pick(policy or {}, ("method", "pseudonym", "date_shift_days", "age_over_89")),
                **_pick(deid, ("policy_hash",)),
            }
            picked["quality"] = _pick(
                data.get("quality") or {},
                ("passed", "blocking", "min_completeness", "status_counts", "rows", "columns"),
            )
            picked["column_names"] = [c.get("name") for c in data.get("columns", ())]
            return picked, None
    return {}, f"no dataset snapshot with digest {digest[:12]}… under {artifacts_root}"


def gather_evidence(
    *,
    version: ModelVersion,
    pipeline_content: str | None,
    signatures: Sequence[tuple[Signature, str | None]],
    version_events: Sequence[AuditEvent],
    model_events: Sequence[AuditEvent],
    artifacts_root: Path | None,
    generated_at: datetime,
) -> Evidence:
    """Build the :class:`Evidence` of ``version`` from what the stores returned.

    Args:
        version: the registry's version (state, history, evidence dict, gate results).
        pipeline_content: the text of the pipeline file registered with the version, if found.
        signatures: each signature with ``None`` (verifies) or why it does not.
        version_events: ledger events whose subject is the version.
        model_events: ledger events whose subject is the model (monitoring).
        artifacts_root: where dataset snapshots live (their manifests are read, never the data).
        generated_at: when the document is generated.
    """
    import bedside

    evidence = version.evidence if isinstance(version.evidence, Mapping) else {}
    missing: dict[str, str] = {}
    pipeline, why = _pipeline(pipeline_content)
    if why:
        missing["pipeline"] = why
    dataset, why = _dataset(artifacts_root, evidence.get("dataset_digest"))
    if why:
        missing["dataset"] = why
    shadow = evidence.get("shadow_report")
    comparison = evidence.get("comparison_with_production")
    operating_point = evidence.get("operating_point")
    events = [_event_view(e) for e in version_events]
    return Evidence(
        model_name=version.model_name,
        version=version.version,
        ref=version.ref,
        state=version.state.value,
        history=tuple(s.value for s in version.history),
        created_at=utc_text(version.created_at),
        created_by=version.created_by,
        state_changed_at=utc_text(version.state_changed_at),
        generated_at=utc_text(generated_at),
        bedside_version=bedside.__version__,
        run_id=version.run_id,
        pipeline_sha256=version.pipeline_sha256,
        training=_pick(
            evidence,
            (
                "estimator",
                "params",
                "seed",
                "label",
                "n_train",
                "n_train_events",
                "dataset_digest",
                "threshold",
                "threshold_rule",
                "mlflow_version",
                "mlflow_model_id",
            ),
        ),
        evaluation=_evaluation(evidence),
        fairness=_fairness(evidence),
        gates=_gates(version),
        comparison_with_production=_plain(comparison) if isinstance(comparison, Mapping) else None,
        shadow_report=_pick(shadow, _SHADOW_KEYS) if isinstance(shadow, Mapping) else None,
        operating_point=(
            _pick(
                operating_point,
                ("threshold", "sensitivity", "specificity", "ppv", "npv", "alerts_per_100"),
            )
            if isinstance(operating_point, Mapping)
            else None
        ),
        feature_schema=tuple(
            _pick(f, ("name", "kind", "nullable", "categories"))
            for f in evidence.get("feature_schema", ())
        ),
        pipeline=pipeline,
        dataset=dataset,
        signatures=_signatures(signatures),
        version_events=tuple(e for e in events if e.action != "document.issued"),
        monitoring_events=tuple(
            _event_view(e) for e in model_events if e.action.startswith("monitoring.")
        ),
        documents_issued=tuple(e for e in events if e.action == "document.issued"),
        missing=missing,
    )
