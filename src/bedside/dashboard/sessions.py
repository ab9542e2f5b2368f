"""Dashboard sessions and CSRF tokens.

A session is an API token of the signed-in user (``Platform.create_token``), so it is stored
hashed on the server, resolved with ``Platform.authenticate_token`` on every request (a disabled
or locked user is out at once) and revoked at sign-out. The cookie carries the token, the time of
the last request and an HMAC of both under a key derived from the project's signing key: the
idle timeout (30 minutes) holds in every worker process without shared memory, and the time
cannot be pushed forward by the browser.

The CSRF token of a session is an HMAC of its API token under a second derived key; every POST
form carries it and every POST checks it (constant-time).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Final

COOKIE_NAME: Final = "bedside_session"
COOKIE_PATH: Final = "/ui"
IDLE_TIMEOUT_SECONDS: Final = 30 * 60


def _derive(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, f"bedside-dashboard:{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """What a valid cookie says: the API token and when the session was last used."""

    token: str
    last_seen: int


class SessionKeys:
    """Seal and open session cookies; make and check CSRF tokens."""

    def __init__(self, signing_key: bytes, *, idle_timeout: int = IDLE_TIMEOUT_SECONDS) -> None:
        self._cookie_key = _derive(signing_key, "session-cookie")
        self._csrf_key = _derive(signing_key, "csrf")
        self.idle_timeout = idle_timeout

    def _mac(self, token: str, last_seen: int) -> str:
        message = f"{token}|{last_seen}".encode()
        return hmac.new(self._cookie_key, message, hashlib.sha256).hexdigest()

    def seal(self, token: str, *, now: float | None = None) -> str:
        """Return the cookie value for ``token``, used now."""
        stamp = int(time.time() if now is None else now)
        return f"{token}|{stamp}|{self._mac(token, stamp)}"

    def open(self, value: str | None, *, now: float | None = None) -> SessionCookie | None:
        """Return the session a cookie holds, or None (absent, forged or idle too long)."""
        if not value or value.count("|") != 2:
            return None
        token, stamp_text, mac = value.split("|")
        if not stamp_text.isdigit():
            return None
        stamp = int(stamp_text)
        if not hmac.compare_digest(mac, self._mac(token, stamp)):
            return None
        moment = time.time() if now is None else now
        if moment - stamp > self.idle_timeout or stamp - moment > 60:
            return None
        return SessionCookie(token, stamp)

    def is_idle(self, value: str | None, *, now: float | None = None) -> str | None:
        """Return the token of a genuine cookie whose session timed out (to revoke), else None."""
        if not value or value.count("|") != 2:
            return None
        token, stamp_text, mac = value.split("|")
        if not stamp_text.isdigit() or not hmac.compare_digest(
            mac, self._mac(token, int(stamp_text))
        ):
            return None
        moment = time.time() if now is None else now
        return token if moment - int(stamp_text) > self.idle_timeout else None

    def csrf_token(self, token: str) -> str:
        """Return the CSRF token of the session holding API token ``token``."""
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, token: str, submitted: str | None) -> bool:
        """Return whether ``submitted`` is the CSRF token of the session ``token``."""
        return bool(submitted) and hmac.compare_digest(self.csrf_token(token), str(submitted))
