"""Every role (and an anonymous client) × every dashboard page and action, checked server side.

Each action is forged as a well-formed request — a valid session cookie and CSRF token, the form
fields the page would send — whether or not the page offers the button to that role. The test
walks version 1 through its lifecycle so that every forbidden attempt is made while the action
would otherwise succeed (validate a candidate, sign a validated version, deploy an approved one,
promote after the shadow period and the promotion signature …). For each cell it asserts:

* allowed ⇔ the role's kind has the permission (``KIND_PERMISSIONS``) that the page or action
  needs (``PAGE_PERMISSIONS``, cross-checked against this file's own table for the sensitive
  actions: sign, threshold, deploy, promote, rollback, retire and user administration);
* a forbidden action answers 403, changes nothing (versions, signatures, users — read back from
  the database) and leaves a refusal in the audit ledger; a forbidden page answers the 403
  "Not permitted" page and is recorded in the ledger too;
* anonymous pages redirect to sign-in; anonymous and CSRF-less POSTs answer 403 and do nothing.

The matrix is printed and written next to the screenshots (permission-matrix.txt).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bedside.dashboard import PAGE_PERMISSIONS
from bedside.domain.models import VersionState
from bedside.domain.permissions import KIND_PERMISSIONS, Permission, RoleKind
from bedside.stores.snapshots import find_snapshot, read_snapshot
from tests.browser.client import DashboardClient
from tests.browser.conftest import SCREENSHOTS, Server
from tests.browser.project import MODEL, PEOPLE, REF, TARGET
from tests.support import PASSWORD

P = Permission
V = f"/ui/versions/{MODEL}/1"
VP = "/ui/versions/{name}/{number}"
ANONYMOUS = "anonymous"
ROLES = [ANONYMOUS, *PEOPLE]

#: This test's own expectations for the sensitive actions (independent of PAGE_PERMISSIONS).
SENSITIVE: dict[str, Permission] = {
    f"{VP}/sign": P.SIGN_REVIEW,  # meaning "approved": signature.review (Part 11 approvers)
    f"{VP}/threshold": P.SIGN_REVIEW,
    f"{VP}/deploy-shadow": P.DEPLOY,
    f"{VP}/promote": P.PROMOTE,
    f"{VP}/retire": P.RETIRE,
    "/ui/models/{name}/rollback": P.ROLLBACK,
    "/ui/admin/users": P.MANAGE_USERS,
    "/ui/admin/users/{username}/grant": P.MANAGE_USERS,
    "/ui/admin/users/{username}/revoke": P.MANAGE_USERS,
    "/ui/admin/users/{username}/disable": P.MANAGE_USERS,
    "/ui/admin/users/{username}/enable": P.MANAGE_USERS,
    "/ui/audit": P.READ_AUDIT,
}

PAGES: dict[str, tuple[str, str]] = {  # label: (path, route pattern)
    "GET inventory": ("/ui/", "/ui/"),
    "GET model": (f"/ui/models/{MODEL}", "/ui/models/{name}"),
    "GET monitoring": (f"/ui/models/{MODEL}/monitoring", "/ui/models/{name}/monitoring"),
    "GET version": (V, VP),
    "GET review": (f"{V}/review", f"{VP}/review"),
    "GET report": (f"{V}/report", f"{VP}/report"),
    "GET report (raw)": (f"{V}/report/raw", f"{VP}/report"),
    "GET audit": ("/ui/audit", "/ui/audit"),
    "GET users": ("/ui/admin/users", "/ui/admin/users"),
}


def needed(pattern: str) -> Permission | None:
    """The permission a route needs: this file's table for sensitive routes, else the map's."""
    return SENSITIVE.get(pattern, PAGE_PERMISSIONS[pattern])


def may(role: str, permission: Permission | None) -> bool:
    if role == ANONYMOUS:
        return False
    return permission is None or permission in KIND_PERMISSIONS[RoleKind(PEOPLE[role].kind)]


@dataclass
class Cell:
    expected: bool
    status: int
    problem: str = ""


class Matrix:
    """The observed and expected outcome of every (role, page or action)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], Cell] = {}
        self.columns: list[str] = []

    def put(self, role: str, column: str, cell: Cell) -> None:
        if column not in self.columns:
            self.columns.append(column)
        self.cells[(role, column)] = cell

    def problems(self) -> list[str]:
        return [
            f"{role} × {column}: {cell.problem}"
            for (role, column), cell in self.cells.items()
            if cell.problem
        ]

    def unauthorised_successes(self) -> int:
        return sum(
            1 for cell in self.cells.values() if not cell.expected and "NOT REFUSED" in cell.problem
        )

    def render(self) -> str:
        width = max(len(c) for c in self.columns)
        lines = [
            "Each cell: what the role's permissions say (allow/deny), then the HTTP status the "
            "server answered; !! marks a cell that broke a rule (see the test's failures).",
            " " * width + " | " + " | ".join(f"{r:^13}" for r in ROLES),
        ]
        for column in self.columns:
            row = []
            for role in ROLES:
                cell = self.cells.get((role, column))
                if cell is None:
                    row.append(f"{'':^13}")
                    continue
                mark = ("allow" if cell.expected else "deny") + f" {cell.status}"
                row.append(f"{mark + (' !!' if cell.problem else ''):^13}")
            lines.append(f"{column:<{width}} | " + " | ".join(row))
        return "\n".join(lines)


