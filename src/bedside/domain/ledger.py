"""The audit ledger's hash chain: how an event is hashed and how a chain is verified.

Each event's hash is the SHA-256 of the canonical JSON of all its fields, including its sequence
number and the previous event's hash. Editing, deleting, inserting or reordering any event breaks
the chain at that point; truncating the tail is caught against a recorded checkpoint (a head
sequence number and hash kept where the database's users cannot change it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bedside.domain.canonical import sha256_hex
from bedside.domain.models import AuditEvent, Checkpoint, EventDraft

GENESIS_HASH = "0" * 64


def event_payload(
    *,
    seq: int,
    occurred_at: str,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str,
    prev_hash: str,
) -> dict[str, Any]:
    """Return the mapping whose canonical encoding an event's hash covers."""
    return {
        "seq": seq,
        "occurred_at": occurred_at,
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "before": before,
        "after": after,
        "reason": reason,
        "prev_hash": prev_hash,
    }


def chain_event(draft: EventDraft, *, seq: int, occurred_at: str, prev_hash: str) -> AuditEvent:
    """Place ``draft`` in the chain after an event with hash ``prev_hash``."""
    payload = event_payload(
        seq=seq,
        occurred_at=occurred_at,
        actor=draft.actor,
        action=draft.action,
        subject_type=draft.subject_type,
        subject_id=draft.subject_id,
        before=draft.before,
        after=draft.after,
        reason=draft.reason,
        prev_hash=prev_hash,
    )
    return AuditEvent(hash=sha256_hex(payload), **payload)


def compute_hash(event: AuditEvent) -> str:
    """Recompute an event's hash from its fields."""
    return sha256_hex(
        event_payload(
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            before=event.before,
            after=event.after,
            reason=event.reason,
            prev_hash=event.prev_hash,
        )
    )


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of verifying the ledger: ok, or the first broken link and why."""

    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    problem: str = ""
    checkpoints_checked: int = 0

    def describe(self) -> str:
        """Return a one-line human description."""
        if self.ok:
            return (
                f"ledger intact: {self.events_checked} events, head #{self.head_seq} "
                f"{self.head_hash[:16]}…, {self.checkpoints_checked} checkpoint(s) matched"
            )
        return f"ledger BROKEN at event #{self.broken_at}: {self.problem}"


def verify_chain(
    events: Iterable[AuditEvent], checkpoints: Sequence[Checkpoint] = ()
) -> VerifyResult:
    """Verify a ledger read in ``seq`` order; report the first broken link.

    Args:
        events: every event, ordered by ``seq`` ascending (as stored).
        checkpoints: recorded heads the ledger must still contain, unchanged.
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    hash_at: dict[int, str] = {}
    wanted = {c.seq for c in checkpoints}
    count = 0
    for event in events:
        count += 1
        if event.seq != expected_seq:
            kind = "missing" if event.seq > expected_seq else "duplicated or out of order"
            return _broken(
                count - 1,
                prev_hash,
                expected_seq,
                f"expected event #{expected_seq}, found #{event.seq} (an event is {kind})",
            )
        if event.prev_hash != prev_hash:
            return _broken(
                count - 1,
                prev_hash,
                event.seq,
                "its prev_hash does not match the previous event's hash "
                "(an event before it was changed, removed, inserted or moved)",
            )
        recomputed = compute_hash(event)
        if recomputed != event.hash:
            return _broken(
                count - 1,
                prev_hash,
                event.seq,
                "its stored hash does not match its content (the event was edited)",
            )
        if event.seq in wanted:
            hash_at[event.seq] = event.hash
        prev_hash = event.hash
        expected_seq += 1
    head_seq = expected_seq - 1
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if cp.seq > head_seq:
            return VerifyResult(
                False,
                count,
                head_seq,
                prev_hash,
                broken_at=head_seq + 1,
                problem=f"checkpoint #{cp.seq} recorded at {cp.recorded_at} is "
                f"beyond the ledger's end (#{head_seq}): events were removed "
                "from the tail",
            )
        if hash_at.get(cp.seq) != cp.hash:
            return VerifyResult(
                False,
                count,
                head_seq,
                prev_hash,
                broken_at=cp.seq,
                problem=f"event #{cp.seq} no longer has the hash recorded by "
                f"the checkpoint of {cp.recorded_at} (the chain was rewritten)",
            )
    return VerifyResult(True, count, head_seq, prev_hash, checkpoints_checked=len(checkpoints))


def _broken(checked: int, prev_hash: str, seq: int, problem: str) -> VerifyResult:
    return VerifyResult(False, checked, seq - 1, prev_hash, broken_at=seq, problem=problem)
