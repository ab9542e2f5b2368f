"""Refuse PHI-looking content before it is written to experiment tracking (MLflow).

Every write bedside makes to MLflow — param and tag keys and values, metric names, run,
experiment and registered-model names, aliases, dataset names/sources/schemas/profiles, input
examples, the strings a fitted model keeps (``classes_``, ``categories_``, feature names), and
artifact file names and text — is checked here first. :class:`PhiGuard` reports *where* and
*which rule*, never the value: a refused value is never repeated in a message, in ``details``, or
in a log line. A key is named in a message only when the key itself is clean; otherwise it is
referred to by position (``param key #3``).

Rules (:class:`GuardRule`):

- ``key_name`` — a key (param/tag key, metric name, column name) names a person-level identifier:
  ``patient_id``, ``mrn``, ``encounter``, ``subject_id``, ``ssn``, ``dob``, ``name``,
  ``first_name``, ``phone``, ``email``, ``address``, ``zip``… (``n_patients``, ``model_name``,
  ``zip3`` and ``feature_names`` are fine);
- value patterns on text: ``ssn``, ``phone``, ``email``, ``mrn_like`` (``MRN 1234``, a bare run
  of 7+ digits, or a whole token such as ``PT-0012345``), ``fhir_reference`` (``Patient/…``,
  ``Encounter/…``), ``uuid`` (dashed UUIDs, the shape of FHIR/Synthea patient ids), ``full_date``
  (day precision: ``1987-03-14``, ``3/14/1987``, ``Mar 14, 1987``), ``street_address``
  (``12 Main Street``, ``PO Box 7``), ``zip_code`` (a value that is a 5-digit ZIP, ZIP+4
  anywhere, or a ZIP after a state code), ``person_name`` (two name-shaped words with a common
  given or family name from :mod:`bedside.domain.phi_names`, or Synthea-style ``Abe604
  Frami345``);
- ``age_over_89`` — in input examples and dataset profiles, an age-named column or key with a
  value of 90 or more (Safe Harbor §1.3).

Numbers (``int``/``float``/``bool``) in params and tags are hyperparameters and counts: only
their keys are checked. Dates and datetimes as values break ``full_date``.

Allow-list: :data:`LINEAGE_KEYS` are bedside's own lineage tags (git commit, dataset digest,
pipeline and lock-file SHA-256, versions, platform). Their values skip the pattern rules but must
match the key's exact :class:`ValueFormat` (a 64-hex digest could otherwise hold a 7-digit run),
so an allow-listed key cannot smuggle free text. :data:`KNOWN_METRICS` names (``auroc``,
``sensitivity``… with an optional split prefix and CI suffix) pass as metric names. A project can
allow more keys (with a format) through ``PhiGuard(allowed_keys=...)``.

Hex digests (``[0-9a-f]{32,}``) pass the value rules everywhere: they are how lineage is written.
A keyed pseudonym is hex too; under a patient-named key it is still refused by ``key_name``.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from bedside.domain.phi_names import FAMILY_NAMES, GIVEN_NAMES, NOT_NAME_WORDS, words
from bedside.domain.phi_scan import SCRUB_PATTERNS
from bedside.errors import InvalidInput

__all__ = [
    "KNOWN_METRICS",
    "LINEAGE_KEYS",
    "Field",
    "GuardRule",
    "PhiGuard",
    "PhiViolation",
    "ValueFormat",
]


class GuardRule(enum.StrEnum):
    """Why a write to tracking was refused."""

    KEY_NAME = "key_name"
    SSN = "ssn"
    PHONE = "phone"
    EMAIL = "email"
    MRN_LIKE = "mrn_like"
    FHIR_REFERENCE = "fhir_reference"
    UUID = "uuid"
    FULL_DATE = "full_date"
    STREET_ADDRESS = "street_address"
    ZIP_CODE = "zip_code"
    PERSON_NAME = "person_name"
    AGE_OVER_89 = "age_over_89"
    ALLOW_LIST_FORMAT = "allow_list_format"


RULE_HELP: Final[Mapping[GuardRule, str]] = {
    GuardRule.KEY_NAME: "the name announces a patient-level identifier",
    GuardRule.SSN: "looks like a US Social Security number",
    GuardRule.PHONE: "looks like a phone or fax number",
    GuardRule.EMAIL: "looks like an email address",
    GuardRule.MRN_LIKE: "looks like a medical record number or other long identifier",
    GuardRule.FHIR_REFERENCE: "holds a FHIR reference to a patient-level resource",
    GuardRule.UUID: "holds a UUID, the shape of FHIR/EHR patient ids",
    GuardRule.FULL_DATE: "holds a full date (day precision)",
    GuardRule.STREET_ADDRESS: "looks like a street address",
    GuardRule.ZIP_CODE: "looks like a 5-digit ZIP code",
    GuardRule.PERSON_NAME: "looks like a person's name",
    GuardRule.AGE_OVER_89: "holds an age of 90 or more",
    GuardRule.ALLOW_LIST_FORMAT: "is allow-listed only for a fixed format, and this is not it",
}


class Field(enum.StrEnum):
    """What kind of tracking write a check is about (named in messages)."""

    PARAM = "param"
    TAG = "tag"
    METRIC = "metric"
    RUN_NAME = "run name"
    EXPERIMENT_NAME = "experiment name"
    DATASET = "dataset"
    DATASET_PROFILE = "dataset profile"
    INPUT_EXAMPLE = "input example"
    MODEL_NAME = "registered model name"
    ALIAS = "alias"
    MODEL_CONTENT = "model"
    ARTIFACT = "artifact"


class ValueFormat(enum.StrEnum):
    """The exact shape an allow-listed key's value must have."""

    SHA256 = "sha256"
    SHA256_OR_NONE = "sha256_or_none"
    GIT_COMMIT = "git_commit"
    BOOLEAN = "boolean"
    VERSION = "version"
    PLATFORM = "platform"
    RUN_ID = "run_id"
    MODEL_ID = "model_id"
    DATE = "date"
    TIMESTAMP = "timestamp"


