"""Scan a table for PHI: column names, value patterns, free text and near-unique columns.

:func:`scan_table` looks at a pandas DataFrame the way a privacy officer would before a dataset
leaves the covered entity (the pipeline's ``check: phi_scan``):

- **column names** that announce an identifier (``patient_name``, ``ssn``, ``dob``, ``phone``…);
- **value patterns** on an evenly spaced sample of rows: SSNs, phone numbers, emails, MRN-like
  ids, full dates, 5-digit ZIP codes, URLs, IP addresses; numeric ages ≥ 90;
- **free-text** columns (long, varied strings with spaces: notes can hold anything);
- **near-unique** columns that act as identifiers (distinct values / non-null values).

A finding is ``(column, rule, severity, share)`` plus the Safe Harbor category it points at —
never a value, so a report can be shown, logged and stored. :attr:`PhiScanReport.blocking` is true
when any finding is high severity and not waived; the pipeline stops when its check says
``blocker: true``. A waiver (column → rules) records an accepted finding, e.g. the near-unique
pseudonymous patient key of a per-patient table; the finding stays in the report, marked waived.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = [
    "SCRUB_PATTERNS",
    "PhiFinding",
    "PhiRule",
    "PhiScanReport",
    "Severity",
    "scan_table",
]


class PhiRule(enum.StrEnum):
    """Why a column was flagged."""

    COLUMN_NAME = "column_name"
    SSN = "ssn"
    PHONE = "phone"
    EMAIL = "email"
    MRN_LIKE = "mrn_like"
    FULL_DATE = "full_date"
    ZIP5 = "zip5"
    URL = "url"
    IP_ADDRESS = "ip_address"
    AGE_OVER_89 = "age_over_89"
    FREE_TEXT = "free_text"
    NEAR_UNIQUE = "near_unique"


class Severity(enum.StrEnum):
    """How sure and how bad: ``high`` blocks, ``medium`` needs a look, ``low`` is informative."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# --- patterns --------------------------------------------------------------------------------

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_URL = r"(?:https?://|ftp://|www\.)[^\s<>\"']+"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)"
_IPV6 = (
    r"(?<![0-9A-Fa-f:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?)(?![0-9A-Fa-f:])"
)
_SSN = r"(?<!\d)(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})(?!\d)"
_PHONE = (
    r"(?<![\d-])(?:(?:\+?1[-. ]?)?(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}"
    r"|\+\d{1,3}[ .-]?\d{1,4}(?:[ .-]\d{2,4}){2,4})(?![\d-])"
)
_DATE = (
    r"(?<!\d)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)"
    r"|(?<![\d/])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:\d{4}|\d{2})(?![\d/])"
    rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
    rf"|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b"
)
_ZIP = r"(?<![\d-])\d{5}(?:-\d{4})?(?![\d-])"
_RECORD_NO = (
    r"\b(?:MRN|MR#|med(?:ical)?\s+rec(?:ord)?(?:\s+(?:no|number))?\.?)[:#\s]*[A-Za-z0-9-]+"
    r"|(?<![\d.])\d{6,}(?![\d.])"
)

#: (kind, regex, tag) used by :func:`bedside.domain.deid.scrub_text`, in order of application.
SCRUB_PATTERNS: Final[tuple[tuple[str, re.Pattern[str], str], ...]] = (
    ("email", re.compile(_EMAIL), "[EMAIL]"),
    ("url", re.compile(_URL, re.IGNORECASE), "[URL]"),
    ("ip_address", re.compile(f"{_IPV4}|{_IPV6}"), "[IP]"),
    ("ssn", re.compile(_SSN), "[SSN]"),
    ("phone", re.compile(_PHONE), "[PHONE]"),
    ("date", re.compile(_DATE, re.IGNORECASE), "[DATE]"),
    ("record_number", re.compile(_RECORD_NO, re.IGNORECASE), "[ID]"),
    ("zip", re.compile(_ZIP), "[ZIP]"),
)

# (rule, Safe Harbor category, pattern, whole value?, high share): a "search" pattern flags any
# value containing it; a "whole value" pattern only values that are nothing but it (ZIPs and
# MRN-like ids are too easily confused with codes inside text). With a high share of None, one
# match is high severity; otherwise a finding is high only when at least that share of the
# sampled non-null values match, and medium below it.
_VALUE_RULES: Final[tuple[tuple[PhiRule, str, re.Pattern[str], bool, float | None], ...]] = (
    (PhiRule.SSN, "G_ssn", re.compile(_SSN), False, None),
    (PhiRule.EMAIL, "F_email", re.compile(_EMAIL), False, None),
    (PhiRule.PHONE, "D_phone", re.compile(_PHONE), False, None),
    (PhiRule.URL, "N_urls", re.compile(_URL, re.IGNORECASE), False, None),
    (PhiRule.IP_ADDRESS, "O_ip_addresses", re.compile(f"{_IPV4}|{_IPV6}"), False, None),
    (PhiRule.FULL_DATE, "C_dates", re.compile(_DATE, re.IGNORECASE), False, None),
    (PhiRule.ZIP5, "B_geography", re.compile(r"\s*\d{5}(?:-?\d{4})?\s*"), True, 0.5),
    (
        PhiRule.MRN_LIKE,
        "H_medical_record_numbers",
        re.compile(r"\s*(?:[A-Za-z]{1,3}[-#]?)?\d{6,12}\s*"),
        True,
        0.5,
    ),
)

