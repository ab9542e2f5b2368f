"""NDJSON / bulk-folder ingest: every line accounted for, bad lines quarantined, no value leaks."""

from __future__ import annotations

import base64
import fcntl
import gzip
import json
import logging
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.errors import Conflict, IntegrityError, InvalidInput, NotFound
from bedside.ingest.ndjson import (
    FileReport,
    IngestReport,
    ReasonCode,
    check_resource,
    ingest_ndjson,
)
from bedside.ingest.ndjson.rules import is_fhir_date, is_fhir_datetime, is_fhir_instant

SYNTHEA = Path(__file__).resolve().parents[1] / "data" / "synthea-10-patients"
CANARY = "ZQXJ-CANARY-7731"  # a string no check, field name or message could contain by chance


# ---- fixtures and builders -----------------------------------------------------------------------


def obs(i: int, **changes: Any) -> dict[str, Any]:
    """Return a valid heart-rate Observation; ``changes`` set keys (value None removes the key)."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{i}",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/p{i % 7}"},
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 60 + i % 50, "unit": "/min", "code": "/min"},
    }
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def line(resource: object) -> bytes:
    return orjson.dumps(resource)


def note(text: str) -> list[dict[str, str]]:
    return [{"text": text}]


# line kind -> (bytes of the line, expected outcome: "accepted" | "blank" | a ReasonCode)
TRUNCATED = line({"note": note(CANARY), **obs(1)})[:80]
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "truncated_json": (TRUNCATED, ReasonCode.INVALID_JSON),
    "not_an_object": (line([CANARY, 1]), ReasonCode.NOT_AN_OBJECT),
    "missing_resource_type": (
        line(obs(2, resourceType=None, note=note(CANARY))),
        ReasonCode.MISSING_RESOURCE_TYPE,
    ),
    "unknown_resource_type": (
        line(obs(3, resourceType=f"{CANARY}Type")),
        ReasonCode.UNKNOWN_RESOURCE_TYPE,
    ),
    "wrong_type_for_file": (
        line({"resourceType": "Patient", "id": "p1", "name": [{"family": CANARY}]}),
        ReasonCode.RESOURCE_TYPE_MISMATCH,
    ),
    "missing_id": (line(obs(4, id=None, note=note(CANARY))), ReasonCode.MISSING_ID),
    "invalid_id": (line(obs(5, id=f"{CANARY} with spaces")), ReasonCode.INVALID_ID),
    "observation_without_subject": (
        line(obs(6, subject=None, note=note(CANARY))),
        ReasonCode.MISSING_FIELD,
    ),
    "non_numeric_value": (
        line(obs(7, valueQuantity={"value": CANARY, "unit": "/min"})),
        ReasonCode.WRONG_TYPE,
    ),
    "bad_date": (line(obs(8, effectiveDateTime=CANARY)), ReasonCode.INVALID_DATE),
    "impossible_day": (
        line(obs(9, effectiveDateTime="2023-02-30T10:00:00Z", note=note(CANARY))),
        ReasonCode.INVALID_DATE,
    ),
    "invalid_utf8": (
        b'{"resourceType":"Observation","id":"x","note":[{"text":"'
        + CANARY.encode()
        + b' \xff\xfe"}]}',
        ReasonCode.INVALID_UTF8,
    ),
    "very_long_line": (line(obs(10, note=note(CANARY + "x" * 5000))), ReasonCode.LINE_TOO_LONG),
}
GOOD_LINES: dict[str, tuple[bytes, str]] = {
    "good_1": (line(obs(100)), "accepted"),
    "good_2": (
        line(obs(101, effectiveDateTime=None, effectivePeriod={"start": "2024"})),
        "accepted",
    ),
    "good_bp_panel": (
        line(
            obs(
                102,
                valueQuantity=None,
                component=[
                    {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120}},
                    {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80.5}},
                ],
            )
        ),
        "accepted",
    ),
    "blank": (b"", "blank"),
    "spaces": (b"   \t ", "blank"),
}
MAX_LINE = 4096  # the very long line exceeds it; every other line is well below


def write_lines(path: Path, lines: list[bytes], *, compress: bool = False) -> Path:
    data = b"".join(item + b"\n" for item in lines)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def mixed_lines() -> tuple[list[bytes], dict[int, str]]:
    """Interleave good and bad lines; return them and line number -> expected outcome."""
    kinds = list(GOOD_LINES.items())
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    for index, (_, (raw, outcome)) in enumerate(BAD_LINES.items()):
        good_raw, good_outcome = kinds[index % len(kinds)][1]
        for item, result in ((good_raw, good_outcome), (raw, outcome)):
            lines.append(item)
            expected[len(lines)] = result
    return lines, expected


def read_quarantine(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(item) for item in path.read_bytes().splitlines()]


def raw_bytes(record: dict[str, Any]) -> bytes:
    if "raw" in record:
        return str(record["raw"]).encode("utf-8")
    return base64.b64decode(record["raw_base64"])


def synthea_counts() -> dict[str, tuple[int, Counter[str]]]:
    """Count each sample file's lines ourselves: file -> (non-blank lines, types)."""
    counts: dict[str, tuple[int, Counter[str]]] = {}
    for path in sorted(SYNTHEA.glob("*.ndjson")):
        types: Counter[str] = Counter()
        lines = [item for item in path.read_bytes().split(b"\n") if item.strip()]
        for item in lines:
            types[json.loads(item)["resourceType"]] += 1
        counts[path.name] = (len(lines), types)
    return counts


