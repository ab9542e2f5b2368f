"""Audit ledger: append rate (one event per transaction, as the Platform writes) and verify rate.

python bench/bench_ledger.py [--events N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bedside.domain.ledger import verify_chain
from bedside.domain.models import EventDraft
from bedside.stores.audit import AuditLog
from bedside.stores.database import Database


def run(url: str, label: str, events: int) -> None:
    db = Database(url)
    db.upgrade()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    for i in range(events):
        with db.transaction() as conn:
            AuditLog(conn).append(
                EventDraft(
                    actor="bench",
                    action="gate.recorded",
                    subject_type="version",
                    subject_id=f"m@{i % 50}",
                    after={"gate": "statistical", "passed": True, "i": i},
                ),
                now=start + timedelta(seconds=i),
            )
    append_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.read() as conn:
        log = AuditLog(conn)
        result = verify_chain(log.iter_events(), log.list_checkpoints())
    verify_s = time.perf_counter() - t0
    assert result.ok, result.describe()
    print(
        f"{label:<10} append {events:>6} events, 1 per transaction: {append_s:6.2f} s = "
        f"{events / append_s:8.0f} events/s | verify: {verify_s:5.2f} s = "
        f"{events / verify_s:9.0f} events/s"
    )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.events)
    try:
        import psycopg

        schema = "bench_" + uuid.uuid4().hex[:8]
        conninfo = args.postgres.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            run(f"{args.postgres}?options=-csearch_path%3D{schema}", "postgresql", args.events)
        finally:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    except psycopg.OperationalError as exc:
        print(f"postgresql skipped: not reachable ({exc})")


if __name__ == "__main__":
    main()
