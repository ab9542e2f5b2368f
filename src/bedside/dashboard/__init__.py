"""The governance dashboard: server-rendered pages under ``/ui`` of the prediction server.

``mount_dashboard(app, platform)`` adds the pages, the actions and the vendored static files to a
FastAPI app (``bedside serve`` does it). Reviewers, engineers, auditors and admins sign in with
the same users and roles as the CLI; every page and action is checked server side
(:data:`PAGE_PERMISSIONS`), every action goes through :class:`~bedside.service.Platform`, and no
page shows patient-level rows. See docs/dashboard.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from bedside.dashboard.permissions import PAGE_PERMISSIONS
from bedside.service import Platform

STATIC_DIR = Path(__file__).resolve().parent / "static"

__all__ = ["PAGE_PERMISSIONS", "STATIC_DIR", "mount_dashboard"]


def mount_dashboard(app: FastAPI, platform: Platform) -> None:
    """Add the dashboard (``/ui/…`` pages and actions, ``/ui/static``) to ``app``."""
    from bedside.dashboard.routes import build_router

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.include_router(build_router(platform))