_FORMATS: Final[Mapping[ValueFormat, re.Pattern[str]]] = {
    ValueFormat.SHA256: re.compile(r"[0-9a-f]{64}"),
    ValueFormat.SHA256_OR_NONE: re.compile(r"[0-9a-f]{64}|none"),
    ValueFormat.GIT_COMMIT: re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}|none"),
    ValueFormat.BOOLEAN: re.compile(r"true|false|unknown"),
    ValueFormat.VERSION: re.compile(r"[0-9]+(?:\.[0-9]+){0,3}(?:[.+-]?[A-Za-z0-9]+(?:\.[0-9]+)?)*"),
    ValueFormat.PLATFORM: re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}"),
    ValueFormat.RUN_ID: re.compile(r"[0-9a-f]{32}"),
    ValueFormat.MODEL_ID: re.compile(r"m-[0-9a-f]{32}"),
    ValueFormat.DATE: re.compile(r"\d{4}-\d{2}-\d{2}"),
    ValueFormat.TIMESTAMP: re.compile(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    ),
}

#: bedside's own lineage tags and the format each value must have. ``mlflow.source.git.commit``
#: is MLflow's own tag for the commit (its UI shows it on the run page).
LINEAGE_KEYS: Final[Mapping[str, ValueFormat]] = {
    "bedside.git.commit": ValueFormat.GIT_COMMIT,
    "bedside.git.dirty": ValueFormat.BOOLEAN,
    "bedside.dataset.digest": ValueFormat.SHA256,
    "bedside.pipeline.sha256": ValueFormat.SHA256,
    "bedside.lock.sha256": ValueFormat.SHA256_OR_NONE,
    "bedside.python": ValueFormat.VERSION,
    "bedside.platform": ValueFormat.PLATFORM,
    "bedside.version": ValueFormat.VERSION,
    "bedside.parent_run": ValueFormat.RUN_ID,
    "bedside.model_id": ValueFormat.MODEL_ID,
    "mlflow.source.git.commit": ValueFormat.GIT_COMMIT,
}

