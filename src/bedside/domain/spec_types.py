"""Field types of the pipeline file: durations, expressions, names and codes, with clear errors.

Every custom validation error raised here is a :class:`pydantic_core.PydanticCustomError` whose
context carries ``expected`` (what the key accepts, in words), and where it helps ``fix`` (the next
step) and ``column`` (1-based, inside an expression). :mod:`bedside.domain.specfile` turns them into
line-numbered :class:`~bedside.domain.specfile.SpecIssue` objects.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticKnownError

from bedside.domain.durations import DURATION_EXAMPLES, format_duration, parse_duration
from bedside.domain.expressions import (
    EVALUATION_METRICS,
    MONITORING_METRICS,
    Expression,
    parse_expression,
)
from bedside.errors import ExpressionError, InvalidInput

__all__ = [
    "DottedPath",
    "Duration",
    "EnvVarName",
    "EvaluationExpression",
    "Identifier",
    "LoincCode",
    "MonitoringExpression",
    "Name",
    "NonEmptyText",
    "Probability",
    "ResourceType",
    "RoleName",
    "SpecModel",
    "StrictBool",
    "StrictFloat",
    "StrictInt",
    "UcumUnit",
    "Url",
    "Username",
    "VersionText",
    "custom_error",
    "duplicate_problems",
    "loinc_check_digit",
    "merge_problems",
]


class SpecModel(BaseModel):
    """Base of every pipeline-file model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def custom_error(kind: str, problem: str, *, expected: str, fix: str = "", **extra: Any) -> Any:
    """Return a pydantic custom error with the context :mod:`specfile` reads.

    Returns ``PydanticCustomError`` (typed ``Any`` so callers can ``raise`` it directly).
    """
    context: dict[str, Any] = {"problem": problem, "expected": expected}
    if fix:
        context["fix"] = fix
    context.update(extra)
    return PydanticCustomError(kind, "{problem}", context)


StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]


# ------------------------------------------------------------------------------------- durations


def _validate_duration(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except InvalidInput as exc:
        reason = str(exc.details.get("reason", "not a duration"))
        if "needs a unit" in reason:
            fix = "add a unit: " + reason.split("(write ", 1)[-1].rstrip(")")
        elif "no fixed length" in reason:
            fix = "write the span in days or weeks, e.g. 90_days"
        elif "longer than zero" in reason:
            fix = "use a positive duration such as 24h"
        else:
            fix = "write a number and a unit (s, m, h, d or w), e.g. 14_days or 6h"
        raise custom_error("duration", reason, expected=DURATION_EXAMPLES, fix=fix) from None


Duration = Annotated[
    timedelta,
    PlainValidator(_validate_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["14_days", "24h", "PT6H"]}),
]


# ----------------------------------------------------------------------------------- expressions


def _expression_validator(
    vocabulary: Mapping[str, str], example: str
) -> Callable[[object], Expression]:
    expected = f"an expression such as {example} (metric names, numbers, comparisons, and/or/not)"

    def validate(value: object) -> Expression:
        if isinstance(value, Expression):
            unknown = sorted(value.names - set(vocabulary))
            if unknown:
                raise custom_error(
                    "expression", f"unknown metric name {unknown[0]!r}", expected=expected
                )
            return value
        if not isinstance(value, str):
            found = "the boolean" if isinstance(value, bool) else f"a {type(value).__name__}"
            raise custom_error(
                "expression", f"an expression is text; found {found}", expected=expected
            )
        try:
            return parse_expression(value, allowed_names=vocabulary)
        except ExpressionError as exc:
            details = exc.details
            suggestion = details.get("suggestion")
            if suggestion:
                fix = f"did you mean {suggestion}?"
            elif "metric name" in str(details["problem"]):
                fix = "use a metric name listed in docs/pipeline.md (metric names)"
            else:
                fix = f"write a condition such as {example}; after this point the grammar "
                fix += f"expects {details['expected']}"
            raise custom_error(
                "expression",
                f"{details['problem']} (column {details['column']} of the expression)",
                expected=expected,
                fix=fix,
                column=details["column"],
            ) from None

    return validate


MonitoringExpression = Annotated[
    Expression,
    PlainValidator(_expression_validator(MONITORING_METRICS, "drift_score > 0.3")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["drift_score > 0.3"]}),
]
EvaluationExpression = Annotated[
    Expression,
    PlainValidator(_expression_validator(EVALUATION_METRICS, "auroc_ci_lower >= 0.8")),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["auroc_ci_lower >= 0.8 and brier <= 0.2"]}),
]