class World:
    """What a forbidden action must not change, read back from the project's database."""

    def __init__(self, server: Server) -> None:
        self.platform = server.platform()
        self.admin = self.platform.authenticate("admin", PASSWORD)
        self.auditor = self.platform.authenticate(PEOPLE["auditor"].username, PASSWORD)

    def snapshot(self) -> dict[str, Any]:
        versions = {}
        for status in self.platform.status():
            for row in status.versions:
                version = row.version
                versions[version.ref] = (
                    version.state.value,
                    version.evidence.get("threshold"),
                    len(self.platform.list_signatures(version.ref)),
                )
        users = {
            u.username: (tuple(sorted(u.roles)), u.is_active, u.is_locked)
            for u in self.platform.list_users(self.admin)
        }
        return {"versions": versions, "users": users}

    def refusals(self) -> int:
        return sum(
            1
            for e in self.platform.list_audit_events(self.auditor)
            if e.action.startswith(("denied.", "refused.", "signature.refused"))
        )

    def state(self, ref: str = REF) -> VersionState:
        return VersionState(self.snapshot()["versions"][ref][0])


@pytest.fixture(scope="module")
def server(serve_copy: Any) -> Server:
    return serve_copy("matrix")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def clients(server: Server) -> Iterator[dict[str, DashboardClient]]:
    out = {ANONYMOUS: DashboardClient(server.url, ANONYMOUS)}
    try:
        for key, person in PEOPLE.items():
            out[key] = DashboardClient(server.url, key)
            assert out[key].login(person.username, PASSWORD).status_code == 303, key
        yield out
    finally:
        for client in out.values():
            client.close()


def test_sensitive_expectations_agree_with_the_dashboards_map() -> None:
    """The dashboard's PAGE_PERMISSIONS says what this test expects for the sensitive routes.

    The sign route is listed with the weaker signature.responsibility (it also takes the
    'reviewed' meaning); an approval needs signature.review, which the matrix checks.
    """
    for pattern, permission in SENSITIVE.items():
        if pattern.endswith("/sign"):
            assert PAGE_PERMISSIONS[pattern] in (P.SIGN_RESPONSIBILITY, P.SIGN_REVIEW)
        else:
            assert PAGE_PERMISSIONS[pattern] == permission, pattern
    tested = (
        {pattern for _, pattern in PAGES.values()}
        | set(SENSITIVE)
        | {
            "/ui/login",
            "/ui/logout",
            "/ui/audit/verify",
            f"{VP}/validate",
            f"{VP}/documents/{{kind}}",
        }
    )
    assert set(PAGE_PERMISSIONS) <= tested, set(PAGE_PERMISSIONS) - tested


