"""The audit ledger store: append hash-chained events in the caller's transaction; read them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

from bedside.domain.canonical import canonical_json
from bedside.domain.ledger import GENESIS_HASH, chain_event
from bedside.domain.models import AuditEvent, Checkpoint, EventDraft
from bedside.stores.tables import audit_checkpoints, audit_events, to_checkpoint, to_event

# Any constant works; it names the lock that serialises appends on PostgreSQL.
_LEDGER_LOCK_KEY = 0x62656473  # "beds"


def format_time(moment: datetime) -> str:
    """Format a server time for the ledger: ISO 8601, UTC, microseconds, ``Z``.

    Raises:
        ValueError: ``moment`` is naive (server times are always timezone-aware).
    """
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dump(value: object) -> str | None:
    return None if value is None else canonical_json(value)


class AuditLog:
    """The ledger, bound to one open connection (and so to its transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def head(self) -> tuple[int, str]:
        """Return the last event's sequence number and hash (``0`` and the genesis hash if none)."""
        row = self._conn.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).first()
        return (0, GENESIS_HASH) if row is None else (row.seq, row.hash)

    def append(self, draft: EventDraft, *, now: datetime) -> AuditEvent:
        """Append ``draft`` after the current head, in the caller's transaction."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK_KEY})
        seq, prev_hash = self.head()
        event = chain_event(draft, seq=seq + 1, occurred_at=format_time(now), prev_hash=prev_hash)
        self._conn.execute(
            insert(audit_events).values(
                seq=event.seq,
                occurred_at=event.occurred_at,
                actor=event.actor,
                action=event.action,
                subject_type=event.subject_type,
                subject_id=event.subject_id,
                before=_dump(event.before),
                after=_dump(event.after),
                reason=event.reason,
                prev_hash=event.prev_hash,
                hash=event.hash,
            )
        )
        return event

    def count(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(audit_events)).scalar_one())

    def iter_events(self, *, batch: int = 5000) -> Iterator[AuditEvent]:
        """Yield every event in ``seq`` order, reading in batches."""
        last = -1
        while True:
            rows = (
                self._conn.execute(
                    select(audit_events)
                    .where(audit_events.c.seq > last)
                    .order_by(audit_events.c.seq)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
            if not rows:
                return
            for row in rows:
                yield to_event(row)
            last = rows[-1]["seq"]

    def list_events(
        self,
        *,
        subject_type: str | None = None,
        subject_id: str | None = None,
        action_prefix: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Return events (oldest first), optionally filtered."""
        query = select(audit_events).order_by(audit_events.c.seq)
        if subject_type is not None:
            query = query.where(audit_events.c.subject_type == subject_type)
        if subject_id is not None:
            query = query.where(audit_events.c.subject_id == subject_id)
        if action_prefix is not None:
            query = query.where(audit_events.c.action.startswith(action_prefix))
        if limit is not None:
            query = query.limit(limit)
        return [to_event(r) for r in self._conn.execute(query).mappings()]

    def add_checkpoint(self, *, actor: str, now: datetime) -> Checkpoint:
        """Record the current head as a checkpoint."""
        seq, head_hash = self.head()
        cp = Checkpoint(seq=seq, hash=head_hash, recorded_at=format_time(now), recorded_by=actor)
        self._conn.execute(
            insert(audit_checkpoints).values(
                seq=cp.seq, hash=cp.hash, recorded_at=cp.recorded_at, recorded_by=cp.recorded_by
            )
        )
        return cp

    def list_checkpoints(self) -> list[Checkpoint]:
        rows = self._conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id))
        return [to_checkpoint(r) for r in rows.mappings()]
