"""The safe grammar of gate and trigger expressions."""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.domain.expressions import (
    EVALUATION_METRICS,
    MAX_EXPRESSION_LENGTH,
    MONITORING_METRICS,
    And,
    Comparison,
    Expression,
    Name,
    Not,
    Number,
    Or,
    parse_expression,
)
from bedside.errors import ExpressionError, InvalidInput

# --------------------------------------------------------------------------- audit-hook recorder

# Audit hooks cannot be removed once added, so one hook is installed for the whole test process
# and it records only while a test has switched recording on through this context variable.
_WATCHED = ("exec", "compile", "os.system", "os.exec", "os.posix_spawn", "subprocess.Popen")
_recording: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "bedside_expression_audit", default=None
)


def _audit(event: str, _args: tuple[object, ...]) -> None:
    events = _recording.get()
    if events is not None and (event in _WATCHED or event == "import"):
        events.append(event)


sys.addaudithook(_audit)


@contextmanager
def _recorded_events() -> Iterator[list[str]]:
    events: list[str] = []
    token = _recording.set(events)
    try:
        yield events
    finally:
        _recording.reset(token)


def test_audit_recorder_sees_exec_and_compile() -> None:
    # The negative checks below mean something only if the recorder would notice code running.
    with _recorded_events() as events:
        exec(compile("1 + 1", "<control>", "eval"))
    assert "compile" in events
    assert "exec" in events


def test_audit_recorder_is_inert_outside_recording() -> None:
    with _recorded_events() as events:
        pass
    exec(compile("2 + 2", "<control>", "eval"))
    assert events == []


UNSAFE_INPUTS = [
    "__import__('os').system('touch {x}')",
    "__import__('pathlib').Path('{x}').touch()",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "drift_score > 0.3; import os",
    "drift_score > 0.3 and __import__('os').system('touch {x}')",
    "import os",
    "lambda: __import__('os').system('touch {x}')",
    "lambda x: x",
    "f\"{{__import__('os').system('touch {x}')}}\"",
    "drift_score if auroc else brier",
    'exec(\'open("{x}", "w")\')',
    "eval('1')",
    "open('{x}', 'w')",
    "drift_score.__class__",
    "drift_score[0] > 1",
    "[drift_score for drift_score in (1,)]",
    "drift_score > 0.3 or globals()",
    "(yield)",
    "drift_score := 1",
    "drift_score + 1 > 2",
    "drift_score > 'high'",
    "breakpoint()",
]


@pytest.mark.parametrize("template", UNSAFE_INPUTS)
def test_parse_expression_rejects_code_without_running_it(template: str, tmp_path: Path) -> None:
    target = tmp_path / "X"
    text = template.format(x=target)
    with _recorded_events() as events, pytest.raises(ExpressionError) as caught:
        parse_expression(text, allowed_names=MONITORING_METRICS)
    assert events == [], f"parsing {text!r} triggered audit events {events}"
    assert not target.exists()
    details = caught.value.details
    assert 1 <= details["column"] <= len(text) + 1
    assert details["expected"]


def test_unsafe_payload_is_live_when_python_evaluates_it(tmp_path: Path) -> None:
    # Control: the payload really creates the file when Python evaluates it, so the test above
    # proves the parser did not evaluate it.
    target = tmp_path / "control"
    payload = f"__import__('pathlib').Path({str(target)!r}).touch()"
    with _recorded_events() as events:
        eval(payload)  # test-only oracle on a fixed payload, never on user text
    assert target.exists()
    assert "compile" in events or "exec" in events


# ------------------------------------------------------------------------------- valid grammar


