"""The governance database: migrations, append-only tables, schema checks — on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bedside.domain.models import EventDraft
from bedside.errors import ConfigError, SchemaOutOfDate
from bedside.stores.audit import AuditLog
from bedside.stores.database import Database, create_db_engine, head_revision
from bedside.stores.tables import metadata


def test_migrated_schema_matches_table_definitions(database: Database) -> None:
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == [], (
        "The migrations and stores/tables.py disagree. HOW TO FIX: add an Alembic revision in "
        f"src/bedside/stores/migrations/versions/ that makes them agree. Differences: {diffs}"
    )


def test_database_reports_head_revision_after_upgrade(database: Database) -> None:
    assert database.current_revision() == head_revision()
    database.check_schema()  # does not raise


def test_empty_database_refuses_work_with_the_fix(database_url: str) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="bedside init"):
            db.check_schema()
    finally:
        db.dispose()


def test_old_schema_is_reported_with_upgrade_command(database: Database) -> None:
    with database.transaction() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate, match=r"found revision 0000.*bedside db upgrade"):
        database.check_schema()


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET seq = seq", "DELETE FROM {t}"])
def test_ledger_rows_cannot_be_changed_or_deleted(
    database: Database, table: str, statement: str
) -> None:
    with database.transaction() as conn:
        log = AuditLog(conn)
        log.append(
            EventDraft(actor="a", action="x", subject_type="t", subject_id="1"),
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
        log.add_checkpoint(actor="a", now=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(DBAPIError, match="append-only"), database.transaction() as conn:
        conn.execute(text(statement.format(t=table)))
    with database.read() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1


def test_truncate_of_the_ledger_is_refused_on_postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL (SQLite's DELETE is refused above)")
    with pytest.raises(DBAPIError, match="append-only"), database.transaction() as conn:
        conn.execute(text("TRUNCATE audit_events"))


def test_sqlite_database_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://root@localhost/x", "does not support"),
        ("not a url at all", "is not a database URL"),
    ],
)
def test_bad_database_urls_say_what_is_supported(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        create_db_engine(url)