needs_synthea = pytest.mark.skipif(
    not SYNTHEA.is_dir(), reason=f"Synthea sample not present at {SYNTHEA}"
)


# ---- the Synthea sample -------------------------------------------------------------------------


@needs_synthea
@pytest.mark.parametrize("strict", [False, True])
def test_ingest_synthea_sample_has_zero_quarantined(tmp_path: Path, strict: bool) -> None:
    expected = synthea_counts()
    report = ingest_ndjson(SYNTHEA, tmp_path / "out", strict=strict)

    assert report.quarantined == 0
    assert report.quarantined_by_reason == {}
    assert [f.name for f in report.files] == sorted(expected)
    for file_report in report.files:
        lines, types = expected[file_report.name]
        assert file_report.read == lines
        assert file_report.accepted == lines
        assert dict(file_report.accepted_by_type) == dict(types)
        assert file_report.declared_type == file_report.name.split(".")[0]
        assert file_report.quarantine_file is None
    assert report.read == sum(n for n, _ in expected.values()) == 1955
    assert list((tmp_path / "out" / "quarantine").iterdir()) == []


@needs_synthea
def test_ingest_synthea_raw_files_hold_the_original_lines(tmp_path: Path) -> None:
    report = ingest_ndjson(SYNTHEA, tmp_path / "out")
    assert report.raw_files == {rtype: f"raw/{rtype}.ndjson" for rtype in report.accepted_by_type}
    for path in SYNTHEA.glob("*.ndjson"):
        rtype = path.name.split(".")[0]
        out = (tmp_path / "out" / "raw" / f"{rtype}.ndjson").read_bytes()
        assert out.splitlines() == [item for item in path.read_bytes().splitlines() if item]
    written = orjson.loads((tmp_path / "out" / "ingest-report.json").read_bytes())
    assert written == orjson.loads(orjson.dumps(report.to_dict()))


# ---- bad lines ----------------------------------------------------------------------------------