# ------------------------------------------------------------------------------ names and codes


def _text_rule(
    kind: str, pattern: str, expected: str, *, max_length: int = 100, fix: str = ""
) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not value.strip():
            raise custom_error(kind, "the text is empty", expected=expected, fix=fix)
        if len(value) > max_length:
            raise custom_error(
                kind,
                f"the text is longer than {max_length} characters",
                expected=expected,
                fix=f"shorten it to at most {max_length} characters",
            )
        if compiled.fullmatch(value) is None:
            raise custom_error(
                kind, "the text does not have the expected form", expected=expected, fix=fix
            )
        return value

    return AfterValidator(check)


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"

Identifier = Annotated[
    str,
    _text_rule(
        "identifier",
        _IDENTIFIER,
        "a name of letters, digits and _ that does not start with a digit, such as heart_rate",
        max_length=64,
        fix="use only letters, digits and _ (no spaces or dashes), e.g. max_depth",
    ),
]
RoleName = Annotated[
    str,
    _text_rule(
        "role_name",
        _IDENTIFIER,
        "a role name of letters, digits and _, such as CMIO or clinical_informaticist",
        max_length=64,
        fix="use only letters, digits and _ (no spaces or dashes), e.g. clinical_informaticist",
    ),
]
Name = Annotated[
    str,
    _text_rule(
        "name",
        r"[A-Za-z0-9][A-Za-z0-9._-]*",
        "a name of letters, digits, '.', '_' and '-', such as sepsis-prediction-pipeline",
        fix="replace spaces and other characters with '-', e.g. sepsis-prediction",
    ),
]
VersionText = Annotated[
    str,
    _text_rule(
        "version",
        r"[A-Za-z0-9][A-Za-z0-9._+-]*",
        'a quoted version text such as "2.3" or "2024.1"',
        max_length=50,
        fix='write a version without spaces, in quotes, e.g. "2.3"',
    ),
]
Username = Annotated[
    str,
    _text_rule(
        "username",
        r"[A-Za-z0-9_][A-Za-z0-9_.@-]*",
        "a username of letters, digits, '_', '.', '@' and '-', such as jdoe",
        max_length=64,
        fix="write the username exactly as in 'bedside user list'",
    ),
]
NonEmptyText = Annotated[str, _text_rule("text", r"(?s).+", "non-empty text", max_length=10_000)]
EnvVarName = Annotated[
    str,
    _text_rule(
        "env_var",
        r"[A-Z_][A-Z0-9_]*",
        "the NAME of an environment variable that holds the token, such as FHIR_TOKEN "
        "(never the token itself)",
        fix="put the token in an environment variable and write its name here, e.g. FHIR_TOKEN",
    ),
]
Url = Annotated[
    str,
    _text_rule(
        "url",
        r"https?://[^\s/?#]+[^\s]*",
        "an http(s) URL such as https://fhir.example.org/r4",
        max_length=2000,
        fix="write the FHIR base URL, starting with https://",
    ),
]
ResourceType = Annotated[
    str,
    _text_rule(
        "resource_type",
        r"[A-Z][A-Za-z]*",
        "a FHIR resource type such as Patient, Encounter, Observation or Condition",
        max_length=64,
        fix="use the resource type's exact FHIR name, e.g. Observation",
    ),
]
UcumUnit = Annotated[
    str,
    _text_rule(
        "ucum",
        r"[!-~]+",
        "a UCUM unit code such as /min, Cel, [degF], mm[Hg], mmol/L or 10*3/uL",
        max_length=40,
        fix="write the UCUM code (ASCII, no spaces), e.g. Cel rather than °C",
    ),
]
ConditionCode = Annotated[
    str,
    _text_rule(
        "condition_code",
        r"(?:[^|\s]+\|)?[A-Za-z0-9][A-Za-z0-9.\-]*",
        "a code, optionally with its system as system|code, such as A41.9 or "
        "http://snomed.info/sct|91302008",
        max_length=300,
        fix="write the code alone (A41.9) or as system|code",
    ),
]


