"""Parse and evaluate the small, safe grammar of gate and trigger expressions.

A pipeline file may say ``retraining_trigger: drift_score > 0.3`` or, as a validation gate,
``expression: auroc_ci_lower >= 0.8 and brier <= 0.2``. Such text is read by the hand-written
tokenizer and recursive-descent parser below. It is never handed to ``eval``, ``compile``, ``ast``
or any other part of Python's own machinery, so nothing in it can run code.

The grammar, in full::

    expression := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)+
    operand    := NAME | ["-"] NUMBER

``NAME`` must be one of the metric names the caller allows (:data:`MONITORING_METRICS` for
triggers, :data:`EVALUATION_METRICS` for gates); ``NUMBER`` is a decimal such as ``3``, ``0.3``,
``.5`` or ``1e-3``. Chained comparisons read as in mathematics: ``0.1 < drift_score <= 0.3``.
A comparison must mention at least one metric name. Nothing else exists: no text values, calls,
attributes, subscripts, arithmetic, conditionals or lambdas.
"""

from __future__ import annotations

import difflib
import keyword
import math
import numbers
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, NoReturn

from bedside.errors import ExpressionError, InvalidInput

__all__ = [
    "COMPARISON_OPERATORS",
    "EVALUATION_METRICS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING",
    "MONITORING_METRICS",
    "And",
    "Comparison",
    "Expression",
    "Name",
    "Not",
    "Number",
    "Or",
    "parse_expression",
]

MAX_EXPRESSION_LENGTH: Final = 1000
MAX_NESTING: Final = 32

COMPARISON_OPERATORS: Final[Mapping[str, Callable[[float, float], bool]]] = MappingProxyType(
    {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
    }
)

_PERFORMANCE = {
    "auroc": "area under the ROC curve (0-1)",
    "auprc": "area under the precision-recall curve, average precision (0-1)",
    "sensitivity": "true positive rate at the operating threshold (0-1)",
    "specificity": "true negative rate at the operating threshold (0-1)",
    "ppv": "positive predictive value (precision) at the operating threshold (0-1)",
    "npv": "negative predictive value at the operating threshold (0-1)",
    "false_positive_rate": "1 - specificity at the operating threshold (0-1)",
    "brier": "Brier score, mean squared error of the predicted probability (0 best)",
    "ece": "expected calibration error, 10 equal-width bins (0 best)",
    "calibration_slope": "logistic recalibration slope (1 ideal)",
    "calibration_intercept": "calibration-in-the-large, intercept with slope fixed at 1 (0 ideal)",
}

#: Metric names a monitoring ``retraining_trigger`` may use, with their meaning. Every value is
#: computed over one monitoring ``window`` of production traffic.
MONITORING_METRICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "drift_score": (
            "dataset drift score (0-1): the share of monitored features whose drift test flags "
            "drift against the training reference; the same number as share_of_drifted_features"
        ),
        "share_of_drifted_features": "share of monitored features flagged as drifted (0-1)",
        "drifted_features": "number of monitored features flagged as drifted",
        "prediction_drift": (
            "drift statistic of the predicted probabilities against the training reference "
            "(normed Wasserstein distance, 0 = no drift)"
        ),
        "accuracy": "share of correct predictions at the operating threshold (0-1)",
        **{
            name: meaning
            for name, meaning in _PERFORMANCE.items()
            if name not in {"calibration_slope", "calibration_intercept"}
        },
        "max_disparity": "largest between-group difference of the fairness gate's metric (0-1)",
        "alert_rate": "share of predictions at or above the operating threshold (0-1)",
        "mean_prediction": "mean predicted probability (0-1)",
        "label_coverage": (
            "share of predictions in the window whose outcome label has arrived (0-1)"
        ),
        "prediction_count": "number of predictions in the window",
        "days_since_training": "days since the production model's training run finished",
    }
)

_CI_METRICS = (
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
)

