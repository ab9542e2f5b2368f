"""Drift statistics: agreement with Evidently 0.7.23, PSI vectors, profiles, properties, errors.

Evidently is a dev dependency used here as the reference implementation only; it is imported once,
lazily, by the module-scoped ``evidently`` fixture (its import costs seconds and warns).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from bedside.domain import drift_stats
from bedside.domain.drift import (
    METHOD_LABELS,
    ColumnKind,
    DriftMethod,
    DriftOverride,
    DriftResult,
    ReferenceProfile,
    build_profile,
    compute_drift,
    population_stability_index,
)
from bedside.errors import InvalidInput

NUMERICAL = [
    "num_normal",
    "num_shifted",
    "num_nan",
    "int_wide",
    "low3",
    "binary_num",
    "constant",
    "rounded",
]
CATEGORICAL = ["cat3", "cat_bin", "cat_codes", "flag"]
KINDS = {**dict.fromkeys(NUMERICAL, "numerical"), **dict.fromkeys(CATEGORICAL, "categorical")}


def clinical_frame(seed: int, n: int, shift: float) -> pd.DataFrame:
    """A seeded feature table with every column type the default method table distinguishes."""
    rng = np.random.default_rng(seed)
    num_nan = rng.normal(0.0, 1.0 + shift, n)
    num_nan[rng.random(n) < 0.1] = np.nan
    num_nan[rng.random(n) < 0.002] = np.inf
    cats = np.array(["a", "b", "c", *(["d"] if shift else [])], dtype=object)
    return pd.DataFrame(
        {
            "num_normal": rng.normal(0.0, 1.0, n),
            "num_shifted": rng.normal(shift, 1.0, n),
            "num_nan": num_nan,
            "int_wide": rng.integers(0, 100 + int(20 * shift), n),
            "low3": rng.integers(0, 3, n).astype(float),
            "binary_num": (rng.random(n) < 0.3 + shift / 3).astype(float),
            "constant": np.full(n, 7.0),
            "rounded": np.round(rng.normal(80.0 + 5 * shift, 12.0, n), 1),
            "cat3": cats[rng.integers(0, cats.size, n)],
            "cat_bin": np.array(["yes", "no"], dtype=object)[(rng.random(n) < 0.4).astype(int)],
            "cat_codes": rng.integers(1, 5, n),
            "flag": rng.random(n) < 0.2 + shift / 4,
        }
    )


@dataclass(frozen=True)
class EvidentlyColumn:
    label: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyRun:
    columns: dict[str, EvidentlyColumn]
    share: float
    dataset_drift: bool


@pytest.fixture(scope="module")
def evidently() -> Iterator[SimpleNamespace]:
    """Import Evidently once for the module (it warns on import; those warnings are not ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.core.datasets import infer_column_type
        from evidently.presets import DataDriftPreset
    yield SimpleNamespace(
        DataDefinition=DataDefinition,
        Dataset=Dataset,
        Report=Report,
        DataDriftPreset=DataDriftPreset,
        infer_column_type=infer_column_type,
    )


def run_evidently(
    ev: SimpleNamespace,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    **preset: Any,
) -> EvidentlyRun:
    """Run Evidently's DataDriftPreset and read each column's method, score and verdict."""
    definition = ev.DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
    )
    with warnings.catch_warnings():
        # Evidently lets numpy warn (e.g. chi-square with a category new in the current data).
        warnings.simplefilter("ignore")
        snapshot = ev.Report([ev.DataDriftPreset(**preset)], include_tests=True).run(
            ev.Dataset.from_pandas(current[list(kinds)], data_definition=definition),
            ev.Dataset.from_pandas(reference[list(kinds)], data_definition=definition),
        )
    data = snapshot.dict()
    failed = {t["metric_config"]["metric_id"]: t["status"].value == "FAIL" for t in data["tests"]}
    columns: dict[str, EvidentlyColumn] = {}
    share = math.nan
    dataset_drift = False
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = EvidentlyColumn(
                label=config["method"],
                score=float(metric["value"]),
                threshold=float(config["threshold"]),
                drifted=failed[metric["id"]],
            )
        else:
            share = float(metric["value"]["share"])
            dataset_drift = failed[metric["id"]]  # the "share < drift_share" test fails
    return EvidentlyRun(columns, share, dataset_drift)