#: Metric names bedside itself logs (REGULATORY §8); with an optional split prefix
#: (``test.``/``validation_``) and CI suffix (``.ci_low``/``_ci_high``) they pass as names.
KNOWN_METRICS: Final[frozenset[str]] = words(
    """
    auroc auc auc_roc auprc average_precision sensitivity specificity ppv npv fpr fnr tpr tnr
    accuracy balanced_accuracy f1 precision recall brier brier_score ece
    expected_calibration_error calibration_slope calibration_intercept net_benefit threshold
    prevalence log_loss n n_rows n_events events positives negatives alerts_per_100
    """
)
_METRIC_NAME: Final = re.compile(
    r"(?:(?:train|training|validation|valid|val|test)[._])?(?P<name>[a-z0-9_]+?)"
    r"(?:[._](?:ci_low|ci_high|lower|upper|se|std))?"
)

# --- value patterns ----------------------------------------------------------------------------

_SCRUB = {kind: pattern for kind, pattern, _tag in SCRUB_PATTERNS}
_HEX_BLOB: Final = re.compile(r"[0-9a-fA-F]{32,}")
_STATES: Final = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|"
    "NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_STREET_SUFFIX: Final = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    "terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl"
)

_VALUE_RULES: Final[tuple[tuple[GuardRule, re.Pattern[str]], ...]] = (
    (
        GuardRule.FHIR_REFERENCE,
        re.compile(
            r"(?<![A-Za-z])(?:Patient|Encounter|Person|RelatedPerson|EpisodeOfCare|Coverage|Account)"
            r"/[A-Za-z0-9.\-]{1,64}"
        ),
    ),
    (
        GuardRule.UUID,
        re.compile(
            r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
            r"-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])"
        ),
    ),
    (
        GuardRule.EMAIL,  # bounded (RFC 5321 lengths), so a long token cannot make it quadratic
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}"
            r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
        ),
    ),
    (GuardRule.SSN, _SCRUB["ssn"]),
    (GuardRule.PHONE, _SCRUB["phone"]),
    (GuardRule.FULL_DATE, _SCRUB["date"]),
    (
        GuardRule.STREET_ADDRESS,
        re.compile(
            rf"\b\d{{1,6}}\s{{1,3}}(?:[A-Za-z][A-Za-z'.-]{{0,30}}\s{{1,3}}){{1,4}}"
            rf"(?:{_STREET_SUFFIX})\b"
            r"|\bP\.?\s?O\.?\s{1,3}Box\s{1,3}\d+",
            re.IGNORECASE,
        ),
    ),
    (
        GuardRule.ZIP_CODE,
        re.compile(
            r"^\s*\d{5}(?:-\d{4})?\s*$|(?<![\d-])\d{5}-\d{4}(?![\d-])"
            rf"|\b(?:{_STATES}),?\s+\d{{5}}(?![\d-])"
        ),
    ),
    (
        GuardRule.MRN_LIKE,
        re.compile(
            r"\b(?:MRN|MR#|med(?:ical)?[\s_-]*rec(?:ord)?(?:[\s_-]*(?:no|num|number))?)"
            r"(?![A-Za-z])\s{0,3}[:#=]?\s{0,3}[A-Za-z0-9-]{0,20}\d"
            r"|(?<![0-9A-Za-z.])\d{7,}(?![0-9A-Za-z.])"
            r"|(?<![A-Za-z0-9])[A-Za-z]{1,4}[-#]?\d{6,12}(?![A-Za-z0-9])",
            re.IGNORECASE,
        ),
    ),
)

