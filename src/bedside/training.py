"""Build and fit the estimator a pipeline file names, reproducibly.

Any scikit-learn-compatible estimator works: an importable class with ``fit`` and ``predict_proba``
(a ``Pipeline`` with preprocessing included). Seeds are fixed: every ``random_state`` parameter the
estimator (or any step of it) exposes is set from the pipeline's seed, and the seed is recorded.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bedside.errors import InvalidInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FittedModel:
    """A fitted estimator and what it was fitted on."""

    estimator: Any
    feature_names: tuple[str, ...]
    estimator_path: str
    params: dict[str, Any]
    seed: int
    n_train: int
    n_events: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return P(label = 1) for each row of ``X`` (columns in ``feature_names`` order)."""
        return np.asarray(self.estimator.predict_proba(X))[:, 1]


def import_estimator(path: str) -> type[Any]:
    """Import the estimator class named by a dotted path.

    Raises:
        InvalidInput: the module or class does not exist, or it is not an estimator with
            ``fit`` and ``predict_proba``. The message names the key and the fix.
    """
    module_name, _, attr = path.rpartition(".")
    where = "training.model.estimator"
    if not module_name:
        raise InvalidInput(
            f"{where}: {path!r} is not a dotted path such as "
            "sklearn.ensemble.HistGradientBoostingClassifier."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(
            f"{where}: cannot import module {module_name!r} ({exc.msg}). Install "
            "the package that provides it, or fix the path."
        ) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise InvalidInput(f"{where}: module {module_name!r} has no {attr!r}.")
    if not inspect.isclass(cls) or not all(hasattr(cls, m) for m in ("fit", "predict_proba")):
        raise InvalidInput(
            f"{where}: {path!r} is not an estimator class with fit and "
            "predict_proba (a probabilistic classifier is needed)."
        )
    return cls


def build_estimator(path: str, params: Mapping[str, Any], *, seed: int) -> Any:
    """Instantiate the estimator with ``params`` and every ``random_state`` set to ``seed``.

    Raises:
        InvalidInput: the class rejects the parameters.
    """
    cls = import_estimator(path)
    try:
        estimator = cls(**dict(params))
    except TypeError as exc:
        raise InvalidInput(
            f"training.model.params: {path} does not accept these parameters ({exc})."
        ) from None
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        seeded = {
            k: seed
            for k in estimator.get_params(deep=True)
            if k == "random_state" or k.endswith("__random_state")
        }
        if seeded:
            estimator.set_params(**seeded)
    return estimator


def fit(
    X: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: Sequence[str],
    estimator_path: str,
    params: Mapping[str, Any],
    seed: int,
) -> FittedModel:
    """Fit the named estimator on ``X``/``y`` reproducibly.

    Raises:
        InvalidInput: the training data has one class only, or shapes disagree.
    """
    y = np.asarray(y).astype(int)
    if X.shape[0] != y.shape[0]:
        raise InvalidInput(f"Training data has {X.shape[0]} rows but {y.shape[0]} labels.")
    classes = np.unique(y)
    if classes.size < 2:
        raise InvalidInput(
            f"The training split has only label {classes.tolist()}: a classifier needs both "
            "outcomes. Widen the cohort or the date range, or check the label definition."
        )
    estimator = build_estimator(estimator_path, params, seed=seed)
    np.random.seed(seed)  # for estimators that ignore random_state and use the global generator
    # One thread: results must not depend on scheduling, and on a busy 2-core machine OpenMP
    # pools are slower anyway (DEPENDENCY-NOTES).
    with threadpool_limits(limits=1):
        estimator.fit(X, y)
    logger.info("fitted %s on %d rows (%d events)", estimator_path, X.shape[0], int(y.sum()))
    return FittedModel(
        estimator=estimator,
        feature_names=tuple(feature_names),
        estimator_path=estimator_path,
        params=dict(params),
        seed=seed,
        n_train=int(X.shape[0]),
        n_events=int(y.sum()),
    )
