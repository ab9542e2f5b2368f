"""How bedside serialises scikit-learn models for MLflow: skops, with a fixed trust list.

Decision: models are saved in the **skops** format, never pickle or cloudpickle.

- Loading a pickle runs whatever code the file names; a model file travels (registry, artifact
  store, serving hosts), so a swapped file would be code execution on the serving host. skops
  stores a schema plus numpy arrays and rebuilds only types it is told to trust.
- skops refuses tree models until their internal types are trusted. bedside trusts the short
  list :data:`BEDSIDE_TRUSTED_TYPES` (internal data holders of scikit-learn estimators that
  clinical models use: ``Tree`` for decision trees, random forests and gradient boosting,
  ``TreePredictor`` for HistGradientBoosting, the calibration wrappers of
  ``CalibratedClassifierCV``, ``numpy.dtype`` for preprocessing pipelines, and the
  ``functools.partial`` of ``check_array`` that HistGradientBoosting keeps for categorical
  features). A model that needs any other type is refused at logging time with the list of
  types, and the caller may name them (``trusted_types=``) after reviewing them.
- **On load the trust list comes from bedside, not from the file.** MLflow's own loader reads
  ``skops_trusted_types`` from the model's ``MLmodel`` file, so a crafted model can whitelist
  anything; :func:`load_model_file` passes bedside's list (plus what the caller names) and a
  file that needs more is refused with :class:`bedside.errors.IntegrityError`.
- ``functools.partial`` is safe to trust because skops checks the function inside it separately
  (``check_array`` is on the list; ``os.system`` would not be).

:func:`inspect_model` walks a fitted estimator (pipelines, column transformers, nested
estimators) and returns what it would carry into the registry besides numbers: feature names and
other strings (``classes_``, ``categories_``, vocabularies) — so the PHI guard can refuse a model
that memorised names in a one-hot encoder — and the top-level modules of its classes, which
decide the pip requirements.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import skops.io as skio
from skops.io.exceptions import UntrustedTypesFoundException

from bedside.errors import IntegrityError, InvalidInput

logger = logging.getLogger(__name__)

__all__ = [
    "BEDSIDE_TRUSTED_TYPES",
    "FORMAT",
    "ModelContent",
    "inspect_model",
    "load_model_file",
    "required_trusted_types",
]

FORMAT: Final = "skops"

BEDSIDE_TRUSTED_TYPES: Final[tuple[str, ...]] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "numpy.dtype",
    "functools.partial",
    "sklearn.utils.validation.check_array",
)

#: A model holding more strings than this cannot be checked for PHI in reasonable time.
MAX_STRINGS: Final = 200_000
_MAX_DEPTH: Final = 16


def required_trusted_types(model: Any, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Return the non-default types skops needs to load ``model`` (to record in MLmodel).

    Args:
        model: a fitted estimator.
        extra: types the caller has reviewed and trusts, beyond :data:`BEDSIDE_TRUSTED_TYPES`.

    Raises:
        InvalidInput: the model needs a type that is on neither list (the message lists them).
    """
    needed = sorted(skio.get_untrusted_types(data=skio.dumps(model)))
    allowed = set(BEDSIDE_TRUSTED_TYPES) | set(extra)
    unknown = [t for t in needed if t not in allowed]
    if unknown:
        raise InvalidInput(
            f"This model needs {len(unknown)} type(s) that bedside does not trust to load: "
            f"{', '.join(unknown)}. Review them (they are rebuilt when the model is loaded) and "
            "pass them as trusted_types=[...] to log the model, or use an estimator made of "
            "scikit-learn parts bedside trusts (docs/tracking.md).",
            details={"untrusted_types": unknown},
        )
    return tuple(needed)


def load_model_file(path: Path, extra_trusted: Iterable[str] = ()) -> Any:
    """Load a skops model file, trusting bedside's list plus ``extra_trusted`` only.

    Raises:
        IntegrityError: the file needs a type that is not trusted, or is not a skops file.
    """
    trusted = sorted(set(BEDSIDE_TRUSTED_TYPES) | set(extra_trusted))
    try:
        return skio.load(path, trusted=trusted)
    except UntrustedTypesFoundException as exc:
        needed = sorted(set(skio.get_untrusted_types(file=path)) - set(trusted))
        raise IntegrityError(
            f"Refused to load the model file {path.name}: it needs type(s) bedside does not "
            f"trust: {', '.join(needed)}. A model logged by bedside never does; if this one is "
            "expected to, pass them as trusted_types=[...] after review.",
            details={"untrusted_types": needed},
        ) from exc
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IntegrityError(
            f"Cannot load the model file {path.name}: not a readable skops file "
            f"({type(exc).__name__})."
        ) from exc


@dataclass
class ModelContent:
    """What a fitted model carries besides numbers.

    Attributes:
        modules: top-level modules of the classes in the estimator graph (``sklearn`` …).
        feature_names: the column names it was fitted on (``feature_names_in_``).
        strings: ``(path, text)`` for every other string it holds; the path is made of
            attribute names and positions only (never of data, such as vocabulary keys).
    """

    modules: set[str] = field(default_factory=set)
    feature_names: list[str] = field(default_factory=list)
    strings: list[tuple[str, str]] = field(default_factory=list)


def inspect_model(model: Any) -> ModelContent:
    """Walk a fitted estimator and return its modules, feature names and strings.

    Raises:
        InvalidInput: the model holds more than :data:`MAX_STRINGS` strings.
    """
    content = ModelContent()
    _walk(model, type(model).__name__, 0, set(), content)
    return content


def _walk(obj: Any, path: str, depth: int, seen: set[int], content: ModelContent) -> None:
    if depth > _MAX_DEPTH or obj is None or isinstance(obj, bool | int | float | complex):
        return
    if isinstance(obj, str | bytes | np.str_):
        text = obj.decode("utf-8", "replace") if isinstance(obj, bytes) else str(obj)
        if len(content.strings) >= MAX_STRINGS:
            raise InvalidInput(
                f"The model holds more than {MAX_STRINGS} strings (e.g. a large vocabulary); "
                "bedside cannot check them for PHI. Reduce them or keep this model out of "
                "tracking."
            )
        content.strings.append((path, text))
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OUS":
            for i, item in enumerate(obj.ravel().tolist()):
                _walk(item, f"{path}[{i}]", depth + 1, seen, content)
        return
    if isinstance(obj, np.generic):
        return
    if isinstance(obj, dict):
        for i, (key, value) in enumerate(obj.items()):
            _walk(key, f"{path}<key {i}>", depth + 1, seen, content)
            _walk(value, f"{path}<{i}>", depth + 1, seen, content)
        return
    if isinstance(obj, list | tuple | set | frozenset):
        for i, item in enumerate(obj):
            _walk(item, f"{path}[{i}]", depth + 1, seen, content)
        return
    module = type(obj).__module__ or ""
    if module != "builtins":
        content.modules.add(module.split(".")[0])
    attributes = getattr(obj, "__dict__", None)
    if not isinstance(attributes, dict):
        return  # a compiled object (a tree's arrays): numbers only
    for name, value in attributes.items():
        if name == "feature_names_in_" and isinstance(value, np.ndarray):
            content.feature_names.extend(str(v) for v in value.tolist())
            continue
        _walk(value, f"{path}.{name}", depth + 1, seen, content)