def test_ingest_quarantines_each_bad_line_with_its_number_and_reason(tmp_path: Path) -> None:
    lines, expected = mixed_lines()
    source = write_lines(tmp_path / "Observation.ndjson", lines)

    report = ingest_ndjson(source, tmp_path / "out", max_line_bytes=MAX_LINE)

    (file_report,) = report.files
    outcomes = Counter(expected.values())
    assert file_report.read == len(lines)
    assert file_report.accepted == outcomes["accepted"]
    assert file_report.blank == outcomes["blank"]
    assert file_report.quarantined == len(BAD_LINES)
    assert file_report.read == file_report.accepted + file_report.quarantined + file_report.blank
    records = read_quarantine(
        tmp_path / "out" / "quarantine" / "Observation.ndjson.quarantine.ndjson"
    )
    assert file_report.quarantine_file == "quarantine/Observation.ndjson.quarantine.ndjson"
    got = {record["line"]: record["reason_code"] for record in records}
    want = {n: str(code) for n, code in expected.items() if code not in ("accepted", "blank")}
    assert got == want
    for record in records:
        assert record["file"] == "Observation.ndjson"
        assert raw_bytes(record) == lines[record["line"] - 1]  # nothing is lost
        assert record["reason"]
    accepted = (tmp_path / "out" / "raw" / "Observation.ndjson").read_bytes().splitlines()
    good = [lines[n - 1] for n, outcome in expected.items() if outcome == "accepted"]
    assert accepted == good


def test_ingest_never_echoes_line_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bedside")
    lines, _ = mixed_lines()
    source = write_lines(tmp_path / "Observation.ndjson", lines)

    report = ingest_ndjson(source, tmp_path / "out", max_line_bytes=MAX_LINE)

    quarantine = tmp_path / "out" / "quarantine" / "Observation.ndjson.quarantine.ndjson"
    records = read_quarantine(quarantine)
    # the canary really is in the bad lines (so the checks below can fail) ...
    assert all(CANARY.encode() in raw_bytes(r) for r in records)
    assert len(records) == len(BAD_LINES)
    # ... and it appears nowhere but in the quarantined raw lines.
    assert all(CANARY not in r["reason"] for r in records)
    assert CANARY not in orjson.dumps(report.to_dict()).decode()
    assert CANARY.encode() not in (tmp_path / "out" / "ingest-report.json").read_bytes()
    assert CANARY.encode() not in (tmp_path / "out" / "raw" / "Observation.ndjson").read_bytes()
    assert any(r.name.startswith("bedside.ingest") for r in caplog.records)
    assert any("quarantined" in r.getMessage() for r in caplog.records)
    assert CANARY not in caplog.text


def test_ingest_strict_mode_catches_what_the_fast_path_accepts(tmp_path: Path) -> None:
    lines = [
        line(obs(1)),
        line(obs(2, extension=[{"url": "http://example.org/x", f"value{CANARY}": 1}])),
        line(obs(3, subject={"reference": "Patient/p3", "type": 5}, note=note(CANARY))),
        line(obs(4, contained=[{"resourceType": "NoSuchType", "id": "c", "x": CANARY}])),
    ]
    source = write_lines(tmp_path / "Observation.ndjson", lines)

    fast = ingest_ndjson(source, tmp_path / "fast")
    strict = ingest_ndjson(source, tmp_path / "strict", strict=True)

    assert (fast.accepted, fast.quarantined) == (4, 0)
    assert (strict.accepted, strict.quarantined) == (1, 3)
    assert strict.quarantined_by_reason == {"strict_validation_failed": 3}
    records = read_quarantine(
        tmp_path / "strict" / "quarantine" / "Observation.ndjson.quarantine.ndjson"
    )
    assert [r["line"] for r in records] == [2, 3, 4]
    reasons = [r["reason"] for r in records]
    assert "Observation.extension[0].<unknown field> (extra_forbidden)" in reasons[0]
    assert "Observation.subject.type" in reasons[1]
    assert all(CANARY not in reason for reason in reasons)


def test_ingest_strict_mode_counts_types_without_an_r4b_model(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "MedicinalProduct.ndjson",
        [line({"resourceType": "MedicinalProduct", "id": "m"})],
    )
    report = ingest_ndjson(source, tmp_path / "out", strict=True)
    assert report.files[0].accepted == 1
    assert report.files[0].strict_unchecked == 1


