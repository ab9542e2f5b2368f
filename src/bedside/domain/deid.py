"""HIPAA Safe Harbor de-identification rules as pure functions (REGULATORY.md §1).

The rules every de-identification path shares — FHIR resources (:mod:`bedside.deid.fhir`) and
tables (:mod:`bedside.deid.tables`):

- **ZIP codes** (§1.4): normalise to 5 digits, keep the first 3 unless the prefix is on the
  restricted list (then ``"000"``). The list is configuration (HHS 2000-census 17 prefixes by
  default) and its name and hash go into the audit trail.
- **Ages and birth dates** (§1.3): ages ≥ 90 become the single bucket ``"90+"``; a birth date keeps
  its year only, and loses the year too when it reveals an age ≥ 90.
- **Dates** (§1.3, §1.7): year only (Safe Harbor), or shifted by a keyed per-patient offset in
  ``[-N, -1] ∪ [1, N]`` days — consistent within a patient, so intervals are preserved exactly.
- **Pseudonyms** (§1.7): HMAC-SHA256, hex; the same key and value always give the same pseudonym,
  so joins keep working. A keyed hash of an MRN is *derived from* PHI (§1.6): keys stay inside
  the covered entity.
- **Free text**: :func:`scrub_text` replaces pattern-shaped identifiers and known strings; it is a
  best effort (category R needs a person), so the default policy removes free text instead.

Keys are arguments (bytes); time is an argument (``reference`` / ``as_of``). Nothing here does I/O.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Literal

from bedside.domain.canonical import sha256_hex
from bedside.domain.phi_scan import SCRUB_PATTERNS
from bedside.errors import InvalidInput

__all__ = [
    "AGE_TOP_BUCKET",
    "ALWAYS_REMOVED",
    "HHS_2000_RESTRICTED_ZIP3",
    "MIN_KEY_BYTES",
    "MSFT_SAMPLE_RESTRICTED_ZIP3",
    "ZIP3_LISTS",
    "Action",
    "BirthGeneralisation",
    "Category",
    "DeidPolicy",
    "DeidReport",
    "age_on",
    "check_key",
    "date_shift_offset",
    "earliest_date",
    "generalise_birth_date",
    "key_fingerprint",
    "pseudonym",
    "safe_age",
    "scrub_text",
    "shift_date_text",
    "year_of_date_text",
    "zip3",
]

#: HHS guidance: 3-digit ZIP areas with ≤ 20,000 people in the 2000 Census (REGULATORY §1.4).
HHS_2000_RESTRICTED_ZIP3: Final[tuple[str, ...]] = (
    "036", "059", "063", "102", "203", "556", "692", "790", "821",
    "823", "830", "831", "878", "879", "884", "890", "893",
)  # fmt: skip

#: The 14-prefix list of Microsoft's FHIR anonymizer sample configuration (census vintage unknown).
MSFT_SAMPLE_RESTRICTED_ZIP3: Final[tuple[str, ...]] = (
    "036", "059", "102", "203", "205", "369", "556", "692", "821",
    "823", "878", "879", "884", "893",
)  # fmt: skip

#: Named restricted-prefix lists; the names are the pipeline file's ``zip3_restricted_list``.
ZIP3_LISTS: Final[Mapping[str, tuple[str, ...]]] = {
    "hhs-2000-census": HHS_2000_RESTRICTED_ZIP3,
    "msft-fhir-anonymizer-sample": MSFT_SAMPLE_RESTRICTED_ZIP3,
}

#: The single category that ages ≥ 90 are aggregated into.
AGE_TOP_BUCKET: Final = "90+"
_AGE_CAP: Final = 90

#: Shortest key accepted for pseudonyms and date shifts (the key ring holds 32-byte keys).
MIN_KEY_BYTES: Final = 16

_PSEUDONYM_DOMAIN: Final = b"bedside/pseudonym/v1\x00"
_SHIFT_DOMAIN: Final = b"bedside/date-shift/v1\x00"
_FINGERPRINT_DOMAIN: Final = b"bedside/key-fingerprint/v1"

_ZIP_RE: Final = re.compile(r"\s*(\d{3})(?:\d{2}(?:-?\d{4})?)?\s*")
#: FHIR date / dateTime / instant: YYYY, YYYY-MM, YYYY-MM-DD, then an optional time and zone.
_DATE_RE: Final = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?"
)


_DAY_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE: Final = re.compile(r"T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?")


# --- ZIP codes -------------------------------------------------------------------------------


def zip3(value: str | None, restricted: Iterable[str] = HHS_2000_RESTRICTED_ZIP3) -> str | None:
    """Return the Safe Harbor 3-digit ZIP of ``value``: its prefix, or ``"000"`` if restricted.

    Accepts a 5-digit ZIP, ZIP+4 (``12345-6789`` or ``123456789``) or an already generalised
    3-digit prefix (so a second pass changes nothing). Anything else — empty, foreign, malformed —
    yields ``None``: a value that cannot be generalised is dropped, never kept.

    Args:
        value: the postal code, or None.
        restricted: 3-digit prefixes whose area has ≤ 20,000 people (a frozenset is fastest).
    """
    if value is None:
        return None
    m = _ZIP_RE.fullmatch(value)
    if m is None:
        return None
    prefix = m.group(1)
    restricted_set = restricted if isinstance(restricted, frozenset | set) else set(restricted)
    return "000" if prefix in restricted_set else prefix


# --- ages and birth dates --------------------------------------------------------------------


def safe_age(age: float | None, *, top: Literal["bucket", "cap"] = "bucket") -> float | str | None:
    """Return ``age`` when ≤ 89, else the ``"90+"`` bucket (or 90 with ``top="cap"``).

    Raises:
        InvalidInput: a negative age.
    """
    if age is None:
        return None
    if age < 0:
        raise InvalidInput("An age is negative; ages must be 0 or more (years).")
    if age >= _AGE_CAP:
        return AGE_TOP_BUCKET if top == "bucket" else _AGE_CAP
    return age


def age_on(birth: date, on: date) -> int:
    """Return the age in whole years of someone born on ``birth`` at the date ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass(frozen=True, slots=True)
