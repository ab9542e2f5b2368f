"""Flatten raw FHIR R4 NDJSON into typed tables with Ibis (the same expressions on every engine).

Each ``*_SCHEMA`` lists the fields bedside reads from a resource (everything else in the line is
ignored); :func:`read_resource` reads a type's files with that schema through
:func:`bedside.engines.backends.read_ndjson`, and the ``flatten_*`` functions turn the nested
resources into flat tables:

=============== ==========================================================================
``observations``  one row per value: the Observation's own ``valueQuantity`` and one row per
                  ``component`` (the 85354-9 blood-pressure panel's 8480-6 / 8462-4), with
                  patient id, encounter id, status, effective and issued times (UTC), the
                  first LOINC code and all LOINC codes, value and unit
``encounters``    encounter id, patient id, status, class code (v3-ActCode), period start/end
``patients``      patient id, birth date, gender, US Core birth sex, race and ethnicity
``conditions``    one row per coding: condition id, patient id, encounter id, system, code,
                  onset time, recorded time, verification status
=============== ==========================================================================

Times: FHIR ``dateTime``/``instant`` text is read as a UTC timestamp; partial dates (``2024``,
``2024-03``) mean their first instant; text that is not a time becomes null. References
(``Patient/123``, ``https://host/fhir/Patient/123``, ``urn:uuid:123``) become bare ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

from bedside.domain.features import ETHNICITY_CODES, LOINC_SYSTEM, RACE_CODES
from bedside.engines.backends import read_ndjson, resource_files

__all__ = [
    "CONDITION_SCHEMA",
    "ENCOUNTER_SCHEMA",
    "OBSERVATION_SCHEMA",
    "PATIENT_SCHEMA",
    "SCHEMAS",
    "conditions",
    "encounters",
    "fhir_time",
    "flatten_conditions",
    "flatten_encounters",
    "flatten_observations",
    "flatten_patients",
    "loinc_code",
    "loinc_codes",
    "observation_value_rows",
    "observation_values",
    "observations",
    "patients",
    "read_resource",
    "reference_id",
]

_CODING = "array<struct<system: string, code: string>>"
_QUANTITY = "struct<value: float64, unit: string, system: string, code: string>"
_REF = "struct<reference: string>"

OBSERVATION_SCHEMA: Final = ibis.schema(
    {
        "id": "string",
        "status": "string",
        "subject": _REF,
        "encounter": _REF,
        "effectiveDateTime": "string",
        "effectiveInstant": "string",
        "effectivePeriod": "struct<start: string, end: string>",
        "issued": "string",
        "code": f"struct<coding: {_CODING}>",
        "valueQuantity": _QUANTITY,
        "component": f"array<struct<code: struct<coding: {_CODING}>, valueQuantity: {_QUANTITY}>>",
    }
)
ENCOUNTER_SCHEMA: Final = ibis.schema(
    {
        "id": "string",
        "status": "string",
        "class": "struct<system: string, code: string>",
        "subject": _REF,
        "period": "struct<start: string, end: string>",
    }
)
PATIENT_SCHEMA: Final = ibis.schema(
    {
        "id": "string",
        "gender": "string",
        "birthDate": "string",
        "extension": (
            "array<struct<url: string, valueCode: string, extension: array<struct<url: string, "
            "valueCoding: struct<system: string, code: string>, valueString: string>>>>"
        ),
    }
)
CONDITION_SCHEMA: Final = ibis.schema(
    {
        "id": "string",
        "subject": _REF,
        "encounter": _REF,
        "code": f"struct<coding: {_CODING}>",
        "onsetDateTime": "string",
        "onsetPeriod": "struct<start: string, end: string>",
        "recordedDate": "string",
        "verificationStatus": f"struct<coding: {_CODING}>",
    }
)
SCHEMAS: Final = {
    "Observation": OBSERVATION_SCHEMA,
    "Encounter": ENCOUNTER_SCHEMA,
    "Patient": PATIENT_SCHEMA,
    "Condition": CONDITION_SCHEMA,
}

_RACE_URL: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETHNICITY_URL: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
_BIRTHSEX_URL: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
_UNKNOWN_CODES: Final = ("UNK", "ASKU")
_UTC: Final = ibis.dtype("timestamp('UTC')")


def read_resource(con: BaseBackend, raw_dir: Path | str, resource_type: str) -> ir.Table:
    """Read every NDJSON file of ``resource_type`` in ``raw_dir`` with its bedside schema."""
    return read_ndjson(con, resource_files(raw_dir, resource_type), SCHEMAS[resource_type])


# ------------------------------------------------------------------------------------- helpers


def fhir_time(text: ir.StringValue) -> ir.TimestampValue:
    """Return a FHIR date/dateTime/instant text as a UTC timestamp (null when it is not one).

    ``YYYY`` and ``YYYY-MM`` are padded to their first day, so both engines read them alike.
    """
    length = text.length()
    padded = ibis.cases(
        (length == 4, text.concat("-01-01")),
        (length == 7, text.concat("-01")),
        else_=text,
    )
    return padded.try_cast(_UTC)


def reference_id(reference: ir.StringValue, resource_type: str) -> ir.StringValue:
    """Return the id in a reference to ``resource_type`` (``Patient/123`` → ``123``), else null."""
    prefix = f"{resource_type}/"
    pattern = rf"^(?:[^?#]*/)?{resource_type}/([^/?#]+)(?:/_history/[^/?#]+)?$"
    plain = reference.startswith(prefix) & ~reference.substr(len(prefix)).contains("/")
    return ibis.cases(
        (plain & (reference.length() > len(prefix)), reference.substr(len(prefix))),
        (reference.startswith("urn:uuid:"), reference.substr(len("urn:uuid:")).nullif("")),
        (reference.re_search(pattern), reference.re_extract(pattern, 1)),
        else_=ibis.null("string"),
    )


def _loinc_codes(coding: ir.ArrayValue) -> ir.ArrayValue:
    return coding.filter(lambda c: c.system == LOINC_SYSTEM).map(lambda c: c.code)


def _first_loinc(codes: ir.ArrayValue) -> ir.StringValue:
    # ``codes[0]`` would raise on an empty array under Spark's ANSI mode; a guarded index does not
    return ibis.ifelse(codes.length() > 0, codes[0], ibis.null("string"))


def _unit(quantity: ir.StructValue) -> ir.StringValue:
    return quantity.code.coalesce(quantity.unit)


# ------------------------------------------------------------------------------------ flatteners


def _value_part(coding: ir.ArrayValue, quantity: ir.StructValue) -> ir.StructValue:
    return ibis.struct({"coding": coding, "value": quantity.value, "unit": _unit(quantity)})


def observation_values(raw: ir.Table) -> ir.Table:
    """Return one row per Observation value and per component value, codings still nested.

    Columns: ``observation_id, patient_id, encounter_id, status, effective_time, issued_time,
    coding, value, unit``. :func:`flatten_observations` adds the LOINC codes; the feature engine
    uses this form to read LOINC codes cheaply (:func:`loinc_code`).

    The Observation's own value and its components are gathered into one array and unnested, so
    every engine reads each file once.
    """
    own = ibis.array([_value_part(raw.code.coding, raw.valueQuantity)])
    components = raw.component.map(lambda c: _value_part(c.code.coding, c.valueQuantity))
    parts = ibis.ifelse(raw.component.isnull(), own, own.concat(components))
    rows = raw.select(
        observation_id=raw.id,
        patient_id=reference_id(raw.subject.reference, "Patient"),
        encounter_id=reference_id(raw.encounter.reference, "Encounter"),
        status=raw.status,
        effective_time=fhir_time(
            raw.effectiveDateTime.coalesce(
                raw.effectiveInstant, raw.effectivePeriod.end, raw.effectivePeriod.start
            )
        ),
        issued_time=fhir_time(raw.issued),
        part=parts.unnest(),
    )
    return rows.select(
        "observation_id",
        "patient_id",
        "encounter_id",
        "status",
        "effective_time",
        "issued_time",
        coding=rows.part.coding,
        value=rows.part.value.cast("float64"),
        unit=rows.part.unit,
    )


def loinc_code(coding: ir.ArrayValue) -> ir.StringValue:
    """Return the first LOINC code of a coding array (null when it has none).

    A single coding — the common case — is read directly; only longer arrays are filtered.
    """
    single = coding.length() == 1
    # ``coding[0]`` is evaluated only when the array has one element (Spark's ANSI mode raises
    # on an index out of range)
    return ibis.cases(
        (single & (coding[0].system == LOINC_SYSTEM), coding[0].code),
        (single, ibis.null("string")),
        else_=_first_loinc(_loinc_codes(coding)),
    )


def loinc_codes(coding: ir.ArrayValue) -> ir.ArrayValue:
    """Return every LOINC code of a coding array, in order."""
    return _loinc_codes(coding)


def flatten_observations(raw: ir.Table) -> ir.Table:
    """Return one row per Observation value and per component value (see the module docstring).

    Columns: ``observation_id, patient_id, encounter_id, status, effective_time, issued_time,
    loinc, loinc_codes, value, unit``. ``effective_time`` is ``effectiveDateTime``, else
    ``effectiveInstant``, else the end (or start) of ``effectivePeriod``. Rows keep a null value
    when the Observation has none (``dataAbsentReason``, or a panel's own row). ``loinc`` is the
    first coding with system ``http://loinc.org``; ``loinc_codes`` all of them.
    """
    values = observation_values(raw)
    return values.select(
        "observation_id",
        "patient_id",
        "encounter_id",
        "status",
        "effective_time",
        "issued_time",
        loinc=loinc_code(values.coding),
        loinc_codes=loinc_codes(values.coding),
        value="value",
        unit="unit",
    )


def flatten_encounters(raw: ir.Table) -> ir.Table:
    """Return ``encounter_id, patient_id, status, class_code, start_time, end_time``."""
    return raw.select(
        encounter_id=raw.id,
        patient_id=reference_id(raw.subject.reference, "Patient"),
        status=raw.status,
        class_code=raw["class"].code,
        start_time=fhir_time(raw.period.start),
        end_time=fhir_time(raw.period.end),
    )


def _omb_category(codes: ir.Table, key: str, *, known: dict[str, str], multiple: str) -> ir.Table:
    """Aggregate ``(patient_id, code)`` rows into one OMB category label per patient."""
    code = codes.code
    is_known = code.isin(list(known))
    stats = codes.group_by("patient_id").aggregate(
        n_known=code.nunique(where=is_known),
        first_known=code.min(where=is_known),
        n_unknown=code.count(where=code.isin(list(_UNKNOWN_CODES))),
    )
    name = stats.first_known.substitute(known, else_=ibis.null("string"))
    label = ibis.cases(
        (stats.n_known > 1, ibis.literal(multiple)),
        (stats.n_known == 1, name),
        (stats.n_unknown > 0, ibis.literal("Unknown")),
        else_=ibis.null("string"),
    )
    return stats.select("patient_id", **{key: label})


def flatten_patients(raw: ir.Table, *, extensions: bool = True) -> ir.Table:
    """Return ``patient_id, birth_date, gender, birth_sex, race, ethnicity``.

    ``race``/``ethnicity`` are the OMB category names from the US Core extensions' ``ombCategory``
    codes: one category → its name; several → ``Multiple`` (race) / ``Unknown`` (ethnicity);
    only ``UNK``/``ASKU`` → ``Unknown``; no extension → null. ``birth_sex`` is the US Core
    birth-sex code (``F``, ``M``, ``UNK`` …). With ``extensions=False`` those three columns are
    null and the extensions are not read (cheaper when no feature needs them).
    """
    birth = raw.birthDate
    length = birth.length()
    padded = ibis.cases(
        (length == 4, birth.concat("-01-01")),
        (length == 7, birth.concat("-01")),
        else_=birth.substr(0, 10),
    )
    people = raw.select(
        patient_id=raw.id,
        birth_date=padded.try_cast("date"),
        gender=raw.gender,
    )
    if not extensions:
        nothing = ibis.null("string")
        return people.mutate(birth_sex=nothing, race=nothing, ethnicity=nothing)
    ext = raw.select(patient_id=raw.id, e=raw.extension.unnest())
    birth_sex = (
        ext.filter(ext.e.url == _BIRTHSEX_URL)
        .group_by("patient_id")
        .aggregate(birth_sex=ext.e.valueCode.min())
    )
    nested = ext.filter(ext.e.url.isin([_RACE_URL, _ETHNICITY_URL]))
    nested = nested.select("patient_id", url=nested.e.url, part=nested.e.extension.unnest())
    omb = nested.filter(nested.part.url == "ombCategory").select(
        "patient_id", "url", code=nested.part.valueCoding.code
    )
    race = _omb_category(
        omb.filter(omb.url == _RACE_URL), "race", known=dict(RACE_CODES), multiple="Multiple"
    )
    ethnicity = _omb_category(
        omb.filter(omb.url == _ETHNICITY_URL),
        "ethnicity",
        known=dict(ETHNICITY_CODES),
        multiple="Unknown",
    )
    joined = (
        people.left_join(birth_sex, "patient_id")
        .left_join(race, "patient_id")
        .left_join(ethnicity, "patient_id")
    )
    return joined.select("patient_id", "birth_date", "gender", "birth_sex", "race", "ethnicity")


def flatten_conditions(raw: ir.Table) -> ir.Table:
    """Return one row per Condition coding.

    Columns: ``condition_id, patient_id, encounter_id, system, code, onset_time, recorded_time,
    verification_status``. ``onset_time`` is ``onsetDateTime``, else ``onsetPeriod.start``.
    """
    base = raw.select(
        condition_id=raw.id,
        patient_id=reference_id(raw.subject.reference, "Patient"),
        encounter_id=reference_id(raw.encounter.reference, "Encounter"),
        coding=raw.code.coding.unnest(),
        onset_time=fhir_time(raw.onsetDateTime.coalesce(raw.onsetPeriod.start)),
        recorded_time=fhir_time(raw.recordedDate),
        verification=raw.verificationStatus.coding.map(lambda c: c.code),
    )
    return base.select(
        "condition_id",
        "patient_id",
        "encounter_id",
        system=base.coding.system,
        code=base.coding.code,
        onset_time="onset_time",
        recorded_time="recorded_time",
        verification_status=_first_code(base.verification),
    )


def _first_code(codes: ir.ArrayValue) -> ir.StringValue:
    return ibis.ifelse(codes.notnull() & (codes.length() > 0), codes[0], ibis.null("string"))


# ----------------------------------------------------------------------------- read + flatten


def observation_value_rows(con: BaseBackend, raw_dir: Path | str) -> ir.Table:
    """Return :func:`observation_values` of the Observations in ``raw_dir``."""
    return observation_values(read_resource(con, raw_dir, "Observation"))


def observations(con: BaseBackend, raw_dir: Path | str) -> ir.Table:
    """Return the flat ``observations`` table of the Observations in ``raw_dir``."""
    return flatten_observations(read_resource(con, raw_dir, "Observation"))


def encounters(con: BaseBackend, raw_dir: Path | str) -> ir.Table:
    """Return the flat ``encounters`` table of the Encounters in ``raw_dir``."""
    return flatten_encounters(read_resource(con, raw_dir, "Encounter"))


def patients(con: BaseBackend, raw_dir: Path | str, *, extensions: bool = True) -> ir.Table:
    """Return the flat ``patients`` table of the Patients in ``raw_dir``."""
    return flatten_patients(read_resource(con, raw_dir, "Patient"), extensions=extensions)


def conditions(con: BaseBackend, raw_dir: Path | str) -> ir.Table:
    """Return the flat ``conditions`` table of the Conditions in ``raw_dir``."""
    return flatten_conditions(read_resource(con, raw_dir, "Condition"))
