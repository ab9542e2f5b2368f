"""The canary searcher finds what it should (so a clean result means something), and a tracking
store holds no canary after a guarded session — but does after a deliberate bypass."""

from __future__ import annotations

import gzip
import io
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from bedside.errors import InvalidInput
from bedside.stores.tracking import Tracker
from tests.canary import CANARIES, CANARY_PATIENT, Canary, find_canaries
from tests.support import REPO

KINDS = {c.kind for c in CANARIES}


def _kinds(hits: list[tuple[Path, Canary]]) -> set[str]:
    return {canary.kind for _, canary in hits}


# --- the searcher --------------------------------------------------------------------------------


@pytest.mark.parametrize("canary", CANARIES, ids=lambda c: c.kind)
def test_every_canary_value_is_found_as_planted(canary: Canary, tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(f'{{"x": "{canary.value}"}}')
    assert find_canaries([tmp_path]) == [(tmp_path / "f.json", canary)]


def test_canaries_are_found_reformatted_and_in_other_encodings(tmp_path: Path) -> None:
    (tmp_path / "upper.csv").write_text('id,name\n1,"QUIXWHISTLE, MARY"\n')
    (tmp_path / "digits.txt").write_text("tel:5550132719")
    (tmp_path / "url.log").write_text("GET /search?q=Mary%20Quixwhistle")
    (tmp_path / "wide.txt").write_bytes("born 1929-02-17".encode("utf-16-le"))
    (tmp_path / "wide_be.txt").write_bytes("ssn 999-31-4159".encode("utf-16-be"))
    hits = {(p.name, c.kind) for p, c in find_canaries([tmp_path])}
    assert hits == {
        ("upper.csv", "name"),
        ("digits.txt", "phone"),
        ("url.log", "name"),
        ("wide.txt", "birth_date"),
        ("wide_be.txt", "ssn"),
    }


def test_a_canary_across_a_block_boundary_is_found(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.write(b"x" * ((4 << 20) - 5))
        handle.write(b"Zorblatt Lane")
    assert _kinds(find_canaries([big])) == {"address"}


def test_canaries_inside_archives_are_found(tmp_path: Path) -> None:
    payload = f"patient {CANARY_PATIENT['mrn']}".encode()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", payload)
    assert payload not in inner.getvalue()  # deflated: a plain byte search would miss it
    with zipfile.ZipFile(tmp_path / "outer.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.skops", inner.getvalue())
    (tmp_path / "log.gz").write_bytes(gzip.compress(b"mail vexmorrow.canary@example.invalid"))
    hits = {(p.name, c.kind) for p, c in find_canaries([tmp_path])}
    assert hits == {("outer.zip", "mrn"), ("log.gz", "email")}


def test_canaries_in_long_sqlite_values_are_found(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        for i in range(50):  # values spanning several overflow pages
            body = "." * (4090 * (i % 7) + i) + CANARY_PATIENT["patient_id"] + "." * 9000
            connection.execute("INSERT INTO notes (body) VALUES (?)", (body,))
    connection.close()
    assert _kinds(find_canaries([db])) == {"patient_id"}


def test_clean_and_random_data_hold_no_canary(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "noise.bin").write_bytes(rng.bytes(3 << 20))
    (tmp_path / "text.txt").write_text("Mary Smith, 555-0100, 1930-01-01, 999-00-0000")
    assert find_canaries([tmp_path, tmp_path / "missing"]) == []


# --- a tracking store ----------------------------------------------------------------------------


def test_tracking_store_holds_no_canary_unless_the_guard_is_bypassed(tmp_path: Path) -> None:
    import mlflow

    store = tmp_path / "mlflow"
    tracker = Tracker(f"sqlite:///{store / 'mlflow.db'}", artifact_location=store / "artifacts")
    rng = np.random.default_rng(3)
    features = pd.DataFrame({"age": rng.integers(18, 89, 200), "lactate": rng.gamma(2, 1, 200)})
    label = (features["lactate"] > 2).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(features, label)

    with tracker.run("canary", run_name="safe", user="dana") as run_id:
        tracker.log_params(run_id, model.get_params())
        tracker.log_metrics(run_id, {"auroc": 0.7})
        tracker.log_dataset(run_id, features, name="train", digest="e" * 64, source="/snap")
        logged = tracker.log_model(run_id, model, features=features)
        tracker.log_artifact(run_id, REPO / "examples" / "sepsis" / "pipeline.yaml")
        for canary in CANARIES:  # every canary is refused by the guard, as a value and a name
            with pytest.raises(InvalidInput) as caught:
                tracker.set_tags(run_id, {"note": canary.value})
            assert canary.value not in str(caught.value)
            with pytest.raises(InvalidInput):
                tracker.ensure_experiment(f"cohort {canary.value}")
    version = tracker.register_model(logged, "canary-model")
    tracker.set_champion("canary-model", version.version)
    assert find_canaries([store]) == []

    # Test-only bypass: plain MLflow, no guard. The searcher must now find every canary.
    raw = mlflow.MlflowClient(tracker.tracking_uri)
    for canary in CANARIES:
        raw.set_tag(run_id, f"leak_{canary.kind}", canary.value)
    leaked = tmp_path / "leak.txt"
    leaked.write_text(" | ".join(c.value for c in CANARIES))
    raw.log_artifact(run_id, str(leaked))
    hits = find_canaries([store])
    assert _kinds(hits) == KINDS
    tops = {path.relative_to(store).parts[0] for path, _ in hits}
    assert {"database" if t.startswith("mlflow.db") else t for t in tops} == {
        "database",  # the tags (the file, or its WAL/journal)
        "artifacts",  # the text file
    }
