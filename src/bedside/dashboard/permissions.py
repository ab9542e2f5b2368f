"""Which permission each dashboard page and action needs (checked server side, every request).

Keys are route patterns under ``/ui``; a pattern serves GET (a page) or POST (an action) or both.
``None``: no permission beyond being signed in (or, for sign-in itself, none at all). Pages are
checked through ``Platform._authorised`` (a refusal is recorded in the ledger); actions are
checked by the Platform method they call. The sign action needs ``signature.review`` for the
meanings approved/rejected and ``signature.responsibility`` for reviewed/responsibility.
"""

from __future__ import annotations

from typing import Final

from bedside.domain.permissions import Permission

_V: Final = "/ui/versions/{name}/{number}"

PAGE_PERMISSIONS: Final[dict[str, Permission | None]] = {
    "/ui/login": None,
    "/ui/logout": None,
    "/ui/": Permission.READ_METRICS,
    "/ui/models/{name}": Permission.READ_METRICS,
    "/ui/models/{name}/rollback": Permission.ROLLBACK,
    "/ui/models/{name}/monitoring": Permission.READ_METRICS,
    _V: Permission.READ_METRICS,
    f"{_V}/validate": Permission.VALIDATE_VERSION,
    f"{_V}/deploy-shadow": Permission.DEPLOY,
    f"{_V}/promote": Permission.PROMOTE,
    f"{_V}/retire": Permission.RETIRE,
    f"{_V}/review": Permission.READ_METRICS,
    f"{_V}/threshold": Permission.SIGN_REVIEW,
    f"{_V}/sign": Permission.SIGN_RESPONSIBILITY,
    f"{_V}/report": Permission.READ_METRICS,
    f"{_V}/documents/{{kind}}": Permission.READ_METRICS,
    "/ui/audit": Permission.READ_AUDIT,
    "/ui/audit/verify": Permission.READ_AUDIT,
    "/ui/admin/users": Permission.MANAGE_USERS,
    "/ui/admin/users/{username}/grant": Permission.MANAGE_USERS,
    "/ui/admin/users/{username}/revoke": Permission.MANAGE_USERS,
    "/ui/admin/users/{username}/disable": Permission.MANAGE_USERS,
    "/ui/admin/users/{username}/enable": Permission.MANAGE_USERS,
}
