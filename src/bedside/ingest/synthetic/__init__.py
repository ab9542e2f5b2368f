"""Synthetic hospital: a deterministic FHIR R4 Bulk Data export of patients, stays, vitals and labs.

``generate_hospital`` writes Patients (with realistic synthetic PHI), inpatient and emergency
Encounters, vital-sign and lab Observations (LOINC/UCUM), Conditions and sepsis onsets that follow
the physiology, optionally with a drift scenario from a given date. See docs/demo-data.md.
"""

from __future__ import annotations

from bedside.ingest.synthetic.hospital import CHUNK_ADMISSIONS, generate_hospital
from bedside.ingest.synthetic.model import DriftKind, DriftScenario, GenerationSummary

__all__ = [
    "CHUNK_ADMISSIONS",
    "DriftKind",
    "DriftScenario",
    "GenerationSummary",
    "generate_hospital",
]
