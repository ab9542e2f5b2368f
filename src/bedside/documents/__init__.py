"""Regulatory documents generated from the record of a model version (``bedside docs``).

Kinds: ``model-card`` (Mitchell et al.), ``chai`` (CHAI Applied Model Card v0.2, XML + HTML),
``hti1`` (ONC HTI-1, 31 source attributes), ``pccp`` (FDA PCCP skeleton), ``tripod-ai``
(TRIPOD+AI items) and ``eu-ai-act`` (Annex IV headings). See ``docs/documents.md``.
"""

from __future__ import annotations

from bedside.documents.issue import FORMATS, KINDS, Issued, issue_documents, render_document

__all__ = ["FORMATS", "KINDS", "Issued", "issue_documents", "render_document"]