class BirthGeneralisation:
    """What Safe Harbor keeps of a birth date: the year (None at 90+) and the age or ``"90+"``."""

    birth_year: int | None
    age_bucket: int | str | None


def generalise_birth_date(birth: date | None, *, reference: date) -> BirthGeneralisation:
    """Reduce a birth date to its year and an age at ``reference`` (REGULATORY §1.3).

    A birth year that reveals an age ≥ 90 is dropped too, and the age becomes ``"90+"``.
    """
    if birth is None:
        return BirthGeneralisation(None, None)
    age = age_on(birth, reference)
    if age >= _AGE_CAP:
        return BirthGeneralisation(None, AGE_TOP_BUCKET)
    return BirthGeneralisation(birth.year, age)


def earliest_date(value: str) -> date | None:
    """Return the earliest day a FHIR date (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD…``) may mean.

    Used for ages: the earliest possible birth day gives the largest possible age, so a partial
    birth date is judged conservatively. Returns None when ``value`` is not a FHIR date.
    """
    m = _DATE_RE.fullmatch(value)
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


# --- dates -----------------------------------------------------------------------------------


def check_key(key: bytes) -> bytes:
    """Return ``key`` if it is long enough for HMAC pseudonyms and date shifts.

    Raises:
        InvalidInput: the key is not bytes or shorter than :data:`MIN_KEY_BYTES` (the message
            gives the length, never the key).
    """
    if not isinstance(key, bytes | bytearray):
        raise InvalidInput(
            f"The de-identification key must be bytes, not {type(key).__name__}. "
            "Read it from the project's key ring."
        )
    if len(key) < MIN_KEY_BYTES:
        raise InvalidInput(
            f"The de-identification key is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed "
            "(the key ring's keys are 32 bytes)."
        )
    return bytes(key)


def key_fingerprint(key: bytes) -> str:
    """Return a 16-hex-digit fingerprint naming ``key`` in audit records without revealing it."""
    return hmac.digest(check_key(key), _FINGERPRINT_DOMAIN, "sha256")[:8].hex()