#: Metric names a validation ``expression`` gate may use, with their meaning. Values are computed on
#: the gate's evaluation split; ``<metric>_ci_lower`` / ``_ci_upper`` are the bootstrap confidence
#: bounds at the statistical gate's confidence level (0.95 when there is no statistical gate).
EVALUATION_METRICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **_PERFORMANCE,
        **{
            f"{name}_ci_{side}": f"{side} confidence bound of {name}"
            for name in _CI_METRICS
            for side in ("lower", "upper")
        },
        "net_benefit": "decision-curve net benefit at the operating threshold",
        "prevalence": "share of positive labels in the evaluation split (0-1)",
        "n_patients": "number of patients in the evaluation split",
        "n_events": "number of positive labels in the evaluation split",
        "max_disparity": "largest between-group difference of the fairness gate's metric (0-1)",
    }
)

_PYTHON_WORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
_WHAT_EXISTS = (
    "a metric name, a number, a comparison (< <= > >= == !=), and, or, not or parentheses"
)
_OPERATOR_LIST = "a comparison operator (<, <=, >, >=, ==, !=)"
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHAR_ADVICE = {
    "'": "text values are not part of the grammar; compare a metric name with a number",
    '"': "text values are not part of the grammar; compare a metric name with a number",
    ".": "attributes are not part of the grammar; use a metric name such as drift_score",
    "[": "subscripts are not part of the grammar",
    "]": "subscripts are not part of the grammar",
    "{": "braces are not part of the grammar",
    "}": "braces are not part of the grammar",
    ",": "commas are not part of the grammar; join conditions with and / or",
    ";": "only one expression is allowed; join conditions with and / or",
    ":": "colons are not part of the grammar",
    "+": "arithmetic is not part of the grammar; compare a metric name with a number",
    "*": "arithmetic is not part of the grammar; compare a metric name with a number",
    "/": "arithmetic is not part of the grammar; compare a metric name with a number",
    "%": "arithmetic is not part of the grammar; compare a metric name with a number",
    "@": "decorators and matrix products are not part of the grammar",
    "`": "backquotes are not part of the grammar",
    "\\": "backslashes are not part of the grammar",
    "#": "comments are not part of the grammar",
    "~": "use not to negate a condition",
    "^": "use or / and to combine conditions",
}
_TWO_CHAR_ADVICE = {
    "&&": "use and to combine conditions",
    "||": "use or to combine conditions",
    "<>": "use != for 'not equal'",
    "=>": "use >= for 'at least'",
    "=<": "use <= for 'at most'",
    "**": "arithmetic is not part of the grammar; compare a metric name with a number",
}
_ONE_CHAR_ADVICE = {
    "=": "use == to test equality",
    "!": "use not to negate a condition, != for 'not equal'",
    "&": "use and to combine conditions",
    "|": "use or to combine conditions",
}


