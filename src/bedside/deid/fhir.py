"""De-identify FHIR R4 resources (as dicts) under a Safe Harbor policy.

Every resource is rebuilt field by field; nothing is copied unless a rule says it may stay:

- **ids and references** become HMAC pseudonyms: ``Patient.id`` and every ``Patient/<id>``
  reference (relative, absolute, ``urn:uuid:``, conditional ``?identifier=``) map to the same
  pseudonym, so resources still join across files; ``display`` text on references is removed;
- **names, telecom, contacts (relatives), photos, attachments, narrative** (``text.div``),
  **notes and other free text** are removed;
- **addresses** keep state, country and the 3-digit ZIP (``000`` when restricted); street lines,
  city, district and the geolocation extension are removed;
- **identifiers** are removed, or pseudonymised when the policy says so (SSNs, driver's licences,
  passports and health-plan numbers are always removed);
- **birthDate** keeps its year, and is removed when the patient is 90 or older at ``as_of``;
- **other dates** keep their year, or are shifted by the patient's keyed offset (time of day and
  zone kept, so intervals are exact); instants cannot hold a year alone and are removed in year
  mode;
- **extensions** are kept only when known to be safe (US Core race, ethnicity, birth sex, gender
  identity); mothers' maiden names, birth places and every unknown extension are removed;
- a string under a field this module does not know is removed (fail closed) and counted, so the
  report shows what was lost. Codings (system, code, display) and quantities stay.

The lists of what may stay live in :mod:`bedside.deid.fhir_rules`.

:class:`FhirDeidentifier` keeps a :class:`~bedside.domain.deid.DeidReport` of counts per Safe
Harbor category. The input is never modified.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from typing import Any

from bedside.deid.fhir_rules import (
    CONDITIONAL_REFERENCE,
    DATE_FIELDS,
    DATE_SUFFIXES,
    INSTANT_FIELDS,
    LITERAL_REFERENCE,
    NUMBER_TYPES,
    PHI_EXTENSIONS,
    PLAIN_KEYS,
    RESOURCE_TYPE,
    SAFE_EXTENSIONS,
    SAFE_STRING_FIELDS,
    TELECOM_CATEGORIES,
    URN_UUID,
    as_json,
    copy_json,
    identifier_category,
    is_plain,
    scope_of,
)
from bedside.domain.deid import (
    ALWAYS_REMOVED,
    Action,
    Category,
    DeidPolicy,
    DeidReport,
    age_on,
    check_key,
    date_shift_offset,
    earliest_date,
    pseudonym,
    shift_date_text,
    zip3,
)
from bedside.errors import InvalidInput

__all__ = ["FhirDeidentifier", "deidentify_resources"]

logger = logging.getLogger(__name__)

C = Category
A = Action

_Handler = Callable[[str, Any, dict[str, Any], dict[str, Any]], None]


class FhirDeidentifier:
    """De-identify FHIR R4 resources one at a time, consistently across resource types.

    Args:
        policy: the de-identification policy.
        key: the secret key (bytes, ≥ 16) for pseudonyms and date shifts; from the key ring.
        as_of: the date ages are computed at (the release date of the dataset).

    Attributes:
        report: counts of what was done so far (no values).
    """

    def __init__(self, policy: DeidPolicy, *, key: bytes, as_of: date) -> None:
        self.policy = policy
        self.as_of = as_of
        self._key = check_key(key)
        self.report = DeidReport.start(policy, self._key)
        self._restricted = policy.restricted_zip3
        self._shift_days = policy.date_shift_days
        self._current: Mapping[str, Any] = {}  # the resource being de-identified
        self._offset: int | None = None
        self._offsets: dict[str, int] = {}
        self._ids: dict[str, str] = {}
        self._identifiers: dict[str, str] = {}
        self._refs: dict[str, str | None] = {}
        self._types: set[str] = set()
        self._counts: dict[tuple[Category, Action], int] = self.report.actions
        self._dispatch: dict[str, _Handler] = {
            "resourceType": self._keep,
            "id": self._drop_silently,  # element ids; resource ids are handled first
            "text": self._text,
            "div": self._drop_free_text,
            "display": self._display,
            "reference": self._reference,
            "fullUrl": self._reference,
            "identifier": self._identifier,
            "name": self._name,
            "telecom": self._telecom,
            "address": self._address,
            "contact": self._contact,
            "photo": self._photo,
            "extension": self._extension,
            "modifierExtension": self._extension,
            "note": self._drop_free_text,
            "valueString": self._drop_free_text,
            "valueMarkdown": self._drop_free_text,
            "valueAttachment": self._drop_attachment,
            "presentedForm": self._drop_attachment,
            "content": self._drop_attachment,
            "attachment": self._drop_attachment,
            "data": self._drop_attachment,
            "url": self._url,
            "position": self._position,
            "birthDate": self._birth_date,
            "meta": self._meta,
            "contained": self._contained,
            "resource": self._nested_resource,
            "coding": self._coding,
        }
        for name in DATE_FIELDS:
            self._dispatch[name] = self._date
        for name in INSTANT_FIELDS:
            self._dispatch[name] = self._instant

    # --- public ------------------------------------------------------------------------------

    def deidentify(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Return a de-identified copy of one resource (the input is left unchanged).

        Raises:
            InvalidInput: ``resource`` is not a JSON object with a ``resourceType``.
        """
        rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if type(rtype) is not str or rtype not in self._types:
            if type(rtype) is not str or RESOURCE_TYPE.fullmatch(rtype) is None:
                raise InvalidInput(
                    "A FHIR resource must be a JSON object whose 'resourceType' is a resource "
                    f"type name such as 'Patient'; got a {type(resource).__name__} without one. "
                    "Check the input file."
                )
            self._types.add(rtype)
        records = self.report.records
        records[rtype] = records.get(rtype, 0) + 1
        self._current = resource
        self._offset = None
        return self._resource(resource, local=False)

    def deidentify_many(self, resources: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Yield de-identified copies of ``resources`` in order."""
        for resource in resources:
            yield self.deidentify(resource)

    def pseudonymise_id(self, resource_id: str) -> str:
        """Return the pseudonym of a resource id (as in ``Patient/<pseudonym>``)."""
        cached = self._ids.get(resource_id)
        if cached is None:
            if len(self._ids) >= 1_000_000:
                self._ids.clear()
            cached = self._ids[resource_id] = pseudonym(self._key, resource_id)
        return cached

    # --- traversal ---------------------------------------------------------------------------

    def _resource(self, resource: Mapping[str, Any], *, local: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"resourceType": resource["resourceType"]}
        rid = resource.get("id")
        if isinstance(rid, str):
            if local:  # a contained resource's id is local ("#id"), not an identifier
                out["id"] = rid
            else:  # resource ids are unique: hashed directly, not cached like references
                out["id"] = pseudonym(self._key, rid)
                self._count(C.OTHER, A.PSEUDONYMISED)
        self._fields(resource, out)
        return out

    def _fields(self, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        dispatch = self._dispatch
        for k, v in obj.items():
            handler = dispatch.get(k)
            if handler is not None:
                handler(k, v, obj, out)  # type: ignore[arg-type]
                continue
            t = type(v)
            if t is dict:
                if PLAIN_KEYS.issuperset(v) and is_plain(v):
                    out[k] = v.copy()
                    continue
                sub: dict[str, Any] = {}
                self._fields(v, sub)
                if sub:
                    out[k] = sub
            elif t is list:
                items = self._list(k, v)
                if items:
                    out[k] = items
            elif t is str:
                if k in SAFE_STRING_FIELDS:
                    out[k] = v
                elif k.endswith(DATE_SUFFIXES):
                    self._date(k, v, obj, out)
                elif k.endswith("Instant"):
                    self._instant(k, v, obj, out)
                else:
                    self._count(C.OTHER, A.REMOVED)
            elif t in NUMBER_TYPES or v is None:
                out[k] = v
            else:  # not a JSON type from a parser: convert it, or drop what cannot be
                converted = as_json(v)
                if converted is None:
                    self._count(C.OTHER, A.REMOVED)
                else:
                    self._fields({k: converted}, out)

    def _list(self, k: str, items: list[Any]) -> list[Any]:
        result: list[Any] = []
        for item in items:
            t = type(item)
            if t is dict:
                if PLAIN_KEYS.issuperset(item) and is_plain(item):
                    result.append(item.copy())
                    continue
                sub: dict[str, Any] = {}
                self._fields(item, sub)
                if sub:
                    result.append(sub)
            elif t is str:
                if k in SAFE_STRING_FIELDS:
                    result.append(item)
                else:
                    self._count(C.OTHER, A.REMOVED)
            elif t is list:
                nested = self._list(k, item)
                if nested:
                    result.append(nested)
            elif t in NUMBER_TYPES or item is None:
                result.append(item)
            else:
                converted = as_json(item)
                if converted is None:
                    self._count(C.OTHER, A.REMOVED)
                else:
                    result.extend(self._list(k, [converted]))
        return result

    def _count(self, category: Category, action: Action, n: int = 1) -> None:
        k = (category, action)
        self._counts[k] = self._counts.get(k, 0) + n

    # --- handlers: (key, value, source object, output object) ---------------------------------

    def _keep(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        out[k] = v

    def _drop_silently(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        return None

    def _drop_free_text(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.OTHER, A.REMOVED, len(v) if type(v) is list else 1)

    def _drop_attachment(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.OTHER, A.REMOVED, len(v) if type(v) is list else 1)

    def _photo(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.PHOTO, A.REMOVED, len(v) if type(v) is list else 1)

    def _name(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.NAMES, A.REMOVED, len(v) if type(v) is list else 1)

    def _contact(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        # Patient.contact holds relatives, whose identifiers Safe Harbor removes too.
        self._count(C.NAMES, A.REMOVED, len(v) if type(v) is list else 1)

    def _position(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.GEOGRAPHY, A.REMOVED)

    def _url(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        self._count(C.URL, A.REMOVED)

    def _telecom(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        for point in v if type(v) is list else [v]:
            system = point.get("system") if isinstance(point, dict) else None
            self._count(TELECOM_CATEGORIES.get(system, C.OTHER), A.REMOVED)  # type: ignore[arg-type]

    def _text(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        # CodeableConcept.text may stay when it only repeats a coding's display; anything else
        # named "text" (narrative, annotation, dosage text…) is free text.
        if type(v) is str:
            codings = obj.get("coding")
            if type(codings) is list:
                for coding in codings:
                    if type(coding) is dict and coding.get("display") == v:
                        out[k] = v
                        return
        self._count(C.OTHER, A.REMOVED)

    def _coding(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        # The commonest element of all: a list of plain Codings, copied without the generic walk.
        if type(v) is not list:
            v = as_json(v)
            if type(v) is not list:  # FHIR requires a list here
                self._count(C.OTHER, A.REMOVED)
                return
        codings = []
        for c in v:
            if type(c) is dict and PLAIN_KEYS.issuperset(c) and is_plain(c):
                codings.append(c.copy())
            else:
                codings.extend(self._list(k, [c]))
        if codings:
            out[k] = codings

    def _display(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        # Coding.display is the code system's term; a Reference's display names a person or place.
        if "code" in obj and type(v) is str:
            out[k] = v
        else:
            self._count(C.NAMES, A.REMOVED)

    def _reference(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        if type(v) is not str:
            self._count(C.OTHER, A.REMOVED)
            return
        refs = self._refs
        if v in refs:
            new = refs[v]
        else:
            if len(refs) >= 1_000_000:
                refs.clear()
            new = refs[v] = self._pseudonymise_reference(v)
        if new is None:
            self._count(C.OTHER, A.REMOVED)
        else:
            out[k] = new
            if new is not v:
                self._count(C.OTHER, A.PSEUDONYMISED)

    def _pseudonymise_reference(self, ref: str) -> str | None:
        if ref.startswith("#"):
            return ref  # a contained resource: local to this resource
        if ref.startswith(URN_UUID):
            return URN_UUID + str(uuid.UUID(hex=self.pseudonymise_id(ref[9:])[:32]))
        m = LITERAL_REFERENCE.fullmatch(ref)
        if m is not None:
            return f"{m.group(1)}/{self.pseudonymise_id(m.group(2))}"
        m = CONDITIONAL_REFERENCE.fullmatch(ref)
        if m is not None:
            rtype, system, value = m.groups()
            return f"{rtype}?identifier={system}|{self._identifier_pseudonym(system, value)}"
        return None

    def _identifier_pseudonym(self, system: str, value: str) -> str:
        text = f"{system}|{value}"
        cached = self._identifiers.get(text)
        if cached is None:
            if len(self._identifiers) >= 1_000_000:
                self._identifiers.clear()
            cached = self._identifiers[text] = pseudonym(self._key, text, namespace="identifier")
        return cached

    def _identifier(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        single = type(v) is dict
        kept: list[dict[str, Any]] = []
        pseudonymise = self.policy.identifiers == "pseudonymise"
        for ident in [v] if single else v if type(v) is list else []:
            if type(ident) is not dict:
                self._count(C.OTHER, A.REMOVED)
                continue
            category = identifier_category(ident)
            value = ident.get("value")
            if not pseudonymise or category in ALWAYS_REMOVED or type(value) is not str:
                self._count(category, A.REMOVED)
                continue
            system = ident.get("system") if type(ident.get("system")) is str else ""
            new: dict[str, Any] = {}
            if type(ident.get("use")) is str:
                new["use"] = ident["use"]
            if type(ident.get("type")) is dict:
                concept: dict[str, Any] = {}
                self._fields(ident["type"], concept)
                if concept:
                    new["type"] = concept
            if system:
                new["system"] = system
            new["value"] = self._identifier_pseudonym(system, value)  # type: ignore[arg-type]
            self._count(category, A.PSEUDONYMISED)
            kept.append(new)
        if kept:
            out[k] = kept[0] if single else kept

    def _address(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        single = type(v) is dict
        kept: list[dict[str, Any]] = []
        for address in [v] if single else v if type(v) is list else []:
            if type(address) is not dict:
                self._count(C.GEOGRAPHY, A.REMOVED)
                continue
            new: dict[str, Any] = {}
            for part, value in address.items():
                if part in ("use", "type", "state", "country") and type(value) is str:
                    new[part] = value
                elif part == "postalCode" and type(value) is str:
                    z3 = zip3(value, self._restricted)
                    if z3 is None:
                        self._count(C.GEOGRAPHY, A.REMOVED)
                    else:
                        new[part] = z3
                        self._count(C.GEOGRAPHY, A.GENERALISED)
                elif part == "period" and type(value) is dict:
                    period: dict[str, Any] = {}
                    self._fields(value, period)
                    if period:
                        new[part] = period
                else:  # line, city, district, text, geolocation extension…
                    self._count(C.GEOGRAPHY, A.REMOVED, len(value) if type(value) is list else 1)
            if new:
                kept.append(new)
        if kept:
            out[k] = kept[0] if single else kept

    def _extension(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        kept = []
        for ext in v if type(v) is list else [v]:
            url = ext.get("url") if type(ext) is dict else None
            if url in SAFE_EXTENSIONS:
                kept.append(copy_json(ext))
            else:
                self._count(PHI_EXTENSIONS.get(url, C.OTHER), A.REMOVED)  # type: ignore[arg-type]
        if kept:
            out[k] = kept

    def _meta(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        if type(v) is not dict:
            return
        meta: dict[str, Any] = {}
        for part, value in v.items():
            if part == "profile" and type(value) is list:
                meta[part] = [p for p in value if type(p) is str]
            elif part in ("tag", "security") and type(value) is list:
                items = self._list(part, value)
                if items:
                    meta[part] = items
            elif part == "lastUpdated":
                self._instant(part, value, v, meta)
            # versionId and source (a system URI) are dropped: they can point back to the record
        if meta:
            out[k] = meta

    def _contained(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        items = [
            self._resource(r, local=True)
            for r in (v if type(v) is list else [])
            if type(r) is dict and RESOURCE_TYPE.fullmatch(str(r.get("resourceType")))
        ]
        if items:
            out[k] = items

    def _nested_resource(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        # Bundle.entry.resource: a full resource with its own patient scope.
        if type(v) is dict and RESOURCE_TYPE.fullmatch(str(v.get("resourceType"))):
            saved = self._current, self._offset
            self._current, self._offset = v, None
            out[k] = self._resource(v, local=False)
            self._current, self._offset = saved

    # --- dates -------------------------------------------------------------------------------

    def _birth_date(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        earliest = earliest_date(v) if type(v) is str else None
        if earliest is None or age_on(earliest, self.as_of) >= 90:
            # Unreadable, or a birth year revealing an age of 90 or more: drop the year too.
            self._count(C.DATES, A.REMOVED)
            return
        out[k] = v[:4]
        self._count(C.DATES, A.GENERALISED)

    def _date(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        if type(v) is not str:
            if type(v) in (int, float):  # e.g. Sequence start/end positions: not dates
                out[k] = v
            return
        if self._shift_days:
            new = shift_date_text(v, self._patient_offset())
            action = A.SHIFTED if new is not None and len(new) > 4 else A.GENERALISED
        else:
            # Only the 4-digit year is written, so a cheap check is enough: whatever follows
            # the year is never copied.
            year = v[:4]
            new = year if year.isascii() and year.isdigit() and v[4:5] in ("", "-") else None
            action = A.GENERALISED
        if new is None:
            self._count(C.DATES, A.REMOVED)
        else:
            out[k] = new
            self._count(C.DATES, action)

    def _instant(self, k: str, v: Any, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
        new = None
        if type(v) is str and self._shift_days:
            new = shift_date_text(v, self._patient_offset())
        if new is None or len(new) <= 4:
            self._count(C.DATES, A.REMOVED)  # a year alone is not a valid instant
        else:
            out[k] = new
            self._count(C.DATES, A.SHIFTED)

    def _patient_offset(self) -> int:
        if self._offset is None:
            scope = scope_of(self._current)  # only computed when a date is shifted
            offset = self._offsets.get(scope)
            if offset is None:
                if len(self._offsets) >= 1_000_000:
                    self._offsets.clear()
                offset = self._offsets[scope] = date_shift_offset(
                    self._key, scope, self._shift_days
                )
            self._offset = offset
        return self._offset


def deidentify_resources(
    resources: Iterable[Mapping[str, Any]], policy: DeidPolicy, *, key: bytes, as_of: date
) -> tuple[list[dict[str, Any]], DeidReport]:
    """De-identify ``resources`` with one de-identifier; return them and the report."""
    deidentifier = FhirDeidentifier(policy, key=key, as_of=as_of)
    out = list(deidentifier.deidentify_many(resources))
    logger.info("de-identified %d FHIR resources", len(out))
    return out, deidentifier.report