# Column-name hints: (normalised-name regex, category, severity). Names are normalised to
# lower-case tokens joined by "_" (camelCase split), and matched on token boundaries. The most
# severe matching hint wins; among equals the first, so specific hints come before general ones
# ("ip_address" before "address", "license_plate" before "license").
_NAME_HINTS: Final[tuple[tuple[re.Pattern[str], str, Severity], ...]] = tuple(
    (re.compile(rf"(?:^|_)(?:{pattern})(?:_|$)"), category, severity)
    for pattern, category, severity in (
        (
            r"(?:first|last|given|family|middle|full|patient|person|maiden|mother|father|sur)_?"
            r"names?|surname|forename",
            "A_names",
            Severity.HIGH,
        ),
        (r"names?", "A_names", Severity.MEDIUM),
        (r"ssn|social_?security(?:_?(?:number|no))?", "G_ssn", Severity.HIGH),
        (
            r"mrn|medical_?record(?:_?(?:number|no))?|chart_?(?:number|no)|record_?number",
            "H_medical_record_numbers",
            Severity.HIGH,
        ),
        (r"dob|date_?of_?birth|birth_?date|birthday|birth_?dt", "C_dates", Severity.HIGH),
        (r"date_?of_?death|death_?date|dod", "C_dates", Severity.HIGH),
        (r"(?:tele)?phone(?:_?(?:number|no))?|tel|mobile|cell_?phone", "D_phone", Severity.HIGH),
        (r"fax(?:_?(?:number|no))?", "E_fax", Severity.HIGH),
        (r"e_?mail(?:_?address)?", "F_email", Severity.HIGH),
        (r"ip_?address|ip_?addr|ipv[46]", "O_ip_addresses", Severity.HIGH),
        (
            r"vin|licen[cs]e_?plate|plate_?(?:number|no)|vehicle(?:_?id)?",
            "L_vehicle_identifiers",
            Severity.HIGH,
        ),
        (
            r"(?:street|home|mailing)?_?address(?:_?line\d?)?|street|addr\d?|address_?\d",
            "B_geography",
            Severity.HIGH,
        ),
        (
            r"city|town|county|precinct|zip|zip_?code|zipcode|postal(?:_?code)?|postcode"
            r"|latitude|longitude|geo_?location",
            "B_geography",
            Severity.HIGH,
        ),
        (r"lat|lon|lng", "B_geography", Severity.MEDIUM),
        (
            r"(?:member|subscriber|beneficiary|policy|insurance|health_?plan)_?(?:id|number|no)"
            r"|health_?plan",
            "I_health_plan_numbers",
            Severity.HIGH,
        ),
        (
            r"account(?:_?(?:number|no|id))?|acct(?:_?(?:number|no))?",
            "J_account_numbers",
            Severity.HIGH,
        ),
        (
            r"passport(?:_?(?:number|no))?|drivers?_?licen[cs]e|licen[cs]e(?:_?(?:number|no))?"
            r"|certificate(?:_?(?:number|no))?",
            "K_certificate_license_numbers",
            Severity.HIGH,
        ),
        (
            r"serial(?:_?(?:number|no))?|udi|device_?(?:id|serial)",
            "M_device_identifiers",
            Severity.HIGH,
        ),
        (r"url|uri|website|web_?page|homepage", "N_urls", Severity.HIGH),
        (r"ip", "O_ip_addresses", Severity.MEDIUM),
        (
            r"finger_?print|voice_?print|biometrics?|retina_?scan|iris_?scan",
            "P_biometric_identifiers",
            Severity.HIGH,
        ),
        (r"photo(?:graph)?s?|face_?image|portrait|headshot", "Q_photographs", Severity.HIGH),
        (
            r"notes?|comments?|narrative|free_?text|remarks?|description",
            "R_other_identifying",
            Severity.MEDIUM,
        ),
        (
            r"(?:patient|person|subject|member|encounter|visit|admission|hadm|stay)_?id|csn"
            r"|fin|empi|guid|uuid|id",
            "R_other_identifying",
            Severity.MEDIUM,
        ),
    )
)
_AGE_NAME: Final = re.compile(r"(?:^|_)age(?:_?(?:years?|yrs?|at_\w+))?(?:_|$)")
_ZIP3_NAME: Final = re.compile(r"(?:^|_)zip_?3(?:_|$)|zip3")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")