# ---- sources: gzip, manifest, single file, untyped files ----------------------------------------


def test_ingest_reads_gzip_like_plain_text(tmp_path: Path) -> None:
    lines, expected = mixed_lines()
    (tmp_path / "plain").mkdir()
    (tmp_path / "gz").mkdir()
    plain = write_lines(tmp_path / "plain" / "Observation.ndjson", lines)
    packed = write_lines(tmp_path / "gz" / "Observation.000.ndjson.gz", lines, compress=True)

    a = ingest_ndjson(plain, tmp_path / "a", max_line_bytes=MAX_LINE)
    b = ingest_ndjson(packed, tmp_path / "b", max_line_bytes=MAX_LINE)

    assert b.files[0].compressed and not a.files[0].compressed
    for field in ("read", "accepted", "quarantined", "blank"):
        assert getattr(a.files[0], field) == getattr(b.files[0], field)
    assert (tmp_path / "a" / "raw" / "Observation.ndjson").read_bytes() == (
        tmp_path / "b" / "raw" / "Observation.ndjson"
    ).read_bytes()
    gz_records = read_quarantine(
        tmp_path / "b" / "quarantine" / "Observation.000.ndjson.gz.quarantine.ndjson"
    )
    assert {r["line"] for r in gz_records} == {
        n for n, code in expected.items() if code not in ("accepted", "blank")
    }


def test_ingest_detects_gzip_by_content_not_name(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "Observation.ndjson", [line(obs(1)), line(obs(2))], compress=True
    )
    report = ingest_ndjson(source, tmp_path / "out")
    assert report.files[0].compressed
    assert report.accepted == 2