def test_parse_expression_founding_trigger() -> None:
    expression = parse_expression("drift_score > 0.3", allowed_names=MONITORING_METRICS)
    assert expression.names == frozenset({"drift_score"})
    assert str(expression) == "drift_score > 0.3"
    assert expression.root == Comparison((Name("drift_score"), Number(0.3)), (">",))
    assert expression.evaluate({"drift_score": 0.31}) is True
    assert expression.evaluate({"drift_score": 0.3}) is False


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("drift_score>0.3", "drift_score > 0.3"),
        ("  drift_score   >=  .5 ", "drift_score >= 0.5"),
        ("auroc < 0.8 or drift_score > 0.3", "auroc < 0.8 or drift_score > 0.3"),
        ("(auroc < 0.8) and (drift_score > 0.3)", "auroc < 0.8 and drift_score > 0.3"),
        (
            "(auroc < 0.8 or ece > 0.1) and alert_rate > 0.2",
            "(auroc < 0.8 or ece > 0.1) and alert_rate > 0.2",
        ),
        ("not (auroc < 0.8 or ece > 0.1)", "not (auroc < 0.8 or ece > 0.1)"),
        ("not not auroc < 0.8", "not not auroc < 0.8"),
        ("0.1 < drift_score <= 0.3", "0.1 < drift_score <= 0.3"),
        ("drift_score > -1e-3", "drift_score > -0.001"),
        ("days_since_training >= 180", "days_since_training >= 180"),
        ("days_since_training >= 180.0", "days_since_training >= 180"),
        ("auroc != auprc", "auroc != auprc"),
        ("auroc<1 or ece<1 or ppv<1", "auroc < 1 or ece < 1 or ppv < 1"),
        ("((auroc < 1 or ece < 1) or ppv < 1)", "auroc < 1 or ece < 1 or ppv < 1"),
    ],
)
def test_parse_expression_normalises_text(text: str, normalised: str) -> None:
    expression = parse_expression(text, allowed_names=MONITORING_METRICS)
    assert str(expression) == normalised
    assert expression.text == text
    assert parse_expression(normalised, allowed_names=MONITORING_METRICS) == expression


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("0.1 < drift_score <= 0.3", {"drift_score": 0.3}, True),
        ("0.1 < drift_score <= 0.3", {"drift_score": 0.1}, False),
        ("0.1 < drift_score <= 0.3", {"drift_score": 0.31}, False),
        ("not auroc < 0.8", {"auroc": 0.85}, True),
        ("auroc < 0.8 or drift_score > 0.3", {"auroc": 0.9, "drift_score": 0.4}, True),
        ("auroc < 0.8 and drift_score > 0.3", {"auroc": 0.9, "drift_score": 0.4}, False),
        ("drift_score == 0", {"drift_score": 0}, True),
        ("drift_score != 0", {"drift_score": 0}, False),
        ("drift_score > -1", {"drift_score": -0.5}, True),
    ],
)
def test_expression_evaluate(text: str, values: dict[str, float], expected: bool) -> None:
    assert parse_expression(text, allowed_names=MONITORING_METRICS).evaluate(values) is expected


def test_expression_evaluate_names_missing_value() -> None:
    expression = parse_expression(
        "auroc < 0.8 or drift_score > 0.3", allowed_names=MONITORING_METRICS
    )
    with pytest.raises(InvalidInput, match="needs a value for auroc") as caught:
        expression.evaluate({"drift_score": 0.1})
    assert caught.value.details["missing"] == "auroc"


@pytest.mark.parametrize("bad", [float("nan"), "0.3", None, True])
def test_expression_evaluate_refuses_non_numbers(bad: object) -> None:
    expression = parse_expression("drift_score > 0.3", allowed_names=MONITORING_METRICS)
    with pytest.raises(InvalidInput, match="drift_score"):
        expression.evaluate({"drift_score": bad})  # type: ignore[dict-item]


def test_evaluation_vocabulary_has_confidence_bounds() -> None:
    expression = parse_expression(
        "auroc_ci_lower >= 0.8 and brier <= 0.2 and calibration_slope > 0.8",
        allowed_names=EVALUATION_METRICS,
    )
    assert expression.names == {"auroc_ci_lower", "brier", "calibration_slope"}
    with pytest.raises(ExpressionError, match="unknown metric name 'auroc_ci_lower'"):
        parse_expression("auroc_ci_lower >= 0.8", allowed_names=MONITORING_METRICS)


def test_vocabularies_hold_the_named_metrics() -> None:
    for name in [
        "drift_score",
        "share_of_drifted_features",
        "prediction_drift",
        "auroc",
        "auprc",
        "accuracy",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "false_positive_rate",
        "brier",
        "ece",
        "alert_rate",
        "label_coverage",
        "days_since_training",
    ]:
        assert name in MONITORING_METRICS
    for name in [
        "auroc",
        "auprc",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "false_positive_rate",
        "brier",
        "ece",
        "calibration_slope",
        "calibration_intercept",
        "net_benefit",
    ]:
        assert name in EVALUATION_METRICS
    assert all(MONITORING_METRICS.values()) and all(EVALUATION_METRICS.values())


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "column", "token", "expected_part", "problem_part"),
    [
        ("drft_score > 0.3", 1, "drft_score", "a known metric name", "unknown metric name"),
        ("drift_score > 0.3; import os", 18, ";", "and, or, or the end", "only one expression"),
        ("drift_score = 0.3", 13, "=", "a comparison operator", "use =="),
        ("drift_score && auroc > 1", 13, "&&", "a comparison operator", "use and"),
        ("drift_score > 0.3 & auroc < 1", 19, "&", "and, or, or the end", "use and"),
        ("drift_score", 12, "", "a comparison operator", "ends too early"),
        ("drift_score >", 14, "", "a metric name or a number", "ends too early"),
        ("(drift_score > 0.3", 19, "", "')' to close the '(' at column 1", "ends too early"),
        ("drift_score > 0.3)", 18, ")", "the end of the expression", "closes no '('"),
        ("1 < 2", 1, "1", "mentions a metric name", "only numbers"),
        ("drift_score > 'high'", 15, "'", "a metric name or a number", "text values"),
        ("drift_score - 1 > 0", 13, "-", "a comparison operator", "arithmetic"),
        ("drift_score > - auroc", 17, "auroc", "a number after '-'", "arithmetic"),
        ("drift_score > 0.3x", 15, "0.3x", "a metric name or a number", "followed by"),
        ("drift_score > 1e999", 15, "1e999", "a finite number", "too large"),
        ("drift_score.real > 1", 12, ".", "a comparison operator", "attributes"),
        ("auroc(drift_score) > 1", 6, "(", "a comparison operator", "calls"),
        ("max(drift_score) > 1", 1, "max", "a known metric name", "unknown metric name"),
        ("drift_score if auroc else 1", 13, "if", "a comparison operator", "'if' is not part"),
        ("", 1, "", "a metric name, a number", "empty"),
        ("drift_score > 0.3 or", 21, "", "a metric name or a number", "ends too early"),
        ("drift_score ≥ 0.3", 13, "≥", "a comparison operator", "not part of the grammar"),
    ],
)
def test_parse_expression_error_details(
    text: str, column: int, token: str, expected_part: str, problem_part: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text, allowed_names=MONITORING_METRICS)
    details = caught.value.details
    assert details["column"] == column
    assert details["token"] == token
    assert expected_part in details["expected"]
    assert problem_part in details["problem"]
    message = str(caught.value)
    assert f"column {column}" in message
    assert "expected" in message


