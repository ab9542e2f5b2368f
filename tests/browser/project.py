"""A real bedside project for the browser tests: a trained version and one user per role.

``build_project`` makes it once per test session (the slow part: data preparation and training);
``copy_project`` gives each test module its own copy, so a module that changes state (signs,
promotes, adds users) never disturbs another. The server is then started on a copy as a real
``bedside serve`` process (see ``conftest.py``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from argon2 import PasswordHasher

from bedside.config import CONFIG_FILE, Settings
from bedside.ingest.synthetic import generate_hospital
from bedside.prepare import PreparedDataset
from bedside.security import KeyRing
from bedside.service import Platform
from bedside.stores.database import Database
from bedside.stores.tracking import Tracker
from tests.support import EXAMPLES, PASSWORD, REPO

MODEL = "sepsis-prediction"
REF = f"{MODEL}@1"
DEMO_PIPELINE = EXAMPLES / "sepsis" / "pipeline.demo.yaml"


@dataclass(frozen=True)
class Person:
    """A project user: user name, printed name, role and the role's kind."""

    username: str
    full_name: str
    role: str
    kind: str


# One user per role; the key is how tests name them. Reviewer roles come from the pipeline file.
PEOPLE: dict[str, Person] = {
    "admin": Person("admin", "Ada Admin", "admin", "admin"),
    "scientist": Person("dana", "Dana Scientist", "data_scientist", "data_scientist"),
    "engineer": Person("eli", "Eli Engineer", "ml_engineer", "ml_engineer"),
    "cmio": Person("carol", "Dr Carol Chief", "CMIO", "clinical_reviewer"),
    "informaticist": Person(
        "ivan", "Ivan Informaticist", "clinical_informaticist", "clinical_reviewer"
    ),
    "auditor": Person("aud", "Audrey Auditor", "auditor", "auditor"),
}
#: A user the admin actions (grant, revoke, disable, enable) are tried on.
TARGET = Person("tess", "Tess Target", "data_scientist", "data_scientist")


def accepting_pipeline() -> str:
    """The demo pipeline with gates any model passes and a one-second shadow period.

    The browser tests check the governance mechanics, not the model's quality (as
    tests/service/test_train.py does), and must not wait out the demo's 20-second shadow period.
    A small model (fewer boosting rounds) and two fairness attributes that each have events in
    the small seeded hospital keep the one-off training short and every gate passing.
    """
    text = DEMO_PIPELINE.read_text(encoding="utf-8")
    replacements = {
        "min_auc_roc: 0.60, min_sensitivity: 0.70, max_false_positive_rate: 0.70,": (
            "min_auc_roc: 0.0, min_sensitivity: 0.0, max_false_positive_rate: 1.0,"
        ),
        "max_ece: 0.08,": "max_ece: 1.0,",
        "max_disparity: 0.40,": "max_disparity: 1.0,",
        "min_group_size: 30, min_group_events: 10": "min_group_size: 1, min_group_events: 1",
        "expression: auroc >= 0.6 and brier <= 0.1": "expression: auroc >= 0",
        "stratify_by: [race, sex, age_group]": "stratify_by: [sex, age_group]",
        "params: {max_iter: 200, learning_rate: 0.05}": (
            "params: {max_iter: 30, learning_rate: 0.1}"
        ),
        "shadow_duration: 20s": "shadow_duration: 1s",
    }
    for old, new in replacements.items():
        assert old in text, f"the demo pipeline changed: {old!r} not found"
        text = text.replace(old, new)
    return text


def open_platform(home: Path) -> Platform:
    """Open the project in ``home`` as ``bedside`` would (its settings), with a cheap hasher."""
    settings = Settings.load({}, home=home)
    return Platform(
        Database(settings.database_url),
        KeyRing(settings.keys_dir),
        lockout_threshold=settings.lockout_threshold,
        # Verification reads the cost from each stored hash, so the server checks these too.
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        home=settings.home,
        artifacts_root=Path(settings.artifacts_url),
    )


def build_project(home: Path, *, admissions: int = 1200) -> None:
    """Create a project in ``home``: users, the accepting pipeline, a prepared dataset, version 1.

    Version 1 is left a *candidate* (trained, every gate passed, not yet validated).
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / CONFIG_FILE).write_text('[bedside]\nlog_level = "WARNING"\n', encoding="utf-8")
    (home / "artifacts").mkdir()
    generate_hospital(
        home / "data" / "fhir",
        admissions=admissions,
        start=date(2024, 1, 1),
        end=date(2025, 1, 1),
        seed=5,
    )
    platform = open_platform(home)
    admin = platform.initialise(
        admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD
    )
    pipeline = home / "pipeline.yaml"
    pipeline.write_text(accepting_pipeline(), encoding="utf-8")
    platform.register_pipeline(admin, content=pipeline.read_text(encoding="utf-8"))
    for person in [*PEOPLE.values(), TARGET]:
        if person.username != "admin":
            platform.add_user(
                admin,
                person.username,
                full_name=person.full_name,
                password=PASSWORD,
                roles=[person.role],
            )
    scientist = platform.authenticate(PEOPLE["scientist"].username, PASSWORD)
    prepared = platform.prepare_dataset(scientist, pipeline)
    assert isinstance(prepared, PreparedDataset), prepared
    settings = Settings.load({}, home=home)
    tracker = Tracker(settings.mlflow_tracking_uri, artifact_location=home / "mlruns")
    version = platform.train_version(
        scientist, pipeline, tracker=tracker, repo=REPO, lock_file=REPO / "uv.lock", n_boot=20
    )
    failed = [g.gate for g in version.gate_results if not g.passed]
    assert version.ref == REF and not failed, f"gates not passed: {failed}"
    platform.database.dispose()


def copy_project(template: Path, home: Path) -> Path:
    """Copy the project in ``template`` to ``home`` (a private project for one test module)."""
    shutil.copytree(template, home)
    return home
