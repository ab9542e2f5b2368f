"""Compare a shadow version with production over its shadow period: the promotion's evidence.

:func:`compare_shadow` takes the shadow period's requests as plain arrays and returns aggregates
only (counts, shares, histograms, metrics with intervals — never a request's row):

* **Agreement** on the requests both versions scored: the share of identical decisions (each at its
  own signed threshold), Cohen's kappa, the 2×2 table of decisions, the Pearson and Spearman
  correlations of the probabilities and their mean absolute difference.
* **Score distributions** of both: histograms over [0, 1] and quantiles.
* **Alert burden**: alerts per 100 scored requests and per day over the period — the shadow's
  would-be alerts at its signed threshold next to production's actual alerts.
* **Performance** of both on the same labelled requests (AUROC, sensitivity, specificity, PPV) with
  percentile bootstrap intervals (every request its own unit: the log holds no patient
  identifiers), and DeLong's test of the AUROC difference.
* **Verdict** against :class:`ShadowCriteria`. A criterion that cannot be evaluated yet (no
  outcomes, one class only, no production to compare with) is listed as *not evaluated*: it does
  not fail the report.

A request scored by the shadow alone (no production version was live) has a NaN production
probability; with no production at all, agreement is *not applicable* and only the shadow's own
figures are given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from bedside.domain.evaluation import check_confidence_level, check_threshold, evaluate, json_number
from bedside.errors import InvalidInput

__all__ = [
    "HISTOGRAM_BINS",
    "QUANTILES",
    "SHADOW_METRICS",
    "CriterionOutcome",
    "ShadowCriteria",
    "ShadowResult",
    "cohen_kappa",
    "compare_shadow",
]

#: Metrics of each version on the labelled requests, in report order.
SHADOW_METRICS: Final = ("auroc", "sensitivity", "specificity", "ppv")
#: Equal-width bins of the score histograms over [0, 1].
HISTOGRAM_BINS: Final = 20
#: Bins per axis of the production × shadow score table.
JOINT_BINS: Final = 10
QUANTILES: Final = (0.05, 0.25, 0.5, 0.75, 0.95)
_DAY: Final = 86400.0

FloatArray = npt.NDArray[np.float64]
Status = Literal["pass", "fail", "not evaluated"]


@dataclass(frozen=True, slots=True)
class ShadowCriteria:
    """What a shadow period must show for its report to pass (the defaults are the policy).

    Attributes:
        min_scored: requests the shadow must have scored (without error) over the period.
        max_error_rate: highest share of the shadow's attempts that may end in an error
            (``errors / (scored + errors)``; requests skipped because the shadow queue was full
            are counted and shown but are a capacity matter, not the model's error).
        min_labelled: labelled requests (both classes present) needed before performance is
            judged; with fewer, the performance criterion is *not evaluated*.
        auroc_margin: non-inferiority margin: the lower bound of the shadow's AUROC interval must
            be at least production's AUROC (point estimate, same requests) minus this.
    """

    min_scored: int = 100
    max_error_rate: float = 0.01
    min_labelled: int = 30
    auroc_margin: float = 0.05

    def __post_init__(self) -> None:
        for name in ("min_scored", "min_labelled"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(
                    f"ShadowCriteria.{name} must be a whole number >= 0, got {value!r}",
                    details={"argument": name},
                )
        for name in ("max_error_rate", "auroc_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise InvalidInput(
                    f"ShadowCriteria.{name} must be a number between 0 and 1, got {value!r}",
                    details={"argument": name},
                )

    def to_dict(self) -> dict[str, Any]:
        """Return the criteria as a JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CriterionOutcome:
    """One criterion of the verdict: its rule, what was observed and whether it held."""

    name: str
    rule: str
    status: Status
    observed: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True)