def test_every_role_on_every_page_and_action(
    server: Server, clients: dict[str, DashboardClient]
) -> None:
    world = World(server)
    matrix = Matrix()

    # -- pages (GET) ---------------------------------------------------------------------------
    pages = dict(PAGES)
    version_page = clients["admin"].get(V).text
    for kind in sorted(set(_document_links(version_page))):
        pages[f"GET document {kind}"] = (f"{V}/documents/{kind}", f"{VP}/documents/{{kind}}")
    served_html: list[str] = []
    for label, (path, pattern) in pages.items():
        for role in ROLES:
            expected = may(role, needed(pattern))
            refusals = world.refusals() if not expected and role != ANONYMOUS else 0
            response = clients[role].get(path)
            served_html.append(response.text)
            cell = Cell(expected, response.status_code)
            if role == ANONYMOUS:
                location = response.headers.get("location", "")
                if response.status_code != 303 or not location.startswith("/ui/login?next="):
                    cell.problem = f"NOT REFUSED: anonymous got {response.status_code}"
            elif expected and response.status_code != 200:
                cell.problem = f"wrongly refused ({response.status_code})"
            elif not expected and response.status_code != 403:
                cell.problem = f"NOT REFUSED: {response.status_code}"
            elif not expected and "<h1>Not permitted</h1>" not in response.text:
                cell.problem = "403 without the 'Not permitted' page"
            elif not expected and world.refusals() <= refusals:
                cell.problem = "refused, but no refusal recorded in the ledger"
            matrix.put(role, label, cell)
    _no_patient_rows(server, served_html)

    # -- actions (POST), walking version 1 through its lifecycle ---------------------------------
    def attempt(
        label: str,
        path: str,
        pattern: str,
        data: dict[str, str],
        performers: list[str],
        *,
        done: Any = None,
    ) -> None:
        """Try ``label`` as every role: the forbidden ones first, then ``performers`` in order.

        ``done`` checks that the first performer's attempt had its effect (so the forbidden
        attempts before it were made while the action was possible).
        """
        permission = needed(pattern)
        allowed = [r for r in ROLES if may(r, permission)]
        assert sorted(allowed) == sorted(performers), (label, allowed, performers)
        for role in [r for r in ROLES if r not in allowed] + performers:
            expected = role in allowed
            before, refusals = world.snapshot(), world.refusals()
            body = dict(data)
            response = clients[role].post(path, body)
            cell = Cell(expected, response.status_code)
            if response.status_code >= 500:
                cell.problem = f"server error {response.status_code}"
            elif expected and response.status_code == 403:
                cell.problem = "wrongly refused (403)"
            elif not expected:
                after = world.snapshot()
                if response.status_code != 403:
                    cell.problem = f"NOT REFUSED: {response.status_code}"
                elif after != before:
                    changed = _diff(before, after)
                    cell.problem = f"NOT REFUSED: 403 but the record changed: {changed}"
                elif role != ANONYMOUS and world.refusals() <= refusals:
                    cell.problem = "refused, but no refusal recorded in the ledger"
            matrix.put(role, label, cell)
            if role == performers[0] and done is not None and not cell.problem:
                problem = done()
                if problem:
                    cell.problem = f"the permitted action had no effect: {problem}"

    def state_is(expected: VersionState) -> Any:
        def check() -> str:
            state = world.state()
            return "" if state is expected else f"{REF} is {state.value}, not {expected.value}"

        return check

    def sign(meaning: str, purpose: str) -> dict[str, str]:
        return {"meaning": meaning, "purpose": purpose, "comment": "", "password": PASSWORD}

    assert world.state() is VersionState.CANDIDATE
    attempt(
        "POST validate",
        f"{V}/validate",
        f"{VP}/validate",
        {},
        ["scientist", "engineer"],
        done=state_is(VersionState.VALIDATED),
    )
    attempt(
        "POST threshold",
        f"{V}/threshold",
        f"{VP}/threshold",
        {"threshold": "0.3"},
        ["informaticist", "cmio"],
        done=lambda: "" if world.snapshot()["versions"][REF][1] == 0.3 else "threshold unchanged",
    )
    attempt(
        "POST sign approval",
        f"{V}/sign",
        f"{VP}/sign",
        sign("approved", "clinical_review"),
        ["cmio", "informaticist"],
        done=lambda: "" if world.snapshot()["versions"][REF][2] == 1 else "no signature",
    )
    assert world.state() is VersionState.APPROVED

    # CSRF: a signed-in engineer's deploy without the form's token, or with someone else's.
    before = world.snapshot()
    for label, token in [("no token", ""), ("another session's token", clients["cmio"].csrf)]:
        response = clients["engineer"].post(f"{V}/deploy-shadow", {}, csrf=token)
        cell = Cell(False, response.status_code)
        if response.status_code != 403 or world.snapshot() != before:
            cell.problem = f"NOT REFUSED: CSRF {label}: {response.status_code}"
        matrix.put("engineer", f"POST deploy ({label})", cell)

    attempt(
        "POST deploy-shadow",
        f"{V}/deploy-shadow",
        f"{VP}/deploy-shadow",
        {},
        ["engineer"],
        done=state_is(VersionState.SHADOW),
    )
    deployed_at = time.monotonic()
    response = clients["cmio"].post(f"{V}/sign", sign("approved", "promotion"))
    assert response.status_code == 303, response.text
    time.sleep(max(0.0, 1.2 - (time.monotonic() - deployed_at)))  # the 1 s shadow period
    attempt(
        "POST promote",
        f"{V}/promote",
        f"{VP}/promote",
        {},
        ["engineer"],
        done=state_is(VersionState.PRODUCTION),
    )
    attempt(
        "POST rollback",
        f"/ui/models/{MODEL}/rollback",
        "/ui/models/{name}/rollback",
        {"reason": "matrix test"},
        ["engineer"],  # permitted, then refused by the lifecycle: no earlier production version
    )
    attempt(
        "POST retire",
        f"{V}/retire",
        f"{VP}/retire",
        {"reason": "matrix test"},
        ["engineer"],
        done=state_is(VersionState.RETIRED),
    )
    everyone = [r for r in ROLES if r != ANONYMOUS]
    attempt("POST audit verify", "/ui/audit/verify", "/ui/audit/verify", {}, everyone)

    # -- user administration ---------------------------------------------------------------------
    def users() -> dict[str, Any]:
        return world.snapshot()["users"]  # type: ignore[no-any-return]

    attempt(
        "POST add user",
        "/ui/admin/users",
        "/ui/admin/users",
        {
            "username": "newbie",
            "full_name": "New Person",
            "password": PASSWORD,
            "roles": "auditor",
        },
        ["admin"],
        done=lambda: "" if "newbie" in users() else "no user created",
    )
    tess = f"/ui/admin/users/{TARGET.username}"
    for slug, data, check in [
        ("grant", {"role": "auditor"}, lambda: "auditor" in users()[TARGET.username][0]),
        ("revoke", {"role": "auditor"}, lambda: "auditor" not in users()[TARGET.username][0]),
        ("disable", {"reason": "matrix test"}, lambda: not users()[TARGET.username][1]),
        ("enable", {"reason": "matrix test"}, lambda: users()[TARGET.username][1]),
    ]:
        attempt(
            f"POST user {slug}",
            f"{tess}/{slug}",
            f"/ui/admin/users/{{username}}/{slug}",
            data,
            ["admin"],
            done=lambda check=check, slug=slug: "" if check() else f"{slug} had no effect",
        )

    # Last: everyone signs out (an anonymous POST is refused).
    attempt("POST sign out", "/ui/logout", "/ui/logout", {}, everyone)
    assert clients["admin"].get("/ui/").status_code == 303  # the session is gone

    text = matrix.render()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "permission-matrix.txt").write_text(text + "\n", encoding="utf-8")
    print("\n" + text)  # noqa: T201 - the matrix is the test's report (pytest -s shows it)
    problems = matrix.problems()
    assert matrix.unauthorised_successes() == 0, "\n".join(problems) + "\n" + text
    assert problems == [], "\n".join(problems) + "\n" + text


def _document_links(html: str) -> list[str]:
    import re

    return re.findall(rf'href="{re.escape(V)}/documents/([^"/?]+)"', html)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    out = []
    for key in before:
        for name in set(before[key]) | set(after[key]):
            if before[key].get(name) != after[key].get(name):
                out.append(f"{key}[{name}]: {before[key].get(name)} → {after[key].get(name)}")
    return "; ".join(out)


def _no_patient_rows(server: Server, pages: list[str]) -> None:
    """No page shows a patient-level row: no pseudonymous patient id of the dataset appears."""
    platform = server.platform()
    version = platform.get_version(REF)
    frame, _ = read_snapshot(
        find_snapshot(platform.artifacts_root, version.evidence["dataset_digest"]), platform.keys
    )
    ids = {str(value)[:16] for value in frame["patient_id"].unique()}
    text = "\n".join(pages)
    leaked = sorted(i for i in ids if i in text)
    assert leaked == [], f"{len(leaked)} patient pseudonyms appear on dashboard pages"