# --------------------------------------------------------------------------------------- the tree


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal."""

    value: float

    def __str__(self) -> str:
        return _format_number(self.value)


@dataclass(frozen=True, slots=True)
class Name:
    """A metric name."""

    name: str

    def __str__(self) -> str:
        return self.name


Operand = Number | Name


@dataclass(frozen=True, slots=True)
class Comparison:
    """One comparison or a chain of them: ``a < b <= c`` means ``a < b and b <= c``."""

    operands: tuple[Operand, ...]
    operators: tuple[str, ...]

    def __str__(self) -> str:
        parts = [str(self.operands[0])]
        for op, operand in zip(self.operators, self.operands[1:], strict=True):
            parts += [op, str(operand)]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Not:
    """Logical negation."""

    operand: Node

    def __str__(self) -> str:
        inner = str(self.operand)
        return f"not ({inner})" if isinstance(self.operand, And | Or) else f"not {inner}"


@dataclass(frozen=True, slots=True)
class And:
    """Logical conjunction of two or more conditions."""

    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " and ".join(f"({op})" if isinstance(op, Or) else str(op) for op in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """Logical disjunction of two or more conditions."""

    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " or ".join(str(op) for op in self.operands)


Node = Comparison | Not | And | Or


def _names_of(node: Node | Operand) -> Iterator[str]:
    if isinstance(node, Name):
        yield node.name
    elif isinstance(node, Comparison):
        for operand in node.operands:
            yield from _names_of(operand)
    elif isinstance(node, Not):
        yield from _names_of(node.operand)
    elif isinstance(node, And | Or):
        for child in node.operands:
            yield from _names_of(child)


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed gate or trigger expression.

    ``str(expression)`` is the normalised text (single spaces, minimal parentheses), which
    :func:`parse_expression` reads back to an equal expression. ``text`` keeps the text as written.
    """

    root: Node
    text: str = field(default="", compare=False)

    @property
    def names(self) -> frozenset[str]:
        """Return the metric names the expression uses."""
        return frozenset(_names_of(self.root))

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """Evaluate the expression with the given metric values.

        Args:
            values: a value for every name in :attr:`names` (extra names are ignored).

        Returns:
            Whether the condition holds.

        Raises:
            InvalidInput: a value is missing, is not a number, or is NaN.
        """
        for name in sorted(self.names):
            if name not in values:
                raise InvalidInput(
                    f"the expression '{self}' needs a value for {name}; none was given",
                    details={"expression": str(self), "missing": name},
                )
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidInput(
                    f"the expression '{self}' needs a number for {name}; "
                    f"found a {type(value).__name__}",
                    details={"expression": str(self), "name": name},
                )
            if math.isnan(value):
                raise InvalidInput(
                    f"the expression '{self}' cannot be evaluated: {name} is not a number (NaN)",
                    details={"expression": str(self), "name": name},
                )
        return _evaluate(self.root, values)

    def __str__(self) -> str:
        return str(self.root)


def _value(operand: Operand, values: Mapping[str, float]) -> float:
    return operand.value if isinstance(operand, Number) else float(values[operand.name])


def _evaluate(node: Node, values: Mapping[str, float]) -> bool:
    if isinstance(node, Comparison):
        current = _value(node.operands[0], values)
        for op, operand in zip(node.operators, node.operands[1:], strict=True):
            following = _value(operand, values)
            if not COMPARISON_OPERATORS[op](current, following):
                return False
            current = following
        return True
    if isinstance(node, Not):
        return not _evaluate(node.operand, values)
    if isinstance(node, And):
        return all(_evaluate(child, values) for child in node.operands)
    return any(_evaluate(child, values) for child in node.operands)


# ---------------------------------------------------------------------------------- the tokenizer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # NUMBER NAME OP AND OR NOT LPAREN RPAREN MINUS END BAD
    text: str
    column: int  # 1-based
    advice: str = ""


def _tokens(text: str) -> Iterator[_Token]:
    """Yield tokens; a character outside the grammar becomes one BAD token and ends the stream."""
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        column = position + 1
        if char in " \t\r\n":
            position += 1
            continue
        number = _NUMBER.match(text, position)
        if number is not None:
            end = number.end()
            if end < length and (text[end].isalnum() or text[end] == "_"):
                tail = _NAME.match(text, end)
                glued = text[position : tail.end() if tail else end + 1]
                yield _Token(
                    "BAD",
                    glued,
                    column,
                    "a number must be followed by a space, an operator or a parenthesis",
                )
                return
            yield _Token("NUMBER", number.group(), column)
            position = end
            continue
        name = _NAME.match(text, position)
        if name is not None:
            word = name.group()
            kind = {"and": "AND", "or": "OR", "not": "NOT"}.get(word, "NAME")
            yield _Token(kind, word, column)
            position = name.end()
            continue
        pair = text[position : position + 2]
        if pair in ("<=", ">=", "==", "!="):
            yield _Token("OP", pair, column)
            position += 2
            continue
        if pair in _TWO_CHAR_ADVICE:
            yield _Token("BAD", pair, column, _TWO_CHAR_ADVICE[pair])
            return
        if char in "<>":
            yield _Token("OP", char, column)
        elif char == "(":
            yield _Token("LPAREN", char, column)
        elif char == ")":
            yield _Token("RPAREN", char, column)
        elif char == "-":
            yield _Token("MINUS", char, column)
        else:
            advice = _ONE_CHAR_ADVICE.get(char) or _CHAR_ADVICE.get(char)
            if advice is None:
                advice = f"the character {char!r} is not part of the grammar"
            yield _Token("BAD", char, column, advice)
            return
        position += 1
    yield _Token("END", "", length + 1)