def test_ingest_truncated_gzip_reports_a_file_error_and_continues(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    lines = [line(obs(i, note=note("x" * 200))) for i in range(2000)]
    packed = gzip.compress(b"".join(item + b"\n" for item in lines), mtime=0)
    (folder / "Observation.000.ndjson.gz").write_bytes(packed[: len(packed) // 2])
    write_lines(folder / "Observation.001.ndjson", [line(obs(9999))])

    report = ingest_ndjson(folder, tmp_path / "out")

    broken, intact = report.files
    assert broken.error is not None
    assert broken.error["code"] == "truncated_or_corrupt_gzip"
    assert 0 < broken.accepted < len(lines)
    assert broken.read == broken.accepted  # every line read before the cut was good
    assert intact.error is None and intact.accepted == 1
    assert report.has_file_errors
    assert report.to_dict()["has_file_errors"] is True


def test_ingest_folder_with_manifest_reads_exactly_the_output_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_lines(folder / "Patient.000.ndjson", [line({"resourceType": "Patient", "id": "p1"})])
    write_lines(folder / "file_2.ndjson", [line(obs(1)), b"", line(obs(2))], compress=True)
    write_lines(folder / "err.ndjson", [line({"resourceType": "OperationOutcome", "id": "e"})])
    write_lines(folder / "stray.ndjson", [line(obs(3))])
    manifest = {
        "transactionTime": "2024-01-01T00:00:00Z",
        "request": "https://fhir.example.org/$export",
        "requiresAccessToken": True,
        "output": [
            {"type": "Patient", "url": "https://fhir.example.org/f/Patient.000.ndjson", "count": 1},
            {"type": "Observation", "url": "https://fhir.example.org/f/file_2.ndjson", "count": 3},
        ],
        "error": [{"type": "OperationOutcome", "url": "https://fhir.example.org/f/err.ndjson"}],
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))

    report = ingest_ndjson(folder, tmp_path / "out")

    assert [(f.name, f.declared_type, f.accepted) for f in report.files] == [
        ("Patient.000.ndjson", "Patient", 1),
        ("file_2.ndjson", "Observation", 2),
    ]
    assert report.files[0].manifest_count_matches is True
    assert report.files[1].manifest_count_matches is False  # 2 resources, manifest said 3
    assert {s["name"]: s["reason"] for s in report.skipped_files} == {
        "err.ndjson": "export error file (OperationOutcome)",
        "stray.ndjson": "not listed in manifest.json",
    }
    warnings = " | ".join(report.warnings)
    assert "1 error file(s)" in warnings
    assert "stray.ndjson is not listed" in warnings
    assert "file_2.ndjson: manifest count 3" in warnings
    assert not (tmp_path / "out" / "raw" / "OperationOutcome.ndjson").exists()


def test_ingest_manifest_with_a_missing_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_lines(folder / "Patient.ndjson", [line({"resourceType": "Patient", "id": "p1"})])
    manifest = {
        "output": [
            {"type": "Patient", "url": "https://x.org/Patient.ndjson"},
            {"type": "Observation", "url": "https://x.org/Observation.ndjson"},
        ]
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(NotFound, match=r"1 output file\(s\) not found"):
        ingest_ndjson(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"{}", "'output'"),
        (b'{"output": [{"type": "Nope", "url": "a.ndjson"}]}', "output[0].type"),
        (b'{"output": [{"type": "Patient"}]}', "output[0]"),
    ],
)
def test_ingest_malformed_manifest_is_refused(
    tmp_path: Path, manifest: bytes, message: str
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_lines(folder / "a.ndjson", [line({"resourceType": "Patient", "id": "p1"})])
    (folder / "manifest.json").write_bytes(manifest)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        ingest_ndjson(folder, tmp_path / "out")


@needs_synthea
def test_ingest_single_file(tmp_path: Path) -> None:
    source = SYNTHEA / "Patient.000.ndjson"
    report = ingest_ndjson(source, tmp_path / "out")
    expected, types = synthea_counts()["Patient.000.ndjson"]
    assert [f.name for f in report.files] == ["Patient.000.ndjson"]
    assert report.accepted == expected == types["Patient"]
    assert sorted(p.name for p in (tmp_path / "out" / "raw").iterdir()) == ["Patient.ndjson"]


def test_ingest_untyped_file_sorts_lines_by_their_type_and_filters(tmp_path: Path) -> None:
    lines = [
        line({"resourceType": "Patient", "id": "p1", "gender": "female"}),
        line(obs(1)),
        line(
            {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": {"reference": "Patient/p1"},
            }
        ),
        line(obs(2)),
    ]
    source = write_lines(tmp_path / "everything.ndjson", lines)

    full = ingest_ndjson(source, tmp_path / "full")
    some = ingest_ndjson(source, tmp_path / "some", resource_types=["Observation"])

    assert full.files[0].declared_type is None
    assert full.accepted_by_type == {"Encounter": 1, "Observation": 2, "Patient": 1}
    assert some.accepted_by_type == {"Observation": 2}
    assert (some.files[0].read, some.files[0].skipped) == (4, 2)
    assert some.resource_types == ("Observation",)


@needs_synthea
def test_ingest_resource_types_skips_other_files(tmp_path: Path) -> None:
    report = ingest_ndjson(SYNTHEA, tmp_path / "out", resource_types={"Patient", "Condition"})
    assert [f.name for f in report.files] == ["Condition.000.ndjson", "Patient.000.ndjson"]
    assert {s["name"] for s in report.skipped_files} == {
        "AllergyIntolerance.000.ndjson",
        "Encounter.000.ndjson",
        "Immunization.000.ndjson",
    }


def test_ingest_accepts_crlf_and_a_byte_order_mark(tmp_path: Path) -> None:
    source = tmp_path / "Observation.ndjson"
    source.write_bytes(b"\xef\xbb\xbf" + line(obs(1)) + b"\r\n" + line(obs(2)) + b"\r\n")
    report = ingest_ndjson(source, tmp_path / "out")
    assert (report.accepted, report.quarantined) == (2, 0)
    assert (tmp_path / "out" / "raw" / "Observation.ndjson").read_bytes() == (
        line(obs(1)) + b"\n" + line(obs(2)) + b"\n"
    )


def test_ingest_normalises_surrounding_whitespace_and_a_missing_last_newline(
    tmp_path: Path,
) -> None:
    source = tmp_path / "Observation.ndjson"
    source.write_bytes(line(obs(1)) + b"\n  " + line(obs(2)) + b"\t\n " + line(obs(3)))
    assert ingest_ndjson(source, tmp_path / "out").accepted == 3
    written = (tmp_path / "out" / "raw" / "Observation.ndjson").read_bytes()
    assert written == b"".join(line(obs(i)) + b"\n" for i in (1, 2, 3))


def test_ingest_reports_progress_up_to_the_total(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_lines(folder / "Observation.000.ndjson", [line(obs(i)) for i in range(40_000)])
    write_lines(
        folder / "Observation.001.ndjson.gz", [line(obs(i)) for i in range(10)], compress=True
    )
    total = sum(p.stat().st_size for p in folder.iterdir())
    calls: list[tuple[int, int]] = []

    ingest_ndjson(folder, tmp_path / "out", progress=lambda done, all_: calls.append((done, all_)))

    assert len(calls) >= 3  # at least one mid-file tick plus one per file
    assert all(all_ == total for _, all_ in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total


# ---- re-runs and dest safety --------------------------------------------------------------------


def test_ingest_rerun_into_same_dest_gives_the_same_outputs(tmp_path: Path) -> None:
    lines, _ = mixed_lines()
    source = write_lines(tmp_path / "Observation.ndjson", lines)
    dest = tmp_path / "out"

    first = ingest_ndjson(source, dest, max_line_bytes=MAX_LINE)
    snapshot = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*.ndjson")}
    second = ingest_ndjson(source, dest, max_line_bytes=MAX_LINE)

    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*.ndjson")} == snapshot
    assert [f.to_dict() | {"duration_s": 0} for f in first.files] == [
        f.to_dict() | {"duration_s": 0} for f in second.files
    ]
    assert sorted(p.name for p in dest.iterdir()) == [
        ".ingest.lock",
        "ingest-report.json",
        "quarantine",
        "raw",
    ]


def test_ingest_rerun_replaces_the_previous_outputs(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (tmp_path / "a").mkdir()
    bad = write_lines(tmp_path / "a" / "Observation.ndjson", [b"{oops"])
    ingest_ndjson(bad, dest)
    assert (dest / "quarantine" / "Observation.ndjson.quarantine.ndjson").exists()

    (tmp_path / "b").mkdir()
    good = write_lines(
        tmp_path / "b" / "Patient.ndjson", [line({"resourceType": "Patient", "id": "p"})]
    )
    report = ingest_ndjson(good, dest)

    assert report.raw_files == {"Patient": "raw/Patient.ndjson"}
    assert sorted(p.name for p in (dest / "raw").iterdir()) == ["Patient.ndjson"]
    assert list((dest / "quarantine").iterdir()) == []


def test_ingest_refuses_a_dest_with_folders_it_did_not_write(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "Observation.ndjson", [line(obs(1))])
    (tmp_path / "out" / "raw").mkdir(parents=True)
    (tmp_path / "out" / "raw" / "precious.txt").write_text("keep me")
    with pytest.raises(Conflict, match=r"no ingest-report\.json"):
        ingest_ndjson(source, tmp_path / "out")
    assert (tmp_path / "out" / "raw" / "precious.txt").read_text() == "keep me"


def test_ingest_refuses_a_concurrent_run(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "Observation.ndjson", [line(obs(1))])
    dest = tmp_path / "out"
    dest.mkdir()
    with (dest / ".ingest.lock").open("a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(Conflict, match="another ingest run"):
            ingest_ndjson(source, dest)
    assert ingest_ndjson(source, dest).accepted == 1  # free again once the other run ends


def test_ingest_refuses_bad_arguments(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "Observation.ndjson", [line(obs(1))])
    with pytest.raises(NotFound, match="does not exist"):
        ingest_ndjson(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(InvalidInput, match="'Vitals' not FHIR R4"):
        ingest_ndjson(source, tmp_path / "out", resource_types=["Observation", "Vitals"])
    with pytest.raises(InvalidInput, match="max_line_bytes"):
        ingest_ndjson(source, tmp_path / "out", max_line_bytes=0)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match="not an NDJSON file"):
        ingest_ndjson(tmp_path / "notes.txt", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="holds no"):
        ingest_ndjson(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInput, match="is a file"):
        ingest_ndjson(source, tmp_path / "afile")


# ---- the report ---------------------------------------------------------------------------------


def test_file_report_refuses_counts_that_do_not_add_up() -> None:
    with pytest.raises(IntegrityError, match="every line must be accounted for"):
        FileReport(
            name="a.ndjson",
            declared_type=None,
            compressed=False,
            size_bytes=1,
            read=5,
            accepted=3,
            quarantined=1,
            blank=0,
            accepted_by_type={"Patient": 3},
            quarantined_by_reason={"invalid_json": 1},
        )
    with pytest.raises(IntegrityError, match="per-type"):
        FileReport(
            name="a.ndjson",
            declared_type=None,
            compressed=False,
            size_bytes=1,
            read=3,
            accepted=3,
            quarantined=0,
            blank=0,
            accepted_by_type={"Patient": 2},
        )


def test_ingest_report_round_trips_through_json(tmp_path: Path) -> None:
    lines, _ = mixed_lines()
    source = write_lines(tmp_path / "Observation.ndjson", lines)
    report = ingest_ndjson(source, tmp_path / "out", max_line_bytes=MAX_LINE)
    loaded = IngestReport.from_dict(
        orjson.loads((tmp_path / "out" / "ingest-report.json").read_bytes())
    )
    assert loaded.to_dict() == orjson.loads(orjson.dumps(report.to_dict()))
    assert loaded.read == report.read == len(lines)


# ---- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "date", "datetime_", "instant"),
    [
        ("2024", True, True, False),
        ("2024-02", True, True, False),
        ("2024-02-29", True, True, False),
        ("2023-02-29", False, False, False),
        ("2024-13-01", False, False, False),
        ("2024-01-01T10:00:00Z", False, True, True),
        ("2024-01-01T10:00:00.123+05:30", False, True, True),
        ("2024-01-01T10:00:00", False, False, False),  # a time needs a zone
        ("2024-01-01T10:00Z", False, False, False),  # seconds are required
        ("0000-01-01", False, False, False),
        ("2024-01-01 10:00:00Z", False, False, False),
        (20240101, False, False, False),
    ],
)
def test_fhir_date_rules(value: object, date: bool, datetime_: bool, instant: bool) -> None:
    assert (is_fhir_date(value), is_fhir_datetime(value), is_fhir_instant(value)) == (
        date,
        datetime_,
        instant,
    )


@pytest.mark.parametrize(
    ("resource", "code"),
    [
        ({"resourceType": "Patient", "id": "p", "gender": "F"}, ReasonCode.INVALID_CODE),
        (
            {"resourceType": "Patient", "id": "p", "birthDate": "1990-02-30"},
            ReasonCode.INVALID_DATE,
        ),
        (
            {
                "resourceType": "Encounter",
                "id": "e",
                "status": "finished",
                "subject": {"reference": "Patient/p"},
            },
            ReasonCode.MISSING_FIELD,
        ),
        (
            {
                "resourceType": "Encounter",
                "id": "e",
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": {"reference": "Patient/p"},
                "period": {"start": "yesterday"},
            },
            ReasonCode.INVALID_DATE,
        ),
        (
            {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}},
            ReasonCode.MISSING_FIELD,
        ),
        (
            {
                "resourceType": "Condition",
                "id": "c",
                "code": {"coding": "x"},
                "subject": {"reference": "Patient/p"},
            },
            ReasonCode.WRONG_TYPE,
        ),
        (obs(1, effectiveDateTime=None), ReasonCode.MISSING_FIELD),
        (obs(1, issued="2024-01-01"), ReasonCode.INVALID_DATE),
        (obs(1, valueQuantity={"value": True}), ReasonCode.WRONG_TYPE),
        (
            obs(1, component=[{"code": {"coding": [{}]}, "valueQuantity": {"value": "1"}}]),
            ReasonCode.WRONG_TYPE,
        ),
        (obs(1, code={"text": "heart rate"}), ReasonCode.MISSING_FIELD),
        (obs(1, subject={"reference": ""}), ReasonCode.WRONG_TYPE),
        (obs(1, status=None), ReasonCode.MISSING_FIELD),
    ],
)
def test_check_resource_names_the_field_and_rule(
    resource: dict[str, Any], code: ReasonCode
) -> None:
    rtype, problem = check_resource(resource, None)
    assert rtype == resource["resourceType"]
    assert problem is not None and problem.code == code
    assert problem.text.startswith(resource["resourceType"])


def test_check_resource_accepts_minimal_valid_resources() -> None:
    minimal: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p"},
        {
            "resourceType": "Encounter",
            "id": "e",
            "status": "in-progress",
            "class": {},
            "subject": {"reference": "Patient/p"},
        },
        {
            "resourceType": "Condition",
            "id": "c",
            "code": {"coding": [{}]},
            "subject": {"reference": "Patient/p"},
        },
        obs(1, valueQuantity=None, effectiveDateTime=None, issued="2024-01-01T00:00:00Z"),
        {"resourceType": "Practitioner", "id": "x"},
    ]
    for resource in minimal:
        assert check_resource(resource, None) == (resource["resourceType"], None)


# ---- property: any mixture of lines is fully accounted for ---------------------------------------

KNOWN_KINDS = sorted({**BAD_LINES, **GOOD_LINES})
RANDOM_LINE = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" "))
LINE_ITEM = st.one_of(st.sampled_from(KNOWN_KINDS), RANDOM_LINE)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(LINE_ITEM, max_size=30), gz=st.booleans())
def test_ingest_accounts_for_every_line_of_any_mixture(items: list[str | bytes], gz: bool) -> None:
    kinds = {**BAD_LINES, **GOOD_LINES}
    lines = [kinds[item][0] if isinstance(item, str) else item for item in items]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = "Observation.ndjson.gz" if gz else "Observation.ndjson"
        source = write_lines(folder / name, lines, compress=gz)
        report = ingest_ndjson(source, folder / "out", max_line_bytes=MAX_LINE)
        (file_report,) = report.files
        quarantine = folder / "out" / "quarantine" / f"{name}.quarantine.ndjson"
        records = read_quarantine(quarantine) if quarantine.exists() else []
        raw = folder / "out" / "raw" / "Observation.ndjson"
        accepted_lines = raw.read_bytes().splitlines() if raw.exists() else []

    assert file_report.read == len(lines)
    assert file_report.read == (
        file_report.accepted + file_report.quarantined + file_report.blank + file_report.skipped
    )
    assert file_report.skipped == 0
    assert len(records) == file_report.quarantined
    assert len(accepted_lines) == file_report.accepted
    by_line = {record["line"]: record for record in records}
    for number, item in enumerate(items, start=1):
        if isinstance(item, str):
            outcome = kinds[item][1]
            if outcome in ("accepted", "blank"):
                assert number not in by_line
            else:
                assert by_line[number]["reason_code"] == outcome
        if number in by_line:
            assert raw_bytes(by_line[number]) == lines[number - 1]
