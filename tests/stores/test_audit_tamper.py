"""The audit ledger detects every tampering, on every backend.

Hundreds of random tamperings — edit a field, delete an event, insert a forged one, swap two,
truncate the tail beyond a checkpoint, rewrite the chain after an edit — are each applied inside a
transaction (after disabling the append-only triggers, as an attacker with database-owner rights
could), verified, and rolled back. Every one must be detected, at the right place.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bedside.domain.canonical import canonical_json
from bedside.domain.ledger import compute_hash, verify_chain
from bedside.domain.models import AuditEvent, EventDraft
from bedside.stores.audit import AuditLog
from bedside.stores.database import Database

N_EVENTS = 60
TRIALS = 300
FIELDS = [
    "occurred_at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "before",
    "after",
    "reason",
    "prev_hash",
    "hash",
]


def _fill(database: Database) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    with database.transaction() as conn:
        log = AuditLog(conn)
        for i in range(N_EVENTS):
            log.append(
                EventDraft(
                    actor=rng.choice(["carol", "dana", "eli", "system"]),
                    action=rng.choice(["version.validate", "signature.signed", "gate.recorded"]),
                    subject_type="version",
                    subject_id=f"sepsis@{i % 7 + 1}",
                    before={"state": "candidate"} if i % 2 else None,
                    after={"state": "validated", "n": i, "score": i / 7},
                    reason=f"reason {i}",
                ),
                now=start + timedelta(minutes=i),
            )
            if i + 1 in (30, N_EVENTS):
                log.add_checkpoint(actor="aud", now=start + timedelta(minutes=i, seconds=1))


def _disable_triggers(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for table in ("audit_events", "audit_checkpoints"):
            for verb in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER {table}_no_{verb}"))
    else:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))


def _row(conn: Connection, seq: int) -> dict[str, object]:
    return dict(
        conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).mappings().one()
    )


def _set(conn: Connection, seq: int, values: dict[str, object]) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(
        text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq_"), {**values, "seq_": seq}
    )


def _mutated(field: str, value: object, rng: random.Random) -> object:
    if field in ("before", "after"):
        return canonical_json({"state": "production", "forged": rng.random()})
    if field in ("prev_hash", "hash"):
        return f"{rng.getrandbits(256):064x}"
    return f"{value}X" if value else "X"


def _tamper(conn: Connection, kind: str, rng: random.Random) -> set[int]:
    """Apply one tampering; return the sequence numbers where detection may point."""
    if kind == "edit":
        seq = rng.randint(1, N_EVENTS)
        field = rng.choice(FIELDS)
        original = _row(conn, seq)[field]
        _set(conn, seq, {field: _mutated(field, original, rng)})
        return {seq, seq + 1}
    if kind == "delete":
        seq = rng.randint(1, N_EVENTS)
        conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
        return {seq}
    if kind == "insert":
        after = rng.randint(1, N_EVENTS - 1)
        conn.execute(
            text("UPDATE audit_events SET seq = seq + 100000 WHERE seq > :a"), {"a": after}
        )
        conn.execute(text("UPDATE audit_events SET seq = seq - 99999 WHERE seq > 100000"))
        prev = _row(conn, after)
        # A careful forger chains the inserted event to its predecessor and re-points the
        # successor at it; only the successor's own hash can give the insertion away.
        forged = AuditEvent(
            seq=after + 1,
            occurred_at=str(prev["occurred_at"]),
            actor="mallory",
            action="signature.signed",
            subject_type="version",
            subject_id="sepsis@1",
            before=None,
            after={"meaning": "approved"},
            reason="",
            prev_hash=str(prev["hash"]),
            hash="",
        )
        forged_hash = compute_hash(forged)
        _set(conn, after + 2, {"prev_hash": forged_hash})
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, occurred_at, actor, action, subject_type, "
                "subject_id, before, after, reason, prev_hash, hash) VALUES (:seq, "
                ":occurred_at, :actor, :action, :subject_type, :subject_id, NULL, :after, "
                ":reason, :prev_hash, :hash)"
            ),
            {
                "seq": forged.seq,
                "occurred_at": forged.occurred_at,
                "actor": forged.actor,
                "action": forged.action,
                "subject_type": forged.subject_type,
                "subject_id": forged.subject_id,
                "after": canonical_json(forged.after),
                "reason": "",
                "prev_hash": forged.prev_hash,
                "hash": forged_hash,
            },
        )
        return {after + 2}
    if kind == "swap":
        i, j = sorted(rng.sample(range(1, N_EVENTS + 1), 2))
        a, b = _row(conn, i), _row(conn, j)
        content = [f for f in FIELDS if f not in ("prev_hash", "hash")]
        # Move the hashes too, and avoid the unique constraints while doing it.
        _set(conn, i, {"prev_hash": "1" * 64, "hash": "2" * 64})
        _set(
            conn, j, {**{f: a[f] for f in content}, "prev_hash": a["prev_hash"], "hash": a["hash"]}
        )
        _set(
            conn, i, {**{f: b[f] for f in content}, "prev_hash": b["prev_hash"], "hash": b["hash"]}
        )
        return {i}
    if kind == "truncate":
        keep = rng.randint(0, N_EVENTS - 1)
        conn.execute(text("DELETE FROM audit_events WHERE seq > :k"), {"k": keep})
        return {keep + 1, 30, N_EVENTS}
    if kind == "rewrite":
        # Edit an event and recompute every hash after it: only a checkpoint can catch this.
        seq = rng.randint(1, N_EVENTS)
        _set(conn, seq, {"reason": "nothing to see here"})
        rows = (
            conn.execute(
                text("SELECT * FROM audit_events WHERE seq >= :s ORDER BY seq"), {"s": seq}
            )
            .mappings()
            .all()
        )
        prev_hash = str(_row(conn, seq - 1)["hash"]) if seq > 1 else "0" * 64
        for row in rows:
            event = AuditEvent(
                seq=row["seq"],
                occurred_at=row["occurred_at"],
                actor=row["actor"],
                action=row["action"],
                subject_type=row["subject_type"],
                subject_id=row["subject_id"],
                before=None if row["before"] is None else json.loads(row["before"]),
                after=None if row["after"] is None else json.loads(row["after"]),
                reason=row["reason"],
                prev_hash=prev_hash,
                hash="",
            )
            new_hash = compute_hash(event)
            _set(conn, row["seq"], {"prev_hash": prev_hash, "hash": new_hash})
            prev_hash = new_hash
        return {30, N_EVENTS} if seq <= 30 else {N_EVENTS}
    raise AssertionError(kind)


def _verify(conn: Connection):  # type: ignore[no-untyped-def]
    log = AuditLog(conn)
    return verify_chain(log.iter_events(), log.list_checkpoints())


def test_untampered_ledger_verifies(database: Database) -> None:
    _fill(database)
    with database.read() as conn:
        result = _verify(conn)
    assert result.ok, result.describe()
    assert result.events_checked == N_EVENTS
    assert result.checkpoints_checked == 2


@pytest.mark.slow
def test_every_random_tampering_is_detected(database: Database) -> None:
    _fill(database)
    rng = random.Random(20261130)
    kinds = ["edit", "delete", "insert", "swap", "truncate", "rewrite"]
    seen: dict[str, int] = dict.fromkeys(kinds, 0)
    for trial in range(TRIALS):
        kind = kinds[trial % len(kinds)]
        conn = database.engine.connect()
        tx = conn.begin()
        try:
            _disable_triggers(conn)
            where = _tamper(conn, kind, rng)
            result = _verify(conn)
            assert not result.ok, f"trial {trial}: {kind} went undetected"
            assert result.broken_at in where, (trial, kind, where, result.describe())
            seen[kind] += 1
        finally:
            tx.rollback()
            conn.close()
    assert all(count >= TRIALS // len(kinds) for count in seen.values()), seen
    with database.read() as conn:  # every tampering was rolled back: the ledger is whole again
        assert _verify(conn).ok
