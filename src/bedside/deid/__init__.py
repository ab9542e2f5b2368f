"""De-identification of FHIR resources and tables (HIPAA Safe Harbor; docs/deidentification.md).

The rules live in :mod:`bedside.domain.deid`; :mod:`bedside.deid.fhir` applies them to FHIR R4
resources (dicts) and :mod:`bedside.deid.tables` to pandas/Arrow tables.
"""

from __future__ import annotations