def assert_agrees(ours: DriftResult, theirs: EvidentlyRun) -> None:
    """Scores to 1e-9, identical methods, thresholds and verdicts, identical dataset decision."""
    assert [c.name for c in ours.columns] == list(theirs.columns)
    for column in ours.columns:
        ref = theirs.columns[column.name]
        where = f"column {column.name}: ours {column.method_label} {column.score!r}, {ref}"
        # Evidently shows its display name for a method it chose, the name for one it was given.
        assert ref.label in (column.method_label, column.method.value), where
        assert column.threshold == ref.threshold, where
        assert math.isclose(column.score, ref.score, rel_tol=1e-9, abs_tol=1e-9), where
        assert column.drifted == ref.drifted, where
    assert ours.drift_score == theirs.share
    assert ours.dataset_drift == theirs.dataset_drift


# -- agreement with Evidently ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "expected"),
    [
        # n_ref <= 1000: K-S for many values, chi-square for 3-5, Z for <= 2.
        (600, 900, {"num_normal": "ks", "low3": "chisquare", "constant": "z", "cat3": "chisquare"}),
        # n_ref > 1000: Wasserstein for many values, Jensen-Shannon otherwise.
        (
            3000,
            4000,
            {"num_normal": "wasserstein", "low3": "jensenshannon", "flag": "jensenshannon"},
        ),
        # 20,000 current rows: K-S by the asymptotic formula, discretised columns hashed.
        (800, 20_000, {"rounded": "ks", "binary_num": "z", "cat_bin": "z"}),
    ],
    ids=["small-reference", "large-reference", "large-current"],
)
def test_drift_agrees_with_evidently_default_methods(
    evidently: SimpleNamespace, n_ref: int, n_cur: int, expected: dict[str, str]
) -> None:
    reference = clinical_frame(1, n_ref, 0.0)
    current = clinical_frame(2, n_cur, 0.15)
    ours = compute_drift(build_profile(reference, kinds=KINDS), current)
    assert_agrees(ours, run_evidently(evidently, reference, current, KINDS))
    for name, method in expected.items():
        assert ours.column(name).method is DriftMethod(method)
    assert ours.column("cat3").new_categories == 1
    assert 0 < ours.n_drifted < len(ours.columns), "a scenario must mix drifted and stable columns"


@pytest.mark.slow
def test_psi_and_overrides_agree_with_evidently(evidently: SimpleNamespace) -> None:
    reference = clinical_frame(3, 2500, 0.0)
    current = clinical_frame(4, 6000, 0.15)
    profile = build_profile(reference, kinds=KINDS)

    # PSI on every column: value bins for few values, Sturges bins of ref ∪ cur for many.
    ours = compute_drift(
        profile, current, per_column_overrides=dict.fromkeys(KINDS, DriftOverride(method="psi"))
    )
    assert_agrees(ours, run_evidently(evidently, reference, current, KINDS, method="psi"))
    default = compute_drift(profile, current)
    for column in default.columns:  # the extra PSI of a default run is the same statistic
        assert column.psi == ours.column(column.name).score

    # Per-column methods and thresholds, and a dataset decision exactly at the drift share.
    methods = {
        "num_normal": "ks",
        "num_shifted": "jensenshannon",
        "int_wide": "ks",
        "cat3": "z",
        "cat_codes": "chisquare",
    }
    thresholds = {"num_shifted": 0.02, "rounded": 0.3, "cat_bin": 0.5}
    overrides = {
        name: DriftOverride(method=methods.get(name), threshold=thresholds.get(name))
        for name in {*methods, *thresholds}
    }
    first = compute_drift(profile, current, per_column_overrides=overrides)
    at_share = first.drift_score
    ours = compute_drift(profile, current, per_column_overrides=overrides, drift_share=at_share)
    theirs = run_evidently(
        evidently,
        reference,
        current,
        KINDS,
        per_column_method=methods,
        per_column_threshold=thresholds,
        drift_share=at_share,
    )
    assert_agrees(ours, theirs)
    assert ours.dataset_drift and theirs.dataset_drift  # share >= drift_share drifts
    assert ours.column("num_shifted").threshold == 0.02


@pytest.mark.slow
def test_kind_inference_matches_evidently(evidently: SimpleNamespace) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "float": rng.normal(size=200),
            "few_ints": rng.integers(0, 10, 200),
            "many_ints": rng.integers(0, 50, 200),
            "text_cat": np.array(["a", "b"], dtype=object)[rng.integers(0, 2, 200)],
            "boolean": rng.random(200) < 0.5,
            "category": pd.Categorical(rng.choice(["x", "y"], 200)),
        }
    )
    profile = build_profile(frame)
    names = {"num": "numerical", "cat": "categorical"}
    for column in profile.columns:
        theirs = evidently.infer_column_type(frame[column.name]).value
        assert column.kind.value == names[theirs], column.name