def date_shift_offset(key: bytes, patient_key: str, max_days: int) -> int:
    """Return the keyed day offset of one patient, in ``[-max_days, -1] ∪ [1, max_days]``.

    HMAC-SHA256 of the patient key under ``key``, reduced to an integer. The same key and patient
    always give the same offset; zero is excluded because a zero shift leaves dates unchanged.

    Raises:
        InvalidInput: ``max_days`` < 1, or a bad key.
    """
    if max_days < 1:
        raise InvalidInput(f"The date shift bound is {max_days} days; it must be at least 1.")
    digest = hmac.digest(check_key(key), _SHIFT_DOMAIN + patient_key.encode("utf-8"), "sha256")
    n = int.from_bytes(digest[:8], "big") % (2 * max_days)
    return n - max_days if n < max_days else n - max_days + 1


def shift_date_text(value: str, offset_days: int) -> str | None:
    """Shift a FHIR date/dateTime/instant string by whole days, keeping time of day and zone.

    Adding whole days to the calendar date with the same clock time and UTC offset adds exactly
    ``offset_days × 86,400`` seconds, so every interval between a patient's dates is preserved.
    A partial date (``YYYY`` or ``YYYY-MM``) cannot be shifted to the day: it is reduced to its
    year (always allowed by Safe Harbor). Returns None when ``value`` is not a FHIR date.
    """
    if len(value) < 10 or _DAY_RE.fullmatch(value, 0, 10) is None:
        m = _DATE_RE.fullmatch(value)
        return None if m is None else m.group(1)  # a partial date keeps its year
    if len(value) > 10 and _TIME_RE.fullmatch(value, 10) is None:
        return None
    try:
        shifted = date.fromisoformat(value[:10]) + timedelta(days=offset_days)
    except (ValueError, OverflowError):
        return None
    return shifted.isoformat() + value[10:]


def year_of_date_text(value: str) -> str | None:
    """Return the year (``YYYY``) of a FHIR date/dateTime/instant string, or None if not one."""
    m = _DATE_RE.fullmatch(value)
    return None if m is None else m.group(1)


# --- pseudonyms ------------------------------------------------------------------------------


def pseudonym(key: bytes, value: str, *, namespace: str = "resource") -> str:
    """Return the HMAC-SHA256 pseudonym (64 hex digits) of ``value`` in ``namespace``.

    Resource ids use the ``"resource"`` namespace in every path, so ``Patient/<id>`` references,
    ``Patient.id`` and a table's patient-id column all map to the same pseudonym.
    """
    message = _PSEUDONYM_DOMAIN + namespace.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.digest(key, message, "sha256").hex()


# --- free text -------------------------------------------------------------------------------


def scrub_text(text: str, *, known: Iterable[str] = ()) -> tuple[str, dict[str, int]]:
    """Replace identifier-shaped substrings of ``text`` with tags like ``[SSN]``; count them.

    ``known`` are strings known to identify the person (their names, street, city…); each is
    replaced case-insensitively by ``[REDACTED]``. Patterns cover emails, URLs, IP addresses, SSNs,
    phone numbers, full dates, ZIP codes and long digit runs (record numbers). Names that are not
    known cannot be found by patterns: scrubbed text is not Safe Harbor by itself.

    Returns:
        The scrubbed text and the number of replacements per kind.
    """
    counts: dict[str, int] = {}
    for kind, regex, tag in SCRUB_PATTERNS:
        text, n = regex.subn(tag, text)
        if n:
            counts[kind] = counts.get(kind, 0) + n
    words = sorted({k for k in known if k and len(k.strip()) >= 2}, key=len, reverse=True)
    if words:
        pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
        text, n = pattern.subn("[REDACTED]", text)
        if n:
            counts["known"] = n
    return text, counts


# --- policy ----------------------------------------------------------------------------------


IdentifierPolicy = Literal["remove", "pseudonymise"]
FreeTextPolicy = Literal["remove", "scrub"]


