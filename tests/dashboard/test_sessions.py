"""Session cookies, CSRF tokens and the permission matrix, without a server."""

from __future__ import annotations

from fastapi import FastAPI

from bedside.dashboard import PAGE_PERMISSIONS, mount_dashboard
from bedside.dashboard.routes import build_router
from bedside.dashboard.sessions import IDLE_TIMEOUT_SECONDS, SessionKeys
from bedside.service import Platform
from tests.support import REPO

KEY = b"k" * 32


def test_mounting_adds_the_static_files(platform: Platform) -> None:
    app = FastAPI()
    mount_dashboard(app, platform)
    assert "/ui/static" in {getattr(route, "path", "") for route in app.routes}


def test_a_sealed_cookie_opens_until_it_is_idle_too_long() -> None:
    keys = SessionKeys(KEY)
    value = keys.seal("bs_token", now=1_000_000)
    opened = keys.open(value, now=1_000_000 + IDLE_TIMEOUT_SECONDS - 1)
    assert opened is not None and opened.token == "bs_token"
    assert keys.open(value, now=1_000_000 + IDLE_TIMEOUT_SECONDS + 1) is None
    assert keys.is_idle(value, now=1_000_000 + IDLE_TIMEOUT_SECONDS + 1) == "bs_token"
    assert keys.is_idle(value, now=1_000_000 + 5) is None


def test_a_cookie_with_a_moved_time_or_another_key_does_not_open() -> None:
    keys = SessionKeys(KEY)
    token, stamp, mac = keys.seal("bs_token", now=1_000_000).split("|")
    assert keys.open(f"{token}|{int(stamp) + 600}|{mac}", now=1_000_600) is None
    assert keys.open(f"bs_other|{stamp}|{mac}", now=1_000_000) is None
    assert SessionKeys(b"x" * 32).open(keys.seal("bs_token", now=1_000_000), now=1_000_000) is None
    for junk in ("", "a|b", "a|b|c", "a|1|2|3", None):
        assert keys.open(junk) is None


def test_csrf_tokens_are_per_session_and_checked_exactly() -> None:
    keys = SessionKeys(KEY)
    token = keys.csrf_token("bs_one")
    assert keys.check_csrf("bs_one", token)
    assert not keys.check_csrf("bs_two", token)
    assert not keys.check_csrf("bs_one", token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not keys.check_csrf("bs_one", None) and not keys.check_csrf("bs_one", "")


def test_every_dashboard_route_has_a_permission_and_is_documented(platform: Platform) -> None:
    paths = {getattr(route, "path", "") for route in build_router(platform).routes}
    served = paths - {"/ui/{rest:path}", "/ui/versions/{name}/{number}/report/raw"}
    assert served == set(PAGE_PERMISSIONS)
    docs = (REPO / "docs" / "dashboard.md").read_text(encoding="utf-8")
    for pattern, permission in PAGE_PERMISSIONS.items():
        assert f"`{pattern}`" in docs, pattern
        assert (permission.value if permission else "signed in") in docs