# -- PSI and binning ------------------------------------------------------------------------------


def test_psi_regulatory_test_vectors() -> None:
    assert population_stability_index([0.2, 0.5, 0.3], [0.1, 0.6, 0.3]) == pytest.approx(
        0.0875, abs=5e-5
    )
    assert population_stability_index([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(
        0.228217, abs=5e-7
    )
    # Symmetric: swapping expected and actual does not change the value.
    assert population_stability_index([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(
        0.228217, abs=5e-7
    )


def test_psi_replaces_empty_bins_as_evidently_does() -> None:
    assert list(drift_stats.fill_zero_shares(np.array([0.5, 0.0, 0.5]))) == [0.5, 0.0001, 0.5]
    tiny = drift_stats.fill_zero_shares(np.array([0.99995, 0.00005, 0.0]))
    assert tiny[2] == pytest.approx(0.00005 / 10**6)
    psi = population_stability_index([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert math.isfinite(psi) and psi > 0.25


@settings(max_examples=60)
@given(
    values=hs.lists(
        hs.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
    )
)
def test_sturges_edges_match_numpy(values: list[float]) -> None:
    data = np.asarray(values)
    ours = drift_stats.sturges_edges(data.min(), data.max(), data.size, integer=False)
    np.testing.assert_array_equal(ours, np.histogram_bin_edges(data, bins="sturges"))


def test_sturges_edges_match_numpy_for_integer_data() -> None:
    # ptp 21 over 2**21 values: the Sturges width is below 1, numpy widens it to 1 for integers.
    data = np.arange(2**21, dtype=np.int64) % 22
    ours = drift_stats.sturges_edges(0, 21, data.size, integer=True)
    np.testing.assert_array_equal(ours, np.histogram_bin_edges(data, bins="sturges"))
    assert ours.size == 22


@settings(max_examples=60)
@given(
    shares=hs.lists(
        hs.tuples(hs.integers(0, 10_000), hs.integers(0, 10_000)), min_size=1, max_size=40
    ).filter(lambda pairs: sum(a for a, _ in pairs) > 0 and sum(b for _, b in pairs) > 0)
)
def test_jensenshannon_equals_scipys(shares: list[tuple[int, int]]) -> None:
    from scipy.spatial.distance import jensenshannon

    p = np.array([a for a, _ in shares]) / sum(a for a, _ in shares)
    q = np.array([b for _, b in shares]) / sum(b for _, b in shares)
    assert drift_stats.jensenshannon_distance(p, q) == float(jensenshannon(p, q))


def test_hashed_and_sorted_summaries_are_identical() -> None:
    rng = np.random.default_rng(7)
    discrete = np.round(rng.normal(0, 5, 50_000), 1)
    discrete[::97] = np.nan
    discrete[::1001] = -np.inf
    discrete[:3] = [-0.0, 0.0, -0.0]
    hashed, dropped = drift_stats.summarise(discrete)
    # Forcing the sort path: a distinct-valued head makes the probe pick sorting.
    head = np.arange(5000, dtype=float) + 1e9
    sorted_, dropped_sorted = drift_stats.summarise(np.concatenate([head, discrete]))
    keep = sorted_.values < 1e9
    np.testing.assert_array_equal(hashed.values, sorted_.values[keep])
    np.testing.assert_array_equal(hashed.counts, sorted_.counts[keep])
    assert dropped == dropped_sorted == np.count_nonzero(~np.isfinite(discrete))
    assert np.count_nonzero(hashed.values == 0) == 1  # -0.0 and 0.0 are one value


# -- profiles -------------------------------------------------------------------------------------


def test_profile_round_trips_through_json_and_npz_with_identical_results() -> None:
    reference = clinical_frame(8, 2000, 0.0)
    reference["score"] = np.random.default_rng(8).beta(2, 5, 2000)
    current = clinical_frame(9, 3000, 0.1)
    current["score"] = np.random.default_rng(9).beta(2, 4, 3000)
    profile = build_profile(reference, kinds=KINDS, prediction_column="score")
    expected = compute_drift(profile, current).to_dict()
    for restored in (
        ReferenceProfile.from_json(profile.to_json()),
        ReferenceProfile.from_npz(profile.to_npz()),
    ):
        assert restored.to_dict() == profile.to_dict()
        assert compute_drift(restored, current).to_dict() == expected


def test_profile_keeps_no_rows_only_distinct_values_and_counts() -> None:
    reference = clinical_frame(10, 5000, 0.0)
    profile = build_profile(reference, kinds=KINDS)
    column = {c.name: c for c in profile.columns}
    assert column["cat3"].values == ("a", "b", "c")
    assert column["flag"].values == (False, True)
    assert (
        column["num_nan"].n_missing
        == reference["num_nan"].isna().sum() + np.isinf(reference["num_nan"]).sum()
    )
    assert column["rounded"].n_unique < 5000
    assert column["num_normal"].std == pytest.approx(np.std(reference["num_normal"]), rel=1e-12)
    assert profile.n_rows == 5000


def test_unreadable_profiles_are_refused_clearly() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        ReferenceProfile.from_json("{")
    with pytest.raises(InvalidInput, match="Not a bedside reference profile"):
        ReferenceProfile.from_json('{"format": "other"}')
    with pytest.raises(InvalidInput, match="unreadable"):
        ReferenceProfile.from_npz(b"not an npz")
    good = build_profile(pd.DataFrame({"x": [3.0, 1.0, 2.0, 2.0]})).to_dict()
    assert good["columns"][0]["values"] == [1.0, 2.0, 3.0]
    for field, bad in (("values", [2.0, 1.0, 3.0]), ("counts", [1, 0, 1]), ("counts", [1, 2])):
        tampered = {**good, "columns": [{**good["columns"][0], field: bad}]}
        with pytest.raises(InvalidInput, match="inconsistent"):
            ReferenceProfile.from_dict(tampered)
    with pytest.raises(InvalidInput, match="no feature columns"):
        ReferenceProfile.from_dict({**good, "columns": []})


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=hs.integers(0, 2**32 - 1), n=hs.integers(1100, 4000), copies=hs.integers(1, 6))
def test_current_equal_to_reference_shows_no_drift(seed: int, n: int, copies: int) -> None:
    reference = clinical_frame(seed, n, 0.0)
    # The same rows, repeated and shuffled: every empirical distribution is unchanged.
    current = pd.concat([reference] * copies).sample(frac=1.0, random_state=seed % 2**31)
    result = compute_drift(build_profile(reference, kinds=KINDS), current)
    assert result.drift_score == 0.0 and not result.dataset_drift
    for column in result.columns:
        assert not column.drifted, column
        assert column.psi == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=hs.integers(0, 2**32 - 1), n_ref=hs.sampled_from([400, 2500]))
def test_results_ignore_row_order(seed: int, n_ref: int) -> None:
    reference = clinical_frame(seed, n_ref, 0.0)
    current = clinical_frame(seed + 1, 3000, 0.1)
    expected = compute_drift(build_profile(reference, kinds=KINDS), current).to_dict()
    shuffled_ref = reference.sample(frac=1.0, random_state=1)
    shuffled_cur = current.sample(frac=1.0, random_state=2)
    again = compute_drift(build_profile(shuffled_ref, kinds=KINDS), shuffled_cur).to_dict()
    assert again == expected


# -- behaviour ------------------------------------------------------------------------------------


def test_prediction_drift_is_reported_apart_from_the_feature_share() -> None:
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"hr": rng.normal(80, 10, 3000), "score": rng.beta(2, 8, 3000)})
    current = pd.DataFrame({"hr": rng.normal(80, 10, 3000), "score": rng.beta(4, 4, 3000)})
    result = compute_drift(build_profile(reference, prediction_column="score"), current)
    assert [c.name for c in result.columns] == ["hr"]
    assert result.prediction is not None and result.prediction.drifted
    assert result.prediction.method is DriftMethod.WASSERSTEIN
    assert result.drift_score == 0.0
    assert result.to_dict()["prediction"]["name"] == "score"


def test_new_categories_are_counted_but_never_named() -> None:
    reference = pd.DataFrame({"unit": ["icu", "ward", "ed"] * 500})
    current = pd.DataFrame({"unit": ["icu", "ward", "Jane Doe ward 7", "ed"] * 300})
    result = compute_drift(build_profile(reference), current)
    column = result.column("unit")
    assert column.new_categories == 1
    assert "Jane Doe" not in str(result.to_dict())
    assert column.distribution.labels[-1] == "new categories (1)"
    assert sum(column.distribution.current) == pytest.approx(1.0)
    assert column.drifted and column.method is DriftMethod.JENSENSHANNON


def test_display_bins_come_from_the_reference_only() -> None:
    rng = np.random.default_rng(12)
    reference = pd.DataFrame({"lactate": rng.gamma(2.0, 1.0, 4000)})
    current = pd.DataFrame({"lactate": np.append(rng.gamma(2.0, 1.0, 3999), 987.654)})
    distribution = compute_drift(build_profile(reference), current).column("lactate").distribution
    assert distribution.edges is not None
    assert distribution.edges[-1] == reference["lactate"].max()
    assert "987" not in " ".join(distribution.labels)
    assert distribution.current[-1] == pytest.approx(1 / 4000)  # "above reference"
    assert sum(distribution.reference) == pytest.approx(1.0)
    assert sum(distribution.current) == pytest.approx(1.0)


def test_missing_values_are_dropped_and_counted() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] * 300})
    current = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.inf, 5.0, None] * 200})
    column = compute_drift(build_profile(reference), current).column("x")
    assert column.n_current == 600 and column.n_current_missing == 600
    assert column.kind is ColumnKind.NUMERICAL