def test_parse_expression_suggests_close_metric_name() -> None:
    with pytest.raises(ExpressionError, match=r"Did you mean 'drift_score'\?") as caught:
        parse_expression("drift_scor > 0.3", allowed_names=MONITORING_METRICS)
    assert caught.value.details["suggestion"] == "drift_score"


def test_parse_expression_limits_nesting_and_length() -> None:
    deep = "(" * 40 + "drift_score > 1" + ")" * 40
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_expression(deep, allowed_names=MONITORING_METRICS)
    negations = "not " * 40 + "drift_score > 1"
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_expression(negations, allowed_names=MONITORING_METRICS)
    too_long = " or ".join(["drift_score > 1"] * 100)
    assert len(too_long) > MAX_EXPRESSION_LENGTH
    with pytest.raises(ExpressionError, match="at most 1000 characters"):
        parse_expression(too_long, allowed_names=MONITORING_METRICS)


def test_parse_expression_refuses_non_text() -> None:
    with pytest.raises(ExpressionError, match="found a float"):
        parse_expression(0.3, allowed_names=MONITORING_METRICS)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- properties


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_junk_text_raises_only_expression_error(text: str) -> None:
    try:
        expression = parse_expression(text, allowed_names=MONITORING_METRICS)
    except ExpressionError as error:
        assert 1 <= error.details["column"] <= len(text) + 1
        return
    assert isinstance(expression, Expression)


_ALPHABET = [*list("()<>=!-. 0123456789"), "and ", "or ", "not ", "drift_score", "auroc", "e"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=25).map("".join))
def test_near_grammar_text_raises_only_expression_error(text: str) -> None:
    try:
        expression = parse_expression(text, allowed_names=MONITORING_METRICS)
    except ExpressionError:
        return
    assert parse_expression(str(expression), allowed_names=MONITORING_METRICS) == expression


_NAMES = ("drift_score", "auroc", "ece", "alert_rate")
_operands = st.one_of(
    st.sampled_from(_NAMES).map(Name),
    st.floats(min_value=-5, max_value=5, allow_nan=False).map(Number),
)


@st.composite
def _comparisons(draw: st.DrawFn) -> Comparison:
    size = draw(st.integers(min_value=2, max_value=3))
    operands: list[Name | Number] = [draw(st.sampled_from(_NAMES).map(Name))]
    operands += [draw(_operands) for _ in range(size - 1)]
    operands = draw(st.permutations(operands))
    operators = draw(
        st.lists(
            st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
            min_size=size - 1,
            max_size=size - 1,
        )
    )
    return Comparison(tuple(operands), tuple(operators))


_trees = st.recursive(
    _comparisons(),
    lambda children: st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    _trees,
    st.fixed_dictionaries(
        {name: st.floats(min_value=-5, max_value=5, allow_nan=False) for name in _NAMES}
    ),
)
def test_evaluation_agrees_with_python_semantics(tree: object, values: dict[str, float]) -> None:
    # The grammar is a subset of Python's with the same precedence, so Python itself is the oracle
    # for our evaluator. This evaluates only text the test generated from a tree, never user text.
    text = str(Expression(tree))  # type: ignore[arg-type]
    parsed = parse_expression(text, allowed_names=MONITORING_METRICS)
    expected = eval(text, {"__builtins__": {}}, dict(values))  # test oracle on generated text
    assert parsed.evaluate(values) is bool(expected)
    assert str(parsed) == text
