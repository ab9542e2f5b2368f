"""Model slots: the production and shadow model of each served model name, hot-swappable.

A :class:`DeployedModel` is an immutable bundle — version reference, predictor, signed threshold
and feature schema. A :class:`ModelSlot` holds one of them and swaps it atomically: a request
reads the slot once, when it starts, and keeps that bundle to the end (validation, batching,
logging), so in-flight requests finish on the model they started with and none fails during a
swap. :class:`ServedModels` holds the two slots (production, shadow) of every served name.

Loading models from the registry is not done here: a :class:`ModelProvider` (written elsewhere)
hands over ready predictors — any object with ``predict_proba`` on a 2-D float array.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from bedside.errors import InvalidInput, NotFound
from bedside.serving.schema import FeatureSchema

__all__ = [
    "DeployedModel",
    "ModelProvider",
    "ModelSlot",
    "Predictor",
    "Role",
    "ServedModels",
    "check_model",
]

logger = logging.getLogger(__name__)

Role = Literal["production", "shadow"]
ROLES: tuple[Role, ...] = ("production", "shadow")


@runtime_checkable
class Predictor(Protocol):
    """Anything with scikit-learn's ``predict_proba`` on a 2-D float array (n rows, 2 columns)."""

    def predict_proba(self, X: Any) -> Any:
        """Return the class probabilities, one row per input row; column 1 is the positive class."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class DeployedModel:
    """One model version ready to serve: what it is, how to score, where to decide, what it takes.

    Attributes:
        name: the served model name (the ``{name}`` of the URL).
        version: the version reference (e.g. ``"3"``), returned with every prediction and logged.
        predictor: the fitted model.
        threshold: the signed decision threshold: ``decision = probability >= threshold``.
        schema: the version's feature schema (column order of the predictor).
        attributes: the stratification attribute names a request may carry for this version
            (its fairness ``stratify_by``); empty: any name.
    """

    name: str
    version: str
    predictor: Predictor
    threshold: float
    schema: FeatureSchema
    attributes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput("A deployed model needs a non-empty name.")
        if not isinstance(self.version, str) or not self.version:
            raise InvalidInput(f"Model {self.name!r} needs a version reference (text).")
        if not hasattr(self.predictor, "predict_proba"):
            raise InvalidInput(
                f"Model {self.name}@{self.version}: the predictor has no predict_proba; "
                "expected a fitted scikit-learn-compatible classifier."
            )
        threshold = self.threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or not 0.0 <= threshold <= 1.0
        ):
            raise InvalidInput(
                f"Model {self.name}@{self.version}: the threshold must be a number between 0 "
                f"and 1; got {threshold!r}."
            )
        if not isinstance(self.schema, FeatureSchema):
            raise InvalidInput(f"Model {self.name}@{self.version}: schema is not a FeatureSchema.")

    @property
    def ref(self) -> str:
        """Return ``name@version``."""
        return f"{self.name}@{self.version}"


def check_model(model: DeployedModel) -> None:
    """Score one all-zero row with ``model`` to prove it works before it takes traffic.

    This also warms the predictor up, so the first real request does not pay for lazy set-up.

    Raises:
        InvalidInput: the predictor fails, or its output is not n×2 probabilities.
    """
    row = np.zeros((1, len(model.schema)), dtype=np.float64)
    try:
        out = np.asarray(model.predictor.predict_proba(row), dtype=np.float64)
    except Exception as exc:
        raise InvalidInput(
            f"Model {model.ref} failed to score a test row of {len(model.schema)} features "
            f"({type(exc).__name__}); check that its feature schema matches the predictor."
        ) from None
    if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 2:
        raise InvalidInput(
            f"Model {model.ref}: predict_proba returned shape {out.shape}; expected (1, 2)."
        )
    if not 0.0 <= float(out[0, 1]) <= 1.0:
        raise InvalidInput(f"Model {model.ref}: predict_proba returned a value outside [0, 1].")


class ModelSlot:
    """One hot-swappable model reference (the production or the shadow model of a name)."""

    __slots__ = ("_lock", "_model", "generation", "role")

    def __init__(self, role: Role, model: DeployedModel | None = None) -> None:
        self.role: Role = role
        self._model = model
        self._lock = threading.Lock()
        self.generation = 0

    @property
    def current(self) -> DeployedModel | None:
        """Return the model now in the slot (read once per request and kept)."""
        return self._model

    def swap(self, model: DeployedModel | None) -> DeployedModel | None:
        """Put ``model`` in the slot (``None`` empties it); return the previous one.

        The swap is one reference assignment: requests that already read the slot keep their
        model; requests that read it afterwards get the new one.
        """
        with self._lock:
            previous, self._model = self._model, model
            self.generation += 1
        logger.info(
            "%s slot: %s -> %s",
            self.role,
            previous.ref if previous else "-",
            model.ref if model else "-",
        )
        return previous


class ModelProvider(Protocol):
    """Where served models come from (the registry, written elsewhere)."""

    def load(self, name: str, role: Role) -> DeployedModel | None:
        """Return the model now deployed as ``role`` for ``name``, or ``None`` if there is none.

        Raises:
            NotFound: no model called ``name``.
        """
        ...


class ServedModels:
    """The production and shadow slots of every served model name."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[Role, ModelSlot]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(
        cls, production: Iterable[DeployedModel], shadow: Iterable[DeployedModel] = ()
    ) -> ServedModels:
        """Return slots holding the given production (and shadow) models, each checked."""
        served = cls()
        for model in production:
            served.deploy(model, role="production")
        for model in shadow:
            served.deploy(model, role="shadow")
        return served

    def names(self) -> list[str]:
        """Return the served model names."""
        return sorted(self._slots)

    def slot(self, name: str, role: Role = "production") -> ModelSlot:
        """Return the slot of ``name`` for ``role``.

        Raises:
            NotFound: ``name`` is not served here.
        """
        slots = self._slots.get(name)
        if slots is None:
            raise NotFound(
                f"No model called {name!r} is served here.",
                details={"model": name, "served": self.names()},
            )
        return slots[role]

    def get(self, name: str) -> tuple[DeployedModel | None, DeployedModel | None] | None:
        """Return ``(production, shadow)`` for ``name`` now, or ``None`` if it is not served."""
        slots = self._slots.get(name)
        if slots is None:
            return None
        return slots["production"].current, slots["shadow"].current

    def deploy(
        self,
        model: DeployedModel | None,
        *,
        role: Role,
        name: str | None = None,
        check: bool = True,
    ) -> DeployedModel | None:
        """Swap ``model`` into the ``role`` slot of its name; return the model it replaces.

        Args:
            model: the new model, or ``None`` to empty the slot (then ``name`` is required).
            role: ``production`` or ``shadow``.
            name: the served name when ``model`` is ``None``.
            check: score a test row first (:func:`check_model`), so a broken model never takes
                traffic.

        Raises:
            InvalidInput: the model fails its check, or the arguments disagree.
        """
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {list(ROLES)}; got {role!r}.")
        if model is None and not name:
            raise InvalidInput("Name the model whose slot is emptied.")
        served_name = model.name if model is not None else str(name)
        if model is not None and name is not None and name != model.name:
            raise InvalidInput(f"Model {model.ref} cannot be deployed under the name {name!r}.")
        if model is not None and check:
            check_model(model)
        with self._lock:
            slots = self._slots.get(served_name)
            if slots is None:
                slots = {r: ModelSlot(r) for r in ROLES}
                self._slots[served_name] = slots
        return slots[role].swap(model)

    def refresh(self, provider: ModelProvider, names: Iterable[str] | None = None) -> list[str]:
        """Load every slot from ``provider``; swap in what changed; return the refs swapped in."""
        changed = []
        for name in list(names) if names is not None else self.names():
            for role in ROLES:
                new = provider.load(name, role)
                old = self.get(name)
                current = None if old is None else old[0 if role == "production" else 1]
                if (new is None) != (current is None) or (
                    new is not None and current is not None and new.version != current.version
                ):
                    self.deploy(new, role=role, name=name)
                    if new is not None:
                        changed.append(f"{role}:{new.ref}")
        return changed

    def is_ready(self) -> bool:
        """Return whether a model is served and every served name has a model to answer with.

        A name with only a shadow version counts: its requests are answered (without a
        prediction) and logged.
        """
        return bool(self._slots) and all(
            s["production"].current is not None or s["shadow"].current is not None
            for s in self._slots.values()
        )

    def describe(self) -> Mapping[str, dict[str, str | None]]:
        """Return ``{name: {"production": version, "shadow": version}}`` for health output."""
        out: dict[str, dict[str, str | None]] = {}
        for name, slots in sorted(self._slots.items()):
            out[name] = {
                role: (m.version if (m := slots[role].current) is not None else None)
                for role in ROLES
            }
        return out