class ShadowResult:
    """The shadow period's comparison: JSON-ready sections and the verdict."""

    counts: dict[str, Any]
    agreement: dict[str, Any]
    distributions: dict[str, Any]
    alerts: dict[str, Any]
    performance: dict[str, Any]
    criteria: ShadowCriteria
    outcomes: tuple[CriterionOutcome, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """Return whether no evaluated criterion failed."""
        return all(o.status != "fail" for o in self.outcomes)

    @property
    def not_evaluated(self) -> tuple[str, ...]:
        """Return the names of the criteria that could not be evaluated yet."""
        return tuple(o.name for o in self.outcomes if o.status == "not evaluated")

    def to_dict(self) -> dict[str, Any]:
        """Return the whole comparison as a JSON-ready mapping (aggregates only)."""
        return {
            "verdict": {
                "passed": self.passed,
                "criteria": self.criteria.to_dict(),
                "outcomes": [o.to_dict() for o in self.outcomes],
                "not_evaluated": list(self.not_evaluated),
            },
            "counts": self.counts,
            "agreement": self.agreement,
            "distributions": self.distributions,
            "alerts": self.alerts,
            "performance": self.performance,
            "notes": list(self.notes),
        }


def _as_float(values: Any, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be numbers", details={"argument": name}) from None
    return array


def _probabilities(values: Any, name: str, *, missing: bool) -> FloatArray:
    p = _as_float(values, name)
    finite = p[~np.isnan(p)] if missing else p
    if not missing and np.isnan(p).any():
        raise InvalidInput(f"{name} has a missing value", details={"argument": name})
    if finite.size and (finite.min() < 0 or finite.max() > 1 or not np.isfinite(finite).all()):
        raise InvalidInput(
            f"{name} must be probabilities between 0 and 1", details={"argument": name}
        )
    return p


def cohen_kappa(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> tuple[float, str | None]:
    """Return Cohen's kappa of two binary raters and, when it is undefined, why.

    κ = (p_o − p_e) / (1 − p_e), with p_e from each rater's own share of positives.
    """
    n = len(a)
    if n == 0:
        return math.nan, "no request was scored by both versions"
    observed = float(np.count_nonzero(a == b)) / n
    pa, pb = float(np.count_nonzero(a)) / n, float(np.count_nonzero(b)) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1:
        return math.nan, "both versions gave one and the same decision to every request"
    return (observed - expected) / (1 - expected), None


def _correlation(x: FloatArray, y: FloatArray) -> tuple[float, str | None]:
    if len(x) < 2:
        return math.nan, "fewer than two requests scored by both versions"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, "one version gave every request the same probability"
    return float(np.corrcoef(x, y)[0, 1]), None


def _number(value: float, digits: int = 6) -> float | None:
    finite = json_number(value)
    return None if finite is None else round(finite, digits)


def _distribution(p: FloatArray) -> dict[str, Any] | None:
    if p.size == 0:
        return None
    counts, _ = np.histogram(p, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "n": int(p.size),
        "mean": _number(float(p.mean())),
        "quantiles": {
            f"{q:g}": _number(float(v))
            for q, v in zip(QUANTILES, np.quantile(p, QUANTILES), strict=True)
        },
        "histogram": [int(c) for c in counts],
    }


def _agreement(
    production_p: FloatArray,
    production_alert: npt.NDArray[np.bool_],
    shadow_p: FloatArray,
    shadow_alert: npt.NDArray[np.bool_],
    *,
    scored: int,
) -> dict[str, Any]:
    n = len(shadow_p)
    if n == 0:
        return {
            "applicable": False,
            "reason": "not applicable: no production version scored the requests the shadow "
            "scored (shadow alone), so there is nothing to agree with"
            if scored
            else "not applicable: the shadow has scored no request yet",
        }
    kappa, kappa_reason = cohen_kappa(production_alert, shadow_alert)
    pearson, pearson_reason = _correlation(production_p, shadow_p)
    spearman, _ = _correlation(
        stats.rankdata(production_p).astype(np.float64), stats.rankdata(shadow_p).astype(np.float64)
    )
    joint, _, _ = np.histogram2d(
        production_p, shadow_p, bins=JOINT_BINS, range=((0.0, 1.0), (0.0, 1.0))
    )
    difference = np.abs(shadow_p - production_p)
    return {
        "applicable": True,
        "n": n,
        "identical_decisions": int(np.count_nonzero(production_alert == shadow_alert)),
        "identical_share": _number(float(np.count_nonzero(production_alert == shadow_alert)) / n),
        "cohen_kappa": _number(kappa),
        "cohen_kappa_reason": kappa_reason,
        "table": {
            "both_alert": int(np.count_nonzero(production_alert & shadow_alert)),
            "production_only": int(np.count_nonzero(production_alert & ~shadow_alert)),
            "shadow_only": int(np.count_nonzero(~production_alert & shadow_alert)),
            "neither": int(np.count_nonzero(~production_alert & ~shadow_alert)),
        },
        "pearson": _number(pearson),
        "spearman": _number(spearman),
        "correlation_reason": pearson_reason,
        "mean_absolute_difference": _number(float(difference.mean())),
        "joint_histogram": [[int(c) for c in row] for row in joint],  # [production bin][shadow bin]
    }


def _alerts(
    alert: npt.NDArray[np.bool_], day: npt.NDArray[np.int64], n_days: int, period_days: float
) -> dict[str, Any] | None:
    n = len(alert)
    if n == 0:
        return None
    count = int(np.count_nonzero(alert))
    return {
        "requests": n,
        "alerts": count,
        "per_100_requests": _number(100 * count / n, 4),
        "per_day": _number(count / period_days, 4) if period_days > 0 else None,
        "daily": [int(c) for c in np.bincount(day[alert], minlength=n_days)],
    }


def _model_performance(result: Any) -> dict[str, Any]:
    return {
        "threshold": result.threshold,
        "n": result.n_rows,
        "n_events": result.n_events,
        "metrics": {name: result.metrics[name].to_dict() for name in SHADOW_METRICS},
    }


def _performance(
    labels: FloatArray,
    shadow_p: FloatArray,
    shadow_threshold: float,
    production_p: FloatArray,
    production_threshold: float | None,
    *,
    n_boot: int,
    seed: int,
    confidence_level: float,
) -> dict[str, Any]:
    labelled = ~np.isnan(labels)
    has_production = ~np.isnan(production_p)
    compared = production_threshold is not None and bool((labelled & has_production).any())
    cases = labelled & has_production if compared else labelled
    y = labels[cases].astype(np.int8)
    events = int(np.count_nonzero(y))
    out: dict[str, Any] = {
        "cases": "requests labelled and scored by both versions"
        if compared
        else "labelled requests scored by the shadow",
        "n_labelled": int(cases.sum()),
        "n_events": events,
        "confidence_level": confidence_level,
        "ci_method": "percentile bootstrap over requests (no patient identifiers are logged)",
        "n_boot": n_boot,
        "seed": seed,
        "shadow": None,
        "production": None,
        "delong": None,
    }
    if not cases.any():
        out["reason"] = "no outcome has arrived yet for the requests the shadow scored"
        return out
    run = partial(evaluate, y, seed=seed, n_boot=n_boot, confidence_level=confidence_level)
    shadow = run(shadow_p[cases], threshold=shadow_threshold)
    out["shadow"] = _model_performance(shadow)
    if compared:
        assert production_threshold is not None
        production = run(production_p[cases], threshold=production_threshold)
        out["production"] = _model_performance(production)
        delong = shadow.compare_with(production).to_dict()
        delong["difference_is"] = "shadow − production"
        out["delong"] = delong
    return out


def _verdict(
    criteria: ShadowCriteria,
    *,
    scored: int,
    errors: int,
    performance: dict[str, Any],
) -> tuple[CriterionOutcome, ...]:
    outcomes = [
        CriterionOutcome(
            "min_scored",
            f"the shadow scored at least {criteria.min_scored} requests",
            "pass" if scored >= criteria.min_scored else "fail",
            f"{scored} scored",
        )
    ]
    attempts = scored + errors
    rule = f"shadow error rate at most {100 * criteria.max_error_rate:g}%"
    if attempts == 0:
        outcomes.append(
            CriterionOutcome(
                "max_error_rate", rule, "not evaluated", "no attempt", "the shadow scored nothing"
            )
        )
    else:
        rate = errors / attempts
        outcomes.append(
            CriterionOutcome(
                "max_error_rate",
                rule,
                "pass" if rate <= criteria.max_error_rate else "fail",
                f"{errors} errors in {attempts} attempts ({100 * rate:.2f}%)",
            )
        )
    rule = (
        f"with at least {criteria.min_labelled} labelled requests of both classes: the lower bound "
        f"of the shadow's AUROC interval is at least production's AUROC − {criteria.auroc_margin:g}"
    )
    n, events = performance["n_labelled"], performance["n_events"]
    observed = f"{n} labelled ({events} events)"
    reason: str | None = None
    if performance["production"] is None and performance["shadow"] is not None:
        reason = "no production version scored the labelled requests: nothing to compare with"
    elif n < criteria.min_labelled:
        reason = f"only {n} labelled requests; at least {criteria.min_labelled} are needed"
    elif events == 0 or events == n:
        reason = "the labelled requests hold only one class: AUROC is undefined"
    if reason is None:
        shadow = performance["shadow"]["metrics"]["auroc"]
        production = performance["production"]["metrics"]["auroc"]
        lower, point = shadow["ci_lower"], production["value"]
        if lower is None or point is None:
            reason = shadow["ci_reason"] or production["reason"] or "AUROC interval undefined"
        else:
            bound = point - criteria.auroc_margin
            outcomes.append(
                CriterionOutcome(
                    "auroc_non_inferior",
                    rule,
                    "pass" if lower >= bound else "fail",
                    f"{observed}; shadow AUROC lower bound {lower:.3f} vs production AUROC "
                    f"{point:.3f} − {criteria.auroc_margin:g} = {bound:.3f}",
                )
            )
            return tuple(outcomes)
    if performance["shadow"] is None:
        reason = "no outcome has arrived yet"
    outcomes.append(CriterionOutcome("auroc_non_inferior", rule, "not evaluated", observed, reason))
    return tuple(outcomes)


def compare_shadow(
    *,
    shadow_probability: Any,
    production_probability: Any,
    production_decision: Any,
    labels: Any,
    received: Any,
    shadow_threshold: float,
    production_threshold: float | None,
    period_start: float,
    period_end: float,
    errors: int = 0,
    skipped: int = 0,
    missing: int = 0,
    error_kinds: Mapping[str, int] | None = None,
    criteria: ShadowCriteria | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    notes: tuple[str, ...] = (),
) -> ShadowResult:
    """Compare the shadow with production over the shadow period and judge the criteria.

    Every array has one entry per request the shadow scored without error.

    Args:
        shadow_probability: the shadow's probability.
        production_probability: production's probability, NaN where no production version was
            live (the request was scored by the shadow alone).
        production_decision: production's decision (1 alert, 0 none, NaN where none was made) —
            the decision actually returned.
        labels: the outcome (0/1), NaN where none has arrived.
        received: when each request arrived (epoch seconds).
        shadow_threshold: the shadow version's signed operating threshold.
        production_threshold: production's signed threshold (for its performance), or None.
        period_start, period_end: the shadow period (epoch seconds), for alerts per day.
        errors, skipped, missing: requests routed to the shadow that it failed on, that were
            skipped (queue full) and whose shadow output never reached the log.
        error_kinds: errors counted by kind (exception type, ``input``…), shown as they are.
        criteria: the pass/fail criteria (the defaults of :class:`ShadowCriteria` if None).
        n_boot, seed, confidence_level: the bootstrap of the performance intervals.
        notes: remarks carried into the report (e.g. production's threshold changed).

    Raises:
        InvalidInput: arrays of different lengths, probabilities outside [0, 1], labels other
            than 0/1, a threshold outside [0, 1] or a period that ends before it starts.
    """
    criteria = criteria or ShadowCriteria()
    shadow_p = _probabilities(shadow_probability, "shadow_probability", missing=False)
    production_p = _probabilities(production_probability, "production_probability", missing=True)
    production_d = _as_float(production_decision, "production_decision")
    y = _as_float(labels, "labels")
    when = _as_float(received, "received")
    lengths = {len(a) for a in (shadow_p, production_p, production_d, y, when)}
    if len(lengths) != 1:
        raise InvalidInput(
            "shadow_probability, production_probability, production_decision, labels and "
            "received need one entry per scored request; their lengths differ",
            details={"lengths": sorted(lengths)},
        )
    known = y[~np.isnan(y)]
    if not np.isin(known, (0.0, 1.0)).all():
        raise InvalidInput("labels must be 0, 1 or missing (NaN)", details={"argument": "labels"})
    shadow_threshold = check_threshold(shadow_threshold)
    if production_threshold is not None:
        production_threshold = check_threshold(production_threshold)
    confidence_level = check_confidence_level(confidence_level)
    if not period_end >= period_start:
        raise InvalidInput(
            "the shadow period ends before it starts", details={"argument": "period_end"}
        )
    for name, value in (("errors", errors), ("skipped", skipped), ("missing", missing)):
        if value < 0:
            raise InvalidInput(f"{name} must be >= 0", details={"argument": name})

    period_days = (period_end - period_start) / _DAY
    n_days = max(1, math.ceil(period_days))
    day = np.clip(((when - period_start) // _DAY).astype(np.int64), 0, n_days - 1)
    shadow_alert = shadow_p >= shadow_threshold
    both = ~np.isnan(production_p) & ~np.isnan(production_d)
    production_alert = production_d[both] == 1
    scored = len(shadow_p)
    counts = {
        "routed_to_shadow": scored + errors + skipped + missing,
        "scored": scored,
        "errors": errors,
        "skipped": skipped,
        "missing": missing,
        "error_kinds": dict(sorted((error_kinds or {}).items())),
        "with_production": int(both.sum()),
        "shadow_alone": int(scored - both.sum()),
        "labelled": len(known),
        "period_days": _number(period_days, 4),
    }
    performance = _performance(
        y,
        shadow_p,
        shadow_threshold,
        production_p,
        production_threshold,
        n_boot=n_boot,
        seed=seed,
        confidence_level=confidence_level,
    )
    return ShadowResult(
        counts=counts,
        agreement=_agreement(
            production_p[both], production_alert, shadow_p[both], shadow_alert[both], scored=scored
        ),
        distributions={
            "bins": HISTOGRAM_BINS,
            "shadow": _distribution(shadow_p),
            "production": _distribution(production_p[both]),
        },
        alerts={
            "shadow_threshold": shadow_threshold,
            "production_threshold": production_threshold,
            "n_days": n_days,
            "shadow": _alerts(shadow_alert, day, n_days, period_days),
            "production": _alerts(production_alert, day[both], n_days, period_days),
            "shadow_on_same_requests": _alerts(shadow_alert[both], day[both], n_days, period_days),
        },
        performance=performance,
        criteria=criteria,
        outcomes=_verdict(criteria, scored=scored, errors=errors, performance=performance),
        notes=notes,
    )