def loinc_check_digit(number: str) -> int:
    """Return the LOINC Mod-10 check digit of the part of a code before the dash."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 0:  # odd positions counted from the right are doubled
            total += sum(divmod(digit * 2, 10))
        else:
            total += digit
    return (10 - total % 10) % 10


def _check_loinc(value: str) -> str:
    expected = "a LOINC code such as 8867-4 (digits, a dash, the check digit)"
    match = re.fullmatch(r"(\d{1,7})-(\d)", value)
    if match is None:
        raise custom_error("loinc", "not a LOINC code", expected=expected)
    digit = loinc_check_digit(match.group(1))
    if digit != int(match.group(2)):
        raise custom_error(
            "loinc",
            f"the check digit is wrong ({match.group(1)}-{digit} would be valid)",
            expected=expected,
            fix="check the code against loinc.org; a typo usually breaks the check digit",
        )
    return value


LoincCode = Annotated[str, AfterValidator(_check_loinc)]


def _check_dotted_path(value: str) -> str:
    expected = (
        "an importable dotted path to a scikit-learn-compatible estimator, such as "
        "sklearn.ensemble.HistGradientBoostingClassifier"
    )
    fix = "write package.module.ClassName, e.g. sklearn.linear_model.LogisticRegression"
    parts = value.split(".")
    if len(value) > 200 or len(parts) < 2:
        raise custom_error(
            "dotted_path",
            "a dotted path names a module and a class, separated by '.'",
            expected=expected,
            fix=fix,
        )
    for part in parts:
        if not re.fullmatch(_IDENTIFIER, part) or keyword.iskeyword(part):
            problem = "an empty part ('..')" if not part else f"{part!r} is not a Python name"
            raise custom_error("dotted_path", problem, expected=expected, fix=fix)
    return value


DottedPath = Annotated[str, AfterValidator(_check_dotted_path)]


# ------------------------------------------------------------------- checks across list items


def _item_value(item: object, key: str) -> object:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def duplicate_problems(
    items: object,
    key: str | None,
    *,
    what: str,
    fix: str = "remove the repeated entry",
) -> list[InitErrorDetails]:
    """Return one problem per repeated item (by ``key``, or by value when ``key`` is None).

    ``items`` is the raw value being validated; anything but a list or tuple yields no problems
    (the type error is reported by pydantic itself).
    """
    if not isinstance(items, list | tuple):
        return []
    first_index: dict[object, int] = {}
    problems: list[InitErrorDetails] = []
    for index, item in enumerate(items):
        value = item if key is None else _item_value(item, key)
        if value is None or not isinstance(value, str | int | float | bool):
            continue
        if value in first_index:
            loc: tuple[str | int, ...] = (index,) if key is None else (index, key)
            problems.append(
                InitErrorDetails(
                    type=custom_error(
                        "duplicate",
                        f"{what} {value!r} appears more than once "
                        f"(first as item {first_index[value] + 1})",
                        expected=f"each {what} at most once",
                        fix=fix,
                    ),
                    loc=loc,
                    input=value,
                )
            )
        else:
            first_index[value] = index
    return problems


def _reinit(error: ValidationError) -> list[InitErrorDetails]:
    """Turn a raised ValidationError back into error details, to be raised again with more."""
    details: list[InitErrorDetails] = []
    for line in error.errors():
        context = line.get("ctx") or {}
        kind: str | PydanticCustomError = line["type"]
        try:
            PydanticKnownError(line["type"], context or None)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            kind = PydanticCustomError(line["type"], line["msg"], context or None)
        details.append(
            InitErrorDetails(type=kind, loc=line["loc"], input=line["input"], ctx=context)
            if isinstance(kind, str)
            else InitErrorDetails(type=kind, loc=line["loc"], input=line["input"])
        )
    return details


def merge_problems(
    value: object,
    handler: ValidatorFunctionWrapHandler,
    problems: Sequence[InitErrorDetails],
    *,
    title: str,
) -> Any:
    """Validate ``value`` with ``handler`` and report ``problems`` together with its own errors.

    Checks across list items (a repeated stage, a missing gate) are found on the raw value, so
    they are reported even when some item also has an error of its own: the user sees every
    problem of the file at once.
    """
    try:
        result = handler(value)
    except ValidationError as exc:
        if not problems:
            raise
        raise ValidationError.from_exception_data(exc.title, [*_reinit(exc), *problems]) from None
    if problems:
        raise ValidationError.from_exception_data(title, list(problems))
    return result