#: The rules applied to artifact text (reports, JSON files): the high-confidence identifiers
#: only — documents legitimately carry dates, counts, and the names of staff.
_TEXT_RULES: Final = frozenset(
    {
        GuardRule.FHIR_REFERENCE,
        GuardRule.UUID,
        GuardRule.EMAIL,
        GuardRule.SSN,
        GuardRule.PHONE,
        GuardRule.STREET_ADDRESS,
    }
)

_NAME_TOKEN: Final = re.compile(r"[A-Za-z][A-Za-z'\-]*\d{0,4}")
_SYNTHEA_NAME: Final = re.compile(r"[A-Z][a-z]+\d{2,4}")
_NAME_GAP: Final = re.compile(r"[ \t]{1,3}|,[ \t]{0,2}|\.[ \t]{1,2}")

# --- key names ---------------------------------------------------------------------------------

_ALWAYS_KEY_TOKENS: Final = words(
    """
    mrn ssn dob dod birthdate birthday dateofbirth phone telephone cellphone fax email
    address street zip zipcode postcode postalcode surname forename firstname lastname fullname
    givenname familyname maidenname csn empi
    """
)
_ENTITY_TOKENS: Final = words(
    "patient person subject encounter member visit admission hadm beneficiary pt enc"
)
_ID_TOKENS: Final = words(
    "id ids key keys number no num nbr identifier ref reference uuid guid name names mrn"
)
_KEY_SEQUENCES: Final[tuple[tuple[str, ...], ...]] = (
    ("date", "of", "birth"),
    ("birth", "date"),
    ("date", "of", "death"),
    ("first", "name"),
    ("last", "name"),
    ("given", "name"),
    ("family", "name"),
    ("full", "name"),
    ("middle", "name"),
    ("maiden", "name"),
    ("social", "security"),
    ("medical", "record"),
    ("e", "mail"),
    ("postal", "code"),
    ("phone", "number"),
    ("home", "address"),
)
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_SPLIT: Final = re.compile(r"[^a-z0-9]+")
_AGE_TOKENS: Final = frozenset({"age", "ages", "age_years", "ageyears"})
_AGE_STAT_KEYS: Final = words("max maximum min minimum value values top p95 p99 q3 median")


def _key_tokens(key: str) -> list[str]:
    return [t for t in _SPLIT.split(_CAMEL.sub("_", key).lower()) if t]


def _key_names_identifier(key: str) -> bool:
    """Return whether a key/column/metric name announces a person-level identifier."""
    tokens = _key_tokens(key)
    if not tokens:
        return False
    if (
        tokens == ["name"]
        or tokens == ["names"]
        or (len(tokens) == 1 and tokens[0] in _ENTITY_TOKENS)
    ):
        return True
    for i, token in enumerate(tokens):
        if token == "zip" and i + 1 < len(tokens) and tokens[i + 1] == "3":
            continue  # a 3-digit ZIP is what Safe Harbor keeps
        if token in _ALWAYS_KEY_TOKENS:
            return True
        if token in _ENTITY_TOKENS and i + 1 < len(tokens) and tokens[i + 1] in _ID_TOKENS:
            return True
    joined = tuple(tokens)
    for seq in _KEY_SEQUENCES:
        n = len(seq)
        if any(joined[i : i + n] == seq for i in range(len(joined) - n + 1)):
            return True
    return False


def _is_age_key(key: str) -> bool:
    tokens = _key_tokens(key)
    return bool(tokens) and (tokens[0] in _AGE_TOKENS or tokens[-1] in _AGE_TOKENS)


def _is_name_shaped(word: str) -> bool:
    """Return whether a word is capitalised letters only (``Mary``, ``SMITH``, an initial ``Q``)."""
    return word[:1].isupper() and word.isalpha()