@dataclass(frozen=True, slots=True)
class DeidPolicy:
    """How to de-identify: built from the pipeline file's ``deidentification`` section.

    Attributes:
        date_shift_days: 0 keeps years only (Safe Harbor); N > 0 shifts full dates by a keyed
            per-patient offset within ±N days (a shifted full date is *not* Safe Harbor by the
            rule's text; REGULATORY §1.3 note).
        zip3_list: name of the restricted ZIP3 list (:data:`ZIP3_LISTS`).
        zip3_restricted_extra: further restricted prefixes (e.g. from newer Census data).
        identifiers: ``remove`` identifier values (MRN, visit number…) or ``pseudonymise`` them
            with HMAC; SSNs, licences and passports are always removed.
        free_text: ``remove`` free text (notes, narrative) or ``scrub`` it (tables only; FHIR
            free text is always removed).
        age_over_89: ages ≥ 90 become the string ``"90+"`` (``bucket``) or the number 90 meaning
            "90 or older" (``cap``, keeps a numeric column numeric).
    """

    date_shift_days: int = 0
    zip3_list: str = "hhs-2000-census"
    zip3_restricted_extra: tuple[str, ...] = ()
    identifiers: IdentifierPolicy = "remove"
    free_text: FreeTextPolicy = "remove"
    age_over_89: Literal["bucket", "cap"] = "bucket"
    method: Literal["safe_harbor"] = "safe_harbor"
    pseudonym: Literal["hmac"] = "hmac"
    restricted_zip3: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.date_shift_days, bool) or not 0 <= self.date_shift_days <= 365:
            raise InvalidInput(
                f"deidentification.date_shift_days is {self.date_shift_days!r}; expected an "
                "integer from 0 (years only) to 365."
            )
        if self.zip3_list not in ZIP3_LISTS:
            raise InvalidInput(
                f"deidentification.zip3_restricted_list {self.zip3_list!r} is unknown; expected "
                f"one of {', '.join(sorted(ZIP3_LISTS))}."
            )
        bad = [p for p in self.zip3_restricted_extra if not re.fullmatch(r"\d{3}", p)]
        if bad:
            raise InvalidInput(
                f"deidentification.zip3_restricted_extra has {len(bad)} entries that are not "
                "3-digit prefixes; expected strings like '036'."
            )
        for name, value, allowed in (
            ("identifiers", self.identifiers, ("remove", "pseudonymise")),
            ("free_text", self.free_text, ("remove", "scrub")),
            ("age_over_89", self.age_over_89, ("bucket", "cap")),
        ):
            if value not in allowed:
                raise InvalidInput(
                    f"deidentification.{name} is {value!r}; expected one of {', '.join(allowed)}."
                )
        restricted = frozenset(ZIP3_LISTS[self.zip3_list]) | frozenset(self.zip3_restricted_extra)
        object.__setattr__(self, "restricted_zip3", restricted)

    @classmethod
    def from_spec(cls, spec: Any, **overrides: Any) -> DeidPolicy:
        """Build the policy from a pipeline file's ``Deidentification`` model (plus overrides).

        ``overrides`` sets what the pipeline file does not (yet) say, e.g. ``identifiers``.
        """
        values: dict[str, Any] = {
            "method": spec.method,
            "pseudonym": spec.pseudonym,
            "date_shift_days": spec.date_shift_days,
            "zip3_list": spec.zip3_restricted_list,
            "zip3_restricted_extra": tuple(spec.zip3_restricted_extra),
            "free_text": spec.free_text,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def dates(self) -> Literal["year", "shift"]:
        """Return how dates are treated: ``year`` only, or ``shift``-ed by a keyed offset."""
        return "year" if self.date_shift_days == 0 else "shift"

    @property
    def zip3_list_version(self) -> str:
        """Return the restricted list's name, marked when extra prefixes were added."""
        extra = sorted(set(self.zip3_restricted_extra) - set(ZIP3_LISTS[self.zip3_list]))
        return self.zip3_list + (f"+{len(extra)}-extra" if extra else "")

    @property
    def zip3_list_hash(self) -> str:
        """Return the SHA-256 of the sorted restricted prefixes actually applied."""
        return hashlib.sha256(",".join(sorted(self.restricted_zip3)).encode("ascii")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as plain JSON values (what :attr:`policy_hash` covers)."""
        return {
            "method": self.method,
            "pseudonym": self.pseudonym,
            "date_shift_days": self.date_shift_days,
            "zip3_list": self.zip3_list_version,
            "zip3_restricted": sorted(self.restricted_zip3),
            "identifiers": self.identifiers,
            "free_text": self.free_text,
            "age_over_89": self.age_over_89,
            "rules_version": 1,
        }

    @property
    def policy_hash(self) -> str:
        """Return the SHA-256 of the canonical policy: same rules ↔ same hash."""
        return sha256_hex(self.to_dict())


# --- the report ------------------------------------------------------------------------------


class Category(enum.StrEnum):
    """The 18 Safe Harbor identifier categories, 164.514(b)(2)(i)(A)–(R)."""

    NAMES = "A_names"
    GEOGRAPHY = "B_geography"
    DATES = "C_dates"
    PHONE = "D_phone"
    FAX = "E_fax"
    EMAIL = "F_email"
    SSN = "G_ssn"
    MEDICAL_RECORD = "H_medical_record_numbers"
    HEALTH_PLAN = "I_health_plan_numbers"
    ACCOUNT = "J_account_numbers"
    LICENSE = "K_certificate_license_numbers"
    VEHICLE = "L_vehicle_identifiers"
    DEVICE = "M_device_identifiers"
    URL = "N_urls"
    IP_ADDRESS = "O_ip_addresses"
    BIOMETRIC = "P_biometric_identifiers"
    PHOTO = "Q_photographs"
    OTHER = "R_other_identifying"


#: Identifier categories removed even when a policy pseudonymises identifiers: they have no
#: analytic use, and a keyed hash of them would still be derived from PHI (REGULATORY §1.6).
ALWAYS_REMOVED: Final = frozenset(
    {Category.SSN, Category.HEALTH_PLAN, Category.LICENSE, Category.VEHICLE, Category.BIOMETRIC}
)


class Action(enum.StrEnum):
    """What was done to a value."""

    REMOVED = "removed"
    GENERALISED = "generalised"
    PSEUDONYMISED = "pseudonymised"
    SHIFTED = "shifted"
    SCRUBBED = "scrubbed"


@dataclass(slots=True)
class DeidReport:
    """What a de-identification run did, as counts only (no values), with the policy hash.

    ``actions[(category, action)]`` counts values; ``records`` counts resources by type (or
    rows); ``columns`` says what happened to each table column.
    """

    policy_hash: str
    key_fingerprint: str
    zip3_list: str
    zip3_list_hash: str
    dates: str
    records: dict[str, int] = field(default_factory=dict)
    actions: dict[tuple[Category, Action], int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, policy: DeidPolicy, key: bytes) -> DeidReport:
        """Return an empty report for a run of ``policy`` under ``key``."""
        return cls(
            policy_hash=policy.policy_hash,
            key_fingerprint=key_fingerprint(key),
            zip3_list=policy.zip3_list_version,
            zip3_list_hash=policy.zip3_list_hash,
            dates=policy.dates,
        )

    def count(self, category: Category, action: Action, n: int = 1) -> None:
        """Add ``n`` to the count of ``action`` on ``category``."""
        if n:
            k = (category, action)
            self.actions[k] = self.actions.get(k, 0) + n

    def total(self, category: Category | None = None, action: Action | None = None) -> int:
        """Return the count for a category and/or action (all when None)."""
        return sum(
            n
            for (c, a), n in self.actions.items()
            if (category is None or c == category) and (action is None or a == action)
        )

    def merge(self, other: DeidReport) -> None:
        """Add ``other``'s counts into this report (same policy and key).

        Raises:
            InvalidInput: the reports come from different policies or keys.
        """
        if (other.policy_hash, other.key_fingerprint) != (self.policy_hash, self.key_fingerprint):
            raise InvalidInput("Cannot merge de-identification reports of different policies/keys.")
        for name, n in other.records.items():
            self.records[name] = self.records.get(name, 0) + n
        for k, n in other.actions.items():
            self.actions[k] = self.actions.get(k, 0) + n
        self.columns.update(other.columns)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON values: ``actions`` nested category → action → count."""
        nested: dict[str, dict[str, int]] = {}
        for (category, action), n in sorted(self.actions.items()):
            nested.setdefault(category.value, {})[action.value] = n
        return {
            "policy_hash": self.policy_hash,
            "key_fingerprint": self.key_fingerprint,
            "zip3_list": self.zip3_list,
            "zip3_list_hash": self.zip3_list_hash,
            "dates": self.dates,
            "records": dict(sorted(self.records.items())),
            "actions": nested,
            "columns": dict(self.columns),
        }
