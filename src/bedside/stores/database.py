"""The governance database: engine by URL, schema migrations, transactions.

One code path serves SQLite (the embedded default, WAL mode) and PostgreSQL (production, psycopg 3).
Every write happens inside :meth:`Database.transaction`; on SQLite it starts with
``BEGIN IMMEDIATE`` so writers are serialised and the audit ledger's chain cannot fork; on
PostgreSQL the ledger takes a transaction-scoped advisory lock before appending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from bedside.errors import ConfigError, SchemaOutOfDate, StoreUnavailable

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """Return the schema revision this version of bedside expects."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url`` (SQLite or PostgreSQL), configured for bedside.

    Raises:
        ConfigError: the URL is malformed or names an unsupported backend.
    """
    url = _normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"BEDSIDE_DATABASE_URL {url!r} is not a database URL. Expected e.g. "
            "sqlite:///path/bedside.db or postgresql+psycopg://user@host:5432/db."
        ) from None
    scheme = parsed.drivername
    if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"BEDSIDE_DATABASE_URL uses {scheme!r}, which bedside does not support. "
            f"Supported: {', '.join(SUPPORTED_SCHEMES)}."
        )
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30})
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"Cannot use BEDSIDE_DATABASE_URL: {exc}") from None
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (so BEGIN IMMEDIATE works).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front, so two writers never read the same ledger head.
        write = conn.get_execution_options().get("bedside_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """A governance database reachable at one URL."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = _normalise_url(url)
        self.engine = engine or create_db_engine(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def current_revision(self) -> str | None:
        """Return the schema revision recorded in the database (None when empty)."""
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise StoreUnavailable(
                f"Cannot reach the governance database ({self.engine.url.render_as_string()}): "
                f"{exc.orig}. Check BEDSIDE_DATABASE_URL and that the server is running."
            ) from None

    def upgrade(self) -> str:
        """Bring the schema to the newest revision; return it."""
        if self.dialect == "sqlite":
            db_path = self.engine.url.database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as conn:
            command.upgrade(_alembic_config(conn), "head")
        rev = head_revision()
        logger.info("database schema at revision %s", rev)
        return rev

    def check_schema(self) -> None:
        """Refuse to work on a database whose schema is not the one this bedside expects.

        Raises:
            SchemaOutOfDate: with the command that fixes it.
        """
        found = self.current_revision()
        expected = head_revision()
        if found == expected:
            return
        if found is None:
            raise SchemaOutOfDate(
                "The governance database has no bedside schema yet. Run 'bedside init' for a new "
                "project, or 'bedside db upgrade' for an existing database."
            )
        raise SchemaOutOfDate(
            f"Detected out-of-date database schema (found revision {found}, expected {expected}). "
            "Take a backup of the database, then run 'bedside db upgrade'."
        )

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Open a write transaction; commit on success, roll back on any error."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(bedside_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            if "locked" in str(exc.orig).lower() or "could not connect" in str(exc.orig).lower():
                raise StoreUnavailable(
                    f"The governance database is unavailable: {exc.orig}"
                ) from None
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read-only connection (a plain transaction that is rolled back)."""
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Database", "SQLAlchemyError", "create_db_engine", "head_revision"]