def _has_person_name(text: str) -> bool:
    tokens = list(_NAME_TOKEN.finditer(text))
    for left, right in itertools.pairwise(tokens):
        gap = text[left.end() : right.start()]
        if not _NAME_GAP.fullmatch(gap):
            continue
        a, b = left.group(), right.group()
        if _SYNTHEA_NAME.fullmatch(a) and _SYNTHEA_NAME.fullmatch(b):
            return True
        la, lb = a.lower(), b.lower()
        if la in NOT_NAME_WORDS or lb in NOT_NAME_WORDS:
            continue
        if la in GIVEN_NAMES and lb in FAMILY_NAMES:
            return True  # any case: "john smith"
        if la in GIVEN_NAMES and _is_name_shaped(a) and _is_name_shaped(b) and "," not in gap:
            return True  # "Mary Quixwhistle"
        if lb in FAMILY_NAMES and _is_name_shaped(a) and _is_name_shaped(b) and "," not in gap:
            return True  # "Zebulon Smith"
        if la in FAMILY_NAMES and lb in GIVEN_NAMES and _is_name_shaped(a) and "," in gap:
            return True  # "Smith, John"
    return False


def _text_rule(text: str, rules: frozenset[GuardRule] | None = None) -> GuardRule | None:
    """Return the first rule a piece of text breaks, or None."""
    if not text or _HEX_BLOB.fullmatch(text.strip()):
        return None
    for rule, pattern in _VALUE_RULES:
        if (rules is None or rule in rules) and pattern.search(text):
            return rule
    if (rules is None or GuardRule.PERSON_NAME in rules) and _has_person_name(text):
        return GuardRule.PERSON_NAME
    return None


def _value_rule(value: Any) -> GuardRule | None:
    """Return the rule a logged value breaks: numbers pass, dates break, text is scanned."""
    if value is None or isinstance(value, bool | int | float | np.bool_ | np.number):
        return None
    if isinstance(value, date | datetime | np.datetime64):
        return GuardRule.FULL_DATE if not pd.isna(value) else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return _text_rule(value if isinstance(value, str) else str(value))


# --- violations --------------------------------------------------------------------------------

Part = Literal["key", "value", "name", "column", "cell", "content"]
_MAX_LABEL = 80


@dataclass(frozen=True, slots=True)
class PhiViolation:
    """One refused item: where it is and which rule it breaks — never the value.

    Attributes:
        field: the kind of write (param, tag, metric, input example …).
        part: which part of the item broke the rule (the key, the value, a column name …).
        rule: the rule broken.
        label: how the place is named: the key in quotes when the key itself is clean, else
            its position (``#3``); empty for single names (a run name).
    """

    field: Field
    part: Part
    rule: GuardRule
    label: str

    def describe(self) -> str:
        """Return one line for a message: field, place, part and rule (never the value)."""
        place = f"{self.field.value} {self.label}".strip()
        return f"{place} ({self.part}): rule '{self.rule.value}' — {RULE_HELP[self.rule]}"

    def to_dict(self) -> dict[str, str]:
        """Return the violation as JSON values (for ``InvalidInput.details``)."""
        return {
            "field": self.field.value,
            "part": self.part,
            "rule": self.rule.value,
            "where": self.label,
        }


def _label(key: str, position: int) -> str:
    """Name a key by itself when it is clean and short, else by its position (1-based)."""
    if len(key) <= _MAX_LABEL and key.isprintable() and _text_rule(key) is None:
        return repr(key)
    return f"#{position}"


# --- the guard ---------------------------------------------------------------------------------


