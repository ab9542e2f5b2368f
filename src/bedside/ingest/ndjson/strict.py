"""Validate a resource with the ``fhir.resources`` R4B models (the optional strict mode).

fhir.resources 8 ships FHIR R5 at the top level and R4B under ``fhir.resources.R4B``; R4B is the
closest model set to R4 it provides. Eighteen R4 resource types were removed in R4B (the
``MedicinalProduct*``, ``Substance*`` specification types, ``EffectEvidenceSynthesis`` and
``RiskEvidenceSynthesis``); they have no model, so strict mode cannot check them and the report
counts them as ``strict_unchecked``.

Pydantic error messages and inputs can carry values from the line, so a :class:`Problem` built here
uses only the error *type* and the field path, and the path loses any key the model does not define.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from bedside.ingest.ndjson.rules import Problem, ReasonCode

_MAX_ERRORS_SHOWN = 3
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

Validator = Callable[[dict[str, Any]], None]


@cache
def validator_for(resource_type: str) -> Validator | None:
    """Return a function validating one ``resource_type`` dict with its R4B model, or ``None``.

    ``None`` means R4B has no model for the type (see the module docstring).
    """
    from fhir.resources.R4B import get_fhir_model_class  # heavy import, strict mode only

    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, ImportError):
        return None

    def validate(obj: dict[str, Any]) -> None:
        model.model_validate(obj)

    return validate


def _render_loc(loc: tuple[int | str, ...], error_type: str) -> str:
    parts: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        is_unknown_key = error_type == "extra_forbidden" and index == len(loc) - 1
        # An unknown key comes from the line, not from the model: never echo it.
        name = "<unknown field>" if is_unknown_key or not _FIELD_NAME.fullmatch(part) else part
        parts.append(name if not parts else f".{name}")
    return "".join(parts) or "<resource>"


def strict_problem(resource_type: str, obj: dict[str, Any]) -> Problem | None:
    """Validate ``obj`` with the R4B model for ``resource_type``; return a value-free Problem.

    Raises:
        LookupError: when R4B has no model for ``resource_type`` (callers check
            :func:`validator_for` first).
    """
    import pydantic

    validate = validator_for(resource_type)
    if validate is None:
        raise LookupError(f"no R4B model for resource type {resource_type}")
    try:
        validate(obj)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        shown = "; ".join(
            f"{resource_type}.{_render_loc(tuple(err['loc']), err['type'])} ({err['type']})"
            for err in errors[:_MAX_ERRORS_SHOWN]
        )
        more = len(errors) - _MAX_ERRORS_SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        return Problem(ReasonCode.STRICT_VALIDATION, f"R4B model rejects {shown}{suffix}")
    except Exception as exc:  # fhir.resources raises bare KeyError/TypeError on some odd input
        # The exception text may quote the line; only its class name is safe to keep.
        return Problem(
            ReasonCode.STRICT_VALIDATION,
            f"R4B model for {resource_type} cannot read this resource ({type(exc).__name__})",
        )
    return None
