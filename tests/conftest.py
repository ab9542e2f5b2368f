"""Shared fixtures: real databases (SQLite always, PostgreSQL when reachable), a platform, users.

The same store and service tests run on every backend in ``BACKENDS``. PostgreSQL tests each get a
schema of their own in the ``test`` database and drop it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings

from bedside.security import KeyRing
from bedside.service import Platform
from bedside.stores.database import Database
from tests.support import FOUNDING_PIPELINE, PASSWORD, Clock, Team

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

POSTGRES_URL = os.environ.get(
    "BEDSIDE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

_pg_reason: str | None = None


def _postgres_unreachable() -> str | None:
    """Return why PostgreSQL cannot be used, or None when it can (checked once)."""
    global _pg_reason
    if _pg_reason is None:
        try:
            import psycopg

            conninfo = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(conninfo, connect_timeout=3):
                _pg_reason = ""
        except Exception as exc:  # any failure means: skip, and say why
            _pg_reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return _pg_reason or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bedside.db'}"
        return
    reason = _postgres_unreachable()
    if reason:
        pytest.skip(reason)
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """Yield the URL of a new, empty PostgreSQL schema of its own; drop it afterwards.

    The caller has checked that PostgreSQL is reachable (:func:`_postgres_unreachable`).
    """
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    conninfo = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def platform(database: Database, tmp_path: Path, clock: Clock) -> Platform:
    keys = KeyRing(tmp_path / "keys")
    keys.create()
    # A cheap Argon2id cost keeps the suite fast; the production default is tested in test_security.
    return Platform(
        database,
        keys,
        clock=clock,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


@pytest.fixture
def team(platform: Platform) -> Team:
    """Initialise the project, register the founding pipeline, and create one user per role."""
    admin = platform.initialise(
        admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD
    )
    platform.register_pipeline(
        admin, content=FOUNDING_PIPELINE.read_text(encoding="utf-8"), source=str(FOUNDING_PIPELINE)
    )
    people = {
        "scientist": ("dana", "Dana Scientist", ["data_scientist"]),
        "engineer": ("eli", "Eli Engineer", ["ml_engineer"]),
        "cmio": ("carol", "Dr Carol Chief", ["CMIO"]),
        "informaticist": ("ivan", "Ivan Informaticist", ["clinical_informaticist"]),
        "auditor": ("aud", "Audrey Auditor", ["auditor"]),
        "second_cmio": ("cora", "Dr Cora Second", ["CMIO"]),
    }
    made = {
        key: platform.add_user(admin, name, full_name=full, password=PASSWORD, roles=roles)
        for key, (name, full, roles) in people.items()
    }
    return Team(admin=admin, **made)