def test_method_labels_are_evidentlys_display_names() -> None:
    assert METHOD_LABELS[DriftMethod.WASSERSTEIN] == "Wasserstein distance (normed)"
    assert METHOD_LABELS[DriftMethod.KS] == "K-S p_value"


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture
def small_profile() -> ReferenceProfile:
    reference = pd.DataFrame({"hr": np.arange(100.0), "unit": ["icu", "ward"] * 50})
    return build_profile(reference)


def test_missing_current_column_is_named(small_profile: ReferenceProfile) -> None:
    with pytest.raises(InvalidInput, match=r"no column\(s\) \['unit'\]"):
        compute_drift(small_profile, pd.DataFrame({"hr": [1.0]}))


def test_all_missing_current_column_is_refused(small_profile: ReferenceProfile) -> None:
    current = pd.DataFrame({"hr": [np.nan, np.nan], "unit": ["icu", "ward"]})
    with pytest.raises(InvalidInput, match="'hr' has no values in the current window"):
        compute_drift(small_profile, current)


def test_text_in_a_numerical_column_is_refused_without_echoing_it(
    small_profile: ReferenceProfile,
) -> None:
    current = pd.DataFrame({"hr": ["MRN 12345", "80"], "unit": ["icu", "ward"]})
    with pytest.raises(InvalidInput, match="should be numerical") as caught:
        compute_drift(small_profile, current)
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": DriftOverride(method="ks")}, "not in the reference profile"),
        ({"hr": DriftOverride(method="t-test")}, "unknown"),
        ({"unit": DriftOverride(method="wasserstein")}, "numerical columns only"),
        ({"hr": DriftOverride(threshold=-1.0)}, "finite number"),
    ],
)
def test_bad_overrides_are_refused(
    small_profile: ReferenceProfile, overrides: dict[str, DriftOverride], message: str
) -> None:
    current = pd.DataFrame({"hr": [1.0, 2.0], "unit": ["icu", "ward"]})
    with pytest.raises(InvalidInput, match=message):
        compute_drift(small_profile, current, per_column_overrides=overrides)


