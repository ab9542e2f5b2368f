"""Building and fitting the pipeline's estimator: imports, seeds, reproducibility, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from bedside.errors import InvalidInput
from bedside.training import build_estimator, fit, import_estimator


def _data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.8, size=n) > 0.8).astype(int)
    return X, y


@pytest.mark.parametrize(
    "path, message",
    [
        ("HistGradientBoostingClassifier", "not a dotted path"),
        ("sklearn.ensembel.HistGradientBoostingClassifier", "cannot import module"),
        (
            "sklearn.ensemble.HistGradientBoostingClassifer",
            "has no 'HistGradientBoostingClassifer'",
        ),
        ("sklearn.linear_model.LinearRegression", "predict_proba"),
    ],
)
def test_bad_estimator_paths_say_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        import_estimator(path)


def test_unknown_parameters_are_reported() -> None:
    with pytest.raises(InvalidInput, match="does not accept these parameters"):
        build_estimator("sklearn.linear_model.LogisticRegression", {"max_iterations": 5}, seed=1)


def test_every_random_state_is_seeded_including_pipeline_steps() -> None:
    est = build_estimator("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}, seed=7)
    assert est.get_params()["random_state"] == 7


@pytest.mark.parametrize(
    "path, params",
    [
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30}),
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}),
    ],
)
def test_fitting_twice_with_the_same_seed_gives_identical_predictions(
    path: str, params: dict
) -> None:
    X, y = _data()
    a = fit(X, y, feature_names=list("abcde"), estimator_path=path, params=params, seed=3)
    b = fit(X, y, feature_names=list("abcde"), estimator_path=path, params=params, seed=3)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.n_train == 400 and a.n_events == int(y.sum())


def test_one_class_training_data_is_refused_with_a_fix() -> None:
    X, _ = _data()
    with pytest.raises(InvalidInput, match="only label \\[0\\].*Widen the cohort"):
        fit(
            X,
            np.zeros(len(X)),
            feature_names=list("abcde"),
            estimator_path="sklearn.linear_model.LogisticRegression",
            params={},
            seed=0,
        )
