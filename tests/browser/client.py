"""A scripted dashboard user over plain HTTP (httpx): sign in, read the CSRF token, forge POSTs.

The permission matrix uses it to send well-formed requests that the pages would never offer the
user (a button hidden from a role is still a URL anyone can POST to).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """Return the first CSRF token in a page's forms."""
    found = _CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


class DashboardClient:
    """One person's session with the dashboard (or an anonymous one, before :meth:`login`)."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
        self.csrf = ""

    def login(self, username: str, password: str) -> httpx.Response:
        form = self.http.get("/ui/login")
        response = self.http.post(
            "/ui/login",
            data={
                "csrf_token": csrf_in(form.text),
                "next": "/ui/",
                "username": username,
                "password": password,
            },
        )
        if response.status_code == 303:
            self.csrf = csrf_in(self.http.get("/ui/").text)
        return response

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, data: dict[str, Any], *, csrf: str | None = None) -> httpx.Response:
        """POST ``data`` with this session's CSRF token (or ``csrf`` when given; '' for none)."""
        token = self.csrf if csrf is None else csrf
        body = {**data, "csrf_token": token} if token else dict(data)
        return self.http.post(path, data=body)

    def close(self) -> None:
        self.http.close()