class PhiGuard:
    """Check tracking writes for PHI; ``check_*`` raise, ``find_*`` return the violations.

    Args:
        allowed_keys: extra keys (param/tag keys) whose values skip the pattern rules but must
            match the given format, on top of :data:`LINEAGE_KEYS`.
    """

    def __init__(self, allowed_keys: Mapping[str, ValueFormat] | None = None) -> None:
        self.allowed_keys: dict[str, ValueFormat] = {**LINEAGE_KEYS, **(allowed_keys or {})}

    # -- finding ---------------------------------------------------------------------------------

    def find_in_pairs(
        self, field: Field, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> list[PhiViolation]:
        """Return the violations in key/value pairs (params, tags, registry tags)."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        found: list[PhiViolation] = []
        for position, (key, value) in enumerate(items, start=1):
            key = str(key)
            label = _label(key, position)
            allowed = self.allowed_keys.get(key)
            if allowed is not None:
                text = value if isinstance(value, str) else str(value).lower()
                if not _FORMATS[allowed].fullmatch(text):
                    found.append(PhiViolation(field, "value", GuardRule.ALLOW_LIST_FORMAT, label))
                continue
            key_rule = _text_rule(key)
            if key_rule is not None:
                found.append(PhiViolation(field, "key", key_rule, label))
            elif _key_names_identifier(key):
                found.append(PhiViolation(field, "key", GuardRule.KEY_NAME, label))
            value_rule = _value_rule(value)
            if value_rule is not None:
                found.append(PhiViolation(field, "value", value_rule, label))
        return found

    def find_in_metric_names(self, names: Iterable[str]) -> list[PhiViolation]:
        """Return the violations in metric names (values are numbers and are not checked)."""
        found: list[PhiViolation] = []
        for position, name in enumerate(names, start=1):
            name = str(name)
            match = _METRIC_NAME.fullmatch(name)
            if match and match.group("name") in KNOWN_METRICS:
                continue
            found += self._find_in_key(Field.METRIC, "name", name, position)
        return found

    def find_in_name(self, field: Field, name: str) -> list[PhiViolation]:
        """Return the violations in a single name (run, experiment, registered model, alias)."""
        rule = _text_rule(str(name))
        return [] if rule is None else [PhiViolation(field, "name", rule, "")]

    def find_in_columns(self, field: Field, columns: Iterable[Any]) -> list[PhiViolation]:
        """Return the violations in column names (a dataset schema, a model's feature names)."""
        found: list[PhiViolation] = []
        for position, column in enumerate(columns, start=1):
            found += self._find_in_key(field, "column", str(column), position)
        return found

    def find_in_frame(self, field: Field, frame: pd.DataFrame) -> list[PhiViolation]:
        """Return the violations in a table (an input example): columns, then cells.

        Text cells are scanned, date cells break ``full_date``, numbers in an age-named column
        break ``age_over_89`` at 90 or more. One violation per column at most.
        """
        found = self.find_in_columns(field, frame.columns)
        for position, column in enumerate(frame.columns, start=1):
            label = f"column {_label(str(column), position)}"
            series = frame.iloc[:, position - 1]
            rule: GuardRule | None = None
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                rule = GuardRule.FULL_DATE if series.notna().any() else None
            elif pd.api.types.is_bool_dtype(series.dtype):
                rule = None
            elif pd.api.types.is_numeric_dtype(series.dtype):
                if _is_age_key(str(column)) and bool((series >= 90).any()):
                    rule = GuardRule.AGE_OVER_89
            else:
                for cell in series:
                    rule = _value_rule(cell)
                    if rule is not None:
                        break
            if rule is not None:
                found.append(PhiViolation(field, "cell", rule, label))
        return found

    def find_in_tree(self, field: Field, tree: Any) -> list[PhiViolation]:
        """Return the violations in nested JSON-like data (a dataset profile, an example)."""
        found: list[PhiViolation] = []
        self._walk(field, tree, "", (), found)
        return found

    def find_in_text(self, field: Field, where: str, text: str) -> list[PhiViolation]:
        """Return the violation in a document's text (an artifact), with the text rules only.

        Args:
            where: how the document is named in messages (a file name the caller has checked).
        """
        rule = _text_rule(text, _TEXT_RULES)
        return [] if rule is None else [PhiViolation(field, "content", rule, where)]

    # -- raising ---------------------------------------------------------------------------------

    def check_pairs(
        self, field: Field, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> None:
        """Refuse key/value pairs that look like PHI.

        Raises:
            InvalidInput: naming each refused key (or its position) and rule; never a value.
        """
        raise_if_any(self.find_in_pairs(field, pairs))

    def check_metric_names(self, names: Iterable[str]) -> None:
        """Refuse metric names that look like PHI (raises :class:`InvalidInput`)."""
        raise_if_any(self.find_in_metric_names(names))

    def check_name(self, field: Field, name: str) -> None:
        """Refuse a run/experiment/model name or alias that looks like PHI."""
        raise_if_any(self.find_in_name(field, name))

    def check_columns(self, field: Field, columns: Iterable[Any]) -> None:
        """Refuse column names that announce identifiers."""
        raise_if_any(self.find_in_columns(field, columns))

    def check_frame(self, field: Field, frame: pd.DataFrame) -> None:
        """Refuse a table (input example) with PHI-looking columns or cells."""
        raise_if_any(self.find_in_frame(field, frame))

    def check_tree(self, field: Field, tree: Any) -> None:
        """Refuse nested data (a dataset profile) with PHI-looking keys or values."""
        raise_if_any(self.find_in_tree(field, tree))

    def check_text(self, field: Field, where: str, text: str) -> None:
        """Refuse a document whose text holds a high-confidence identifier."""
        raise_if_any(self.find_in_text(field, where, text))

    # -- helpers ---------------------------------------------------------------------------------

    def _find_in_key(self, field: Field, part: Part, key: str, position: int) -> list[PhiViolation]:
        label = _label(key, position)
        rule = _text_rule(key)
        if rule is None and _key_names_identifier(key):
            rule = GuardRule.KEY_NAME
        return [] if rule is None else [PhiViolation(field, part, rule, label)]

    def _walk(
        self,
        field: Field,
        node: Any,
        path: str,
        keys: tuple[str, ...],
        found: list[PhiViolation],
    ) -> None:
        if isinstance(node, Mapping):
            for position, (key, value) in enumerate(node.items(), start=1):
                key = str(key)
                where = f"{path}.{_label(key, position)}" if path else _label(key, position)
                found.extend(
                    PhiViolation(field, "key", v.rule, where)
                    for v in self._find_in_key(field, "key", key, position)
                )
                self._walk(field, value, where, (*keys, key), found)
        elif isinstance(node, list | tuple | set | frozenset):
            for position, item in enumerate(node, start=1):
                self._walk(field, item, f"{path}[{position}]", keys, found)
        elif isinstance(node, pd.DataFrame):
            found.extend(self.find_in_frame(field, node))
        else:
            rule = _value_rule(node)
            if rule is None and _is_age_number(node, keys):
                rule = GuardRule.AGE_OVER_89
            if rule is not None:
                found.append(PhiViolation(field, "value", rule, path))


def _is_age_number(node: Any, keys: tuple[str, ...]) -> bool:
    """Return whether a number ≥ 90 sits under an age key (``age: 93``, ``age: {max: 93}``)."""
    if isinstance(node, bool) or not isinstance(node, int | float | np.number) or not node >= 90:
        return False
    if keys and _is_age_key(keys[-1]):
        return True
    return len(keys) >= 2 and keys[-1].lower() in _AGE_STAT_KEYS and _is_age_key(keys[-2])


def raise_if_any(violations: list[PhiViolation]) -> None:
    """Raise one :class:`InvalidInput` listing every violation (never a value).

    Raises:
        InvalidInput: with ``details["violations"]`` — field, part, rule and place of each.
    """
    if not violations:
        return
    shown = violations[:10]
    more = f" (and {len(violations) - len(shown)} more)" if len(violations) > len(shown) else ""
    lines = "; ".join(v.describe() for v in shown)
    raise InvalidInput(
        f"Refused to write to experiment tracking: {len(violations)} item(s) look like PHI: "
        f"{lines}{more}. Nothing was written. Remove or de-identify these items (the value is "
        "never repeated here); if a key is known to be safe, allow-list it with its format "
        "(docs/tracking.md).",
        details={"violations": [v.to_dict() for v in violations]},
    )