def _normalise_name(name: str) -> str:
    return _NON_ALNUM.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


# --- findings and report ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhiFinding:
    """One reason to believe a column holds PHI — never the value that matched.

    Attributes:
        column: the column's name.
        rule: which check fired.
        severity: ``high`` blocks (unless waived).
        share: share of sampled rows that matched; for ``near_unique`` the ratio of distinct to
            non-null values; None for ``column_name``.
        category: the Safe Harbor category the finding points at (``A_names`` … ``R_other…``).
        waived: the caller declared this (column, rule) expected, e.g. a pseudonymous key.
    """

    column: str
    rule: PhiRule
    severity: Severity
    share: float | None
    category: str
    waived: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON values."""
        return {
            "column": self.column,
            "rule": self.rule.value,
            "severity": self.severity.value,
            "share": None if self.share is None else round(self.share, 4),
            "category": self.category,
            "waived": self.waived,
        }


@dataclass(frozen=True, slots=True)
class PhiScanReport:
    """The findings of one scan, with the table's size and how many rows were sampled."""

    findings: tuple[PhiFinding, ...]
    rows: int
    columns: int
    sampled_rows: int

    @property
    def blocking_findings(self) -> tuple[PhiFinding, ...]:
        """Return the high-severity findings that were not waived."""
        return tuple(f for f in self.findings if f.severity is Severity.HIGH and not f.waived)

    @property
    def blocking(self) -> bool:
        """Return whether any finding should stop a ``blocker: true`` pipeline."""
        return bool(self.blocking_findings)

    def summary(self) -> str:
        """Return one line naming the blocking columns and rules, for an error message.

        Example: ``"PHI scan: 2 blocking finding(s): column 'ssn' (ssn, G_ssn, 100% of sampled
        rows); column 'dob' (column_name, C_dates)"``. Never a value.
        """
        if not self.blocking:
            return "PHI scan: no blocking finding."
        parts = []
        for f in self.blocking_findings:
            share = "" if f.share is None else f", {f.share:.0%} of sampled rows"
            if f.rule is PhiRule.NEAR_UNIQUE:
                share = f", {f.share:.0%} distinct"
            parts.append(f"column {f.column!r} ({f.rule.value}, {f.category}{share})")
        return f"PHI scan: {len(parts)} blocking finding(s): " + "; ".join(parts)

    def flagged_columns(self) -> list[str]:
        """Return the columns with at least one finding, in table order of first finding."""
        return list(dict.fromkeys(f.column for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON values."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "sampled_rows": self.sampled_rows,
            "blocking": self.blocking,
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_markdown(self) -> str:
        """Return the report as a Markdown section (column names and rules; never values)."""
        verdict = (
            f"**Blocking**: {len(self.blocking_findings)} high-severity finding(s)."
            if self.blocking
            else "**Not blocking**: no unwaived high-severity finding."
        )
        lines = [
            "## PHI scan",
            "",
            f"{self.rows} rows × {self.columns} columns; values checked on {self.sampled_rows} "
            "sampled rows. " + verdict,
            "",
        ]
        if not self.findings:
            lines.append("No findings.")
            return "\n".join(lines) + "\n"
        lines += [
            "| column | rule | Safe Harbor category | severity | share | waived |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.findings:
            share = "—" if f.share is None else f"{f.share:.1%}"
            column = f.column.replace("|", "\\|")
            lines.append(
                f"| `{column}` | {f.rule.value} | {f.category} | {f.severity.value} | {share} | "
                f"{'yes' if f.waived else 'no'} |"
            )
        return "\n".join(lines) + "\n"


# --- the scan --------------------------------------------------------------------------------


def scan_table(
    table: pd.DataFrame,
    *,
    sample_rows: int = 10_000,
    unique_ratio: float = 0.9,
    min_rows_for_uniqueness: int = 50,
    waivers: Mapping[str, Iterable[PhiRule | str]] | None = None,
) -> PhiScanReport:
    """Scan ``table`` for PHI and return the findings (never values).

    Args:
        table: the dataset to check.
        sample_rows: value patterns are checked on at most this many evenly spaced rows
            (deterministic: the same table always gives the same sample).
        unique_ratio: a text/integer column whose distinct/non-null ratio reaches this acts as an
            identifier (computed on the whole column).
        min_rows_for_uniqueness: below this many non-null values uniqueness is not judged.
        waivers: column → rules expected there (e.g. ``{"patient_key": ["near_unique"]}``);
            matching findings are kept but marked waived and do not block.

    Raises:
        ValueError: a waiver names an unknown rule (the message names the rule).
    """
    waived = {str(column): {PhiRule(r) for r in rules} for column, rules in (waivers or {}).items()}
    n = len(table)
    if n > sample_rows > 0:
        positions = np.unique(np.linspace(0, n - 1, sample_rows).astype(np.int64))
        sample = table.iloc[positions]
    else:
        sample = table
    m = len(sample)
    findings: list[PhiFinding] = []
    for position, column in enumerate(table.columns):
        name = str(column)
        found = _scan_name(name)
        whole = table.iloc[:, position]
        found += _scan_values(name, sample.iloc[:, position], whole, m)
        found += _scan_uniqueness(whole, unique_ratio, min_rows_for_uniqueness)
        rules_waived = waived.get(name, set())
        for rule, category, severity, share in found:
            findings.append(
                PhiFinding(name, rule, severity, share, category, waived=rule in rules_waived)
            )
    return PhiScanReport(tuple(findings), rows=n, columns=table.shape[1], sampled_rows=m)


_Found = list[tuple[PhiRule, str, Severity, float | None]]


def _scan_name(name: str) -> _Found:
    normal = _normalise_name(name)
    if _ZIP3_NAME.search(normal):
        return []  # a 3-digit ZIP is what Safe Harbor keeps; its values are still checked
    first: _Found = []
    for regex, category, severity in _NAME_HINTS:
        if regex.search(normal):
            if severity is Severity.HIGH:
                return [(PhiRule.COLUMN_NAME, category, severity, None)]
            first = first or [(PhiRule.COLUMN_NAME, category, severity, None)]
    return first


def _is_text(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def _scan_values(name: str, sample: pd.Series, whole: pd.Series, m: int) -> _Found:
    if m == 0:
        return []
    dtype = sample.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return []
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _scan_datetimes(sample, m)
    if pd.api.types.is_numeric_dtype(dtype):
        if _AGE_NAME.search(_normalise_name(name)):
            over = int((pd.to_numeric(whole, errors="coerce") >= 90).sum())
            if over:
                return [(PhiRule.AGE_OVER_89, "C_dates", Severity.HIGH, over / max(len(whole), 1))]
        return []
    if not _is_text(sample):
        return []
    values = sample.dropna()
    if values.dtype == object:
        values = values[values.map(lambda v: isinstance(v, str))]
    else:
        values = values.astype(str)
    if values.empty:
        return []
    values = values.astype("string")
    found: _Found = []
    non_null = len(values)
    for rule, category, regex, whole_value, high_share in _VALUE_RULES:
        hits = values.str.fullmatch(regex) if whole_value else values.str.contains(regex)
        k = int(hits.sum())
        if not k:
            continue
        severity = Severity.HIGH
        if high_share is not None and k / non_null < high_share:
            severity = Severity.MEDIUM
        found.append((rule, category, severity, k / m))
    words = values.str.count(r"\s+") + 1
    long_text = int((words >= 5).sum())
    if long_text / m >= 0.2 and values.nunique() / non_null >= 0.5:
        found.append((PhiRule.FREE_TEXT, "R_other_identifying", Severity.HIGH, long_text / m))
    return found


def _scan_datetimes(sample: pd.Series, m: int) -> _Found:
    values = sample.dropna()
    if values.empty:
        return []
    # A value at midnight on 1 January is how a year-only date is stored; anything else is a
    # full date (month and day are PHI under Safe Harbor).
    year_only = (values.dt.month == 1) & (values.dt.day == 1) & (values.dt.hour == 0)
    year_only &= (values.dt.minute == 0) & (values.dt.second == 0)
    k = int((~year_only).sum())
    return [(PhiRule.FULL_DATE, "C_dates", Severity.HIGH, k / m)] if k else []


def _scan_uniqueness(whole: pd.Series, threshold: float, min_rows: int) -> _Found:
    dtype = whole.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        return []  # measurements are naturally distinct; they do not identify by themselves
    if not (_is_text(whole) or pd.api.types.is_integer_dtype(dtype)):
        return []
    non_null = int(whole.notna().sum())
    if non_null < min_rows:
        return []
    try:
        distinct = int(whole.nunique(dropna=True))
    except TypeError:  # unhashable cells (lists, dicts): compare their text
        distinct = int(whole.dropna().astype(str).nunique())
    ratio = distinct / non_null
    if ratio >= threshold:
        return [(PhiRule.NEAR_UNIQUE, "R_other_identifying", Severity.HIGH, ratio)]
    return []
