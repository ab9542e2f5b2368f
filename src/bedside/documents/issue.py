"""Render and issue regulatory documents for a model version; record each issued file's hash.

:func:`render_document` returns one document as text (for the dashboard);
:func:`issue_documents` writes the chosen kinds under ``<home>/documents/<model>/<version>/``
(or another folder) and appends a ``document.issued`` ledger event per file with its SHA-256,
so anyone can later check that a document they hold is the one bedside issued.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bedside.documents import chai, eu_ai_act, hti1, model_card, pccp, tripod
from bedside.documents.document import Document, render_html, render_markdown
from bedside.documents.evidence import Evidence, gather_evidence
from bedside.domain.models import User
from bedside.domain.permissions import Permission
from bedside.domain.signatures import verify_signature
from bedside.errors import InvalidInput

if TYPE_CHECKING:
    from bedside.service import Platform

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "KINDS", "Issued", "issue_documents", "render_document"]

#: Each kind and the function building it from evidence.
BUILDERS: Final[dict[str, Callable[[Evidence], Document]]] = {
    "model-card": model_card.build,
    "chai": chai.build,
    "hti1": hti1.build,
    "pccp": pccp.build,
    "tripod-ai": tripod.build,
    "eu-ai-act": eu_ai_act.build,
}
KINDS: Final = tuple(BUILDERS)
#: The formats every kind is issued in; the CHAI card is also issued as XML.
FORMATS: Final = ("md", "html")
EXTRA_FORMATS: Final = {"chai": ("xml",)}
_EXTENSIONS: Final = {"md": "md", "html": "html", "xml": "xml"}


@dataclass(frozen=True, slots=True)
class Issued:
    """One issued document file and the SHA-256 recorded for it in the ledger."""

    kind: str
    format: str
    path: Path
    sha256: str
    ledger_seq: int


def parse_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Return the kinds named (``all`` means every kind), in the order of :data:`KINDS`.

    Raises:
        InvalidInput: an unknown kind; the message lists the valid ones.
    """
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    wanted: set[str] = set()
    for name in names:
        for part in str(name).split(","):
            part = part.strip().lower()
            if part == "all":
                wanted.update(KINDS)
            elif part in BUILDERS:
                wanted.add(part)
            else:
                raise InvalidInput(
                    f"Unknown document kind {part!r}. Valid kinds: {', '.join(KINDS)}, all. "
                    "Example: bedside docs sepsis-prediction@1 --kind hti1"
                )
    if not wanted:
        raise InvalidInput(f"No document kind given. Valid kinds: {', '.join(KINDS)}, all.")
    return tuple(k for k in KINDS if k in wanted)


def load_evidence(platform: Platform, actor: User, ref: str) -> Evidence:
    """Gather the evidence of ``ref`` for ``actor`` (who needs ``metrics.read``).

    Raises:
        InvalidInput: ``ref`` is not ``name@version``.
        NotFound: no such model or version.
        PermissionDenied: ``actor`` may not read metrics (the refusal is recorded).
    """
    from bedside.service import parse_ref

    name, number = parse_ref(ref)
    with platform._authorised(actor, Permission.READ_METRICS, "version", ref) as tx:
        version = tx.registry.get_version(name, number)
        record = (
            tx.registry.find_pipeline(version.pipeline_sha256) if version.pipeline_sha256 else None
        )
        key = platform.keys.signing_key()
        signatures = [
            (s, verify_signature(key, s, version)) for s in tx.registry.list_signatures(version)
        ]
        version_events = tx.audit.list_events(subject_type="version", subject_id=version.ref)
        model_events = tx.audit.list_events(
            subject_type="model", subject_id=name, action_prefix="monitoring."
        )
    return gather_evidence(
        version=version,
        pipeline_content=record.content if record is not None else None,
        signatures=signatures,
        version_events=version_events,
        model_events=model_events,
        artifacts_root=platform.artifacts_root,
        generated_at=platform.now(),
    )


def _render(evidence: Evidence, kind: str, fmt: str) -> str:
    if fmt == "xml":
        if kind != "chai":
            raise InvalidInput(
                f"Only the chai kind has an XML form; {kind!r} is issued as md or html."
            )
        text = chai.build_xml(evidence)
        chai.validate_xml(text)
        return text
    document = BUILDERS[kind](evidence)
    if fmt == "md":
        return render_markdown(document)
    if fmt == "html":
        return render_html(document)
    raise InvalidInput(f"Unknown document format {fmt!r}. Valid formats: md, html, xml (chai).")


def render_document(platform: Platform, actor: User, ref: str, kind: str, fmt: str) -> str:
    """Return document ``kind`` of ``ref`` as text in ``fmt`` (``md``, ``html``; ``xml`` for chai).

    Nothing is written and nothing is recorded; use :func:`issue_documents` to issue.

    Raises:
        InvalidInput: unknown kind or format, or a malformed ``ref``.
        NotFound: no such version.
        PermissionDenied: ``actor`` may not read metrics.
    """
    (kind,) = parse_kinds(kind) if kind != "all" else ("all",)
    if kind == "all":
        raise InvalidInput(f"Render one kind at a time; valid kinds: {', '.join(KINDS)}.")
    return _render(load_evidence(platform, actor, ref), kind, fmt)


def issue_documents(
    platform: Platform,
    actor: User,
    ref: str,
    kinds: str | Sequence[str],
    *,
    out_dir: Path | None = None,
) -> list[Issued]:
    """Write documents of ``kinds`` for ``ref`` and record each file's SHA-256 in the ledger.

    Args:
        platform: the project.
        actor: who issues (needs ``metrics.read``).
        ref: ``name@version``.
        kinds: one kind, several, a comma-separated list, or ``all``.
        out_dir: where to write; default ``<home>/documents/<model>/<version>/``.

    Returns:
        One :class:`Issued` per file (Markdown and HTML per kind; the CHAI card also as XML).

    Raises:
        InvalidInput: unknown kind, malformed ref, or no folder to write to.
        NotFound: no such version.
        PermissionDenied: ``actor`` may not read metrics (the refusal is recorded).
    """
    wanted = parse_kinds(kinds)
    evidence = load_evidence(platform, actor, ref)
    if out_dir is None:
        if platform.home is None:
            raise InvalidInput(
                "This platform has no home folder to write documents to; pass --out DIR."
            )
        out_dir = Path(platform.home) / "documents" / evidence.model_name / str(evidence.version)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot create the document folder {out_dir}: {exc.strerror}. Choose another "
            "with --out DIR."
        ) from None
    from bedside.reports._files import write_text_atomically

    written: list[tuple[str, str, Path, str]] = []
    for kind in wanted:
        for fmt in FORMATS + EXTRA_FORMATS.get(kind, ()):
            text = _render(evidence, kind, fmt)
            path = out_dir / f"{evidence.model_name}-{evidence.version}-{kind}.{_EXTENSIONS[fmt]}"
            write_text_atomically(path, text)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            written.append((kind, fmt, path, digest))
    issued = []
    with platform._tx() as tx:
        for kind, fmt, path, digest in written:
            event = platform._event(
                tx,
                actor.username,
                "document.issued",
                "version",
                evidence.ref,
                after={"kind": kind, "format": fmt, "sha256": digest, "path": str(path)},
            )
            issued.append(Issued(kind, fmt, path, digest, event.seq))
    logger.info("issued %d document file(s) for %s", len(issued), evidence.ref)
    return issued