# ------------------------------------------------------------------------------------- the parser


def _describe(token: _Token) -> str:
    if token.kind == "END":
        return "the end of the expression"
    return repr(token.text if len(token.text) <= 40 else token.text[:37] + "...")


class _Parser:
    def __init__(self, text: str, allowed_names: Collection[str]) -> None:
        self._text = text
        self._allowed = allowed_names
        self._tokens = _tokens(text)
        self._current = next(self._tokens)
        self._depth = 0

    # -- helpers
    def _fail(
        self, token: _Token, expected: str, *, problem: str = "", suggestion: str = ""
    ) -> NoReturn:
        found = _describe(token)
        if not problem:
            if token.kind == "BAD":
                problem = token.advice
            elif token.kind == "END":
                problem = "the expression ends too early"
            elif token.kind == "NAME" and token.text in _PYTHON_WORDS:
                problem = f"{token.text!r} is not part of the grammar"
            elif token.kind == "MINUS":
                problem = "arithmetic is not part of the grammar; '-' may only start a number"
            else:
                problem = f"unexpected {found}"
        message = (
            f"invalid expression {self._short()} at column {token.column}: {problem}; "
            f"expected {expected}"
        )
        if suggestion:
            message += f". Did you mean {suggestion!r}?"
        raise ExpressionError(
            message,
            details={
                "column": token.column,
                "token": token.text,
                "found": found,
                "problem": problem,
                "expected": expected,
                "suggestion": suggestion or None,
            },
        )

    def _short(self) -> str:
        text = self._text if len(self._text) <= 80 else self._text[:77] + "..."
        return repr(text)

    def _advance(self) -> _Token:
        token = self._current
        if token.kind != "END":
            self._current = next(self._tokens)
        return token

    def _enter(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            self._fail(
                token,
                f"at most {MAX_NESTING} levels of parentheses / not",
                problem="the expression is nested too deeply",
            )

    # -- grammar
    def parse(self) -> Node:
        node = self._or()
        if self._current.kind != "END":
            token = self._current
            if token.kind == "BAD":
                self._fail(token, "and, or, or the end of the expression")
            if token.kind == "RPAREN":
                self._fail(
                    token,
                    "and, or, or the end of the expression",
                    problem="this ')' closes no '('",
                )
            self._fail(token, "and, or, or the end of the expression")
        return node

    def _or(self) -> Node:
        operands = [self._and()]
        while self._current.kind == "OR":
            self._advance()
            operands.append(self._and())
        if len(operands) == 1:
            return operands[0]
        flat: list[Node] = []
        for operand in operands:
            flat.extend(operand.operands if isinstance(operand, Or) else (operand,))
        return Or(tuple(flat))

    def _and(self) -> Node:
        operands = [self._not()]
        while self._current.kind == "AND":
            self._advance()
            operands.append(self._not())
        if len(operands) == 1:
            return operands[0]
        flat: list[Node] = []
        for operand in operands:
            flat.extend(operand.operands if isinstance(operand, And) else (operand,))
        return And(tuple(flat))

    def _not(self) -> Node:
        token = self._current
        if token.kind == "NOT":
            self._enter(token)
            self._advance()
            node: Node = Not(self._not())
            self._depth -= 1
            return node
        if token.kind == "LPAREN":
            self._enter(token)
            self._advance()
            inner = self._or()
            if self._current.kind != "RPAREN":
                self._fail(
                    self._current, f"and, or, or ')' to close the '(' at column {token.column}"
                )
            self._advance()
            self._depth -= 1
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        first = self._current
        operands = [self._operand()]
        operators: list[str] = []
        while self._current.kind == "OP":
            operators.append(self._advance().text)
            operands.append(self._operand())
        if not operators:
            token = self._current
            if token.kind == "LPAREN":
                self._fail(token, _OPERATOR_LIST, problem="calls are not part of the grammar")
            self._fail(token, f"{_OPERATOR_LIST} after {_describe(first)}")
        if not any(isinstance(operand, Name) for operand in operands):
            self._fail(
                first,
                "a comparison that mentions a metric name, such as drift_score > 0.3",
                problem="this comparison has only numbers",
            )
        return Comparison(tuple(operands), tuple(operators))

    def _operand(self) -> Operand:
        token = self._current
        if token.kind == "MINUS":
            self._advance()
            number = self._current
            if number.kind != "NUMBER":
                self._fail(
                    number,
                    "a number after '-'",
                    problem=(
                        "arithmetic is not part of the grammar"
                        if number.kind in ("NAME", "LPAREN")
                        else f"unexpected {_describe(number)}"
                    ),
                )
            self._advance()
            return Number(-self._number(number))
        if token.kind == "NUMBER":
            self._advance()
            return Number(self._number(token))
        if token.kind == "NAME":
            self._check_name(token)
            self._advance()
            return Name(token.text)
        self._fail(token, "a metric name or a number")

    def _number(self, token: _Token) -> float:
        value = float(token.text)
        if not math.isfinite(value):
            self._fail(token, "a finite number", problem=f"the number {token.text} is too large")
        return value

    def _check_name(self, token: _Token) -> None:
        name = token.text
        if name in self._allowed:
            return
        matches = difflib.get_close_matches(name, sorted(self._allowed), n=1, cutoff=0.6)
        known = sorted(self._allowed)
        listed = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        if name in _PYTHON_WORDS or name.startswith("__"):
            problem = f"{name!r} is not part of the grammar (only metric names, numbers, "
            problem += "comparisons, and, or, not, parentheses)"
        else:
            problem = f"unknown metric name {name!r}"
        self._fail(
            token,
            f"a known metric name ({listed})",
            problem=problem,
            suggestion=matches[0] if matches else "",
        )


def parse_expression(text: str, *, allowed_names: Collection[str]) -> Expression:
    """Parse a gate or trigger expression in the safe grammar.

    Args:
        text: the expression as written, e.g. ``"drift_score > 0.3"``.
        allowed_names: the metric names it may use (:data:`MONITORING_METRICS` or
            :data:`EVALUATION_METRICS`).

    Returns:
        The parsed :class:`Expression`.

    Raises:
        ExpressionError: the text is not in the grammar; ``details`` holds ``column`` (1-based),
            ``token``, ``found``, ``problem``, ``expected`` and ``suggestion`` (a did-you-mean name
            or ``None``).
    """
    if not isinstance(text, str):
        raise ExpressionError(
            f"an expression is text such as 'drift_score > 0.3'; found a {type(text).__name__}",
            details={
                "column": 1,
                "token": "",
                "found": f"a {type(text).__name__}",
                "problem": "not text",
                "expected": "text such as drift_score > 0.3",
                "suggestion": None,
            },
        )
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"an expression may be at most {MAX_EXPRESSION_LENGTH} characters; found {len(text)}",
            details={
                "column": MAX_EXPRESSION_LENGTH + 1,
                "token": "",
                "found": f"{len(text)} characters",
                "problem": "the expression is too long",
                "expected": f"at most {MAX_EXPRESSION_LENGTH} characters",
                "suggestion": None,
            },
        )
    parser = _Parser(text, allowed_names)
    if parser._current.kind == "END":
        parser._fail(parser._current, _WHAT_EXISTS, problem="the expression is empty")
    return Expression(parser.parse(), text)