@pytest.mark.parametrize("share", [0.0, 1.5, math.nan])
def test_drift_share_must_be_a_share(small_profile: ReferenceProfile, share: float) -> None:
    current = pd.DataFrame({"hr": [1.0, 2.0], "unit": ["icu", "ward"]})
    with pytest.raises(InvalidInput, match="drift_share"):
        compute_drift(small_profile, current, drift_share=share)


def test_identifier_like_text_column_is_not_profiled() -> None:
    reference = pd.DataFrame({"note": [f"patient {i}" for i in range(100)], "x": np.ones(100)})
    with pytest.raises(InvalidInput, match="free text or an identifier") as caught:
        build_profile(reference)
    assert "patient 1" not in str(caught.value)
    assert build_profile(reference, columns=["x"]).feature_names == ("x",)


def test_unsupported_dtypes_and_values_are_refused() -> None:
    times = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=10, freq="h")})
    with pytest.raises(InvalidInput, match="dtype datetime64"):
        build_profile(times)
    odd = pd.DataFrame({"c": [{"a": 1}, {"b": 2}]})
    with pytest.raises(InvalidInput, match="not categories"):
        build_profile(odd, kinds={"c": "categorical"})
    with pytest.raises(InvalidInput, match="expected 'numerical' or 'categorical'"):
        build_profile(pd.DataFrame({"x": [1.0]}), kinds={"x": "ordinal"})
    with pytest.raises(InvalidInput, match=r"no column\(s\) \['y'\]"):
        build_profile(pd.DataFrame({"x": [1.0]}), columns=["y"])
