"""Governance endpoints over HTTP with real tokens: the role × endpoint matrix and the flow.

A real server on 127.0.0.1 with the test platform (SQLite and PostgreSQL). Every refused call is
a 403 (401 without a valid token) that changes nothing and is recorded in the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bedside.domain.models import VersionState
from bedside.service import Platform
from bedside.serving.models import ServedModels
from tests.serving.lifecycle_support import MODEL, approved, validated
from tests.serving.support import RunningServer, running_server
from tests.support import PASSWORD, Clock, Team

GOV = "/v1/governance"
ROLES = ("admin", "scientist", "engineer", "cmio", "informaticist", "auditor", "nobody")


@dataclass
class Gov:
    server: RunningServer
    platform: Platform
    team: Team
    tokens: dict[str, str]
    client: httpx.Client

    def call(
        self, method: str, path: str, who: str | None, json: Any = None, **kw: Any
    ) -> httpx.Response:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, GOV + path, headers=headers, json=json, **kw)


@pytest.fixture
def gov(platform: Platform, team: Team, tmp_path: Path) -> Iterator[Gov]:
    nobody = platform.add_user(
        team.admin, "nemo", full_name="No Roles", password=PASSWORD, roles=[]
    )
    people = {key: getattr(team, key) for key in ROLES if key != "nobody"} | {"nobody": nobody}
    people["second_cmio"] = team.second_cmio
    tokens = {key: platform.create_token(user, name="test")[0] for key, user in people.items()}
    with (
        running_server(tmp_path, ServedModels(), platform=platform) as server,
        server.client() as client,
    ):
        yield Gov(server, platform, team, tokens, client)


def _denials(platform: Platform, team: Team) -> int:
    return len(platform.list_audit_events(team.auditor, action_prefix="denied."))


# Who may do what: the specification, written out (not derived from the permission table).
EVERYONE = set(ROLES) - {"nobody"}
MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/models", None, EVERYONE),
    ("GET", "/versions/{model}/{v}", None, EVERYONE),
    ("GET", "/models/{model}/history", None, EVERYONE),
    ("GET", "/audit/verify", None, EVERYONE),
    ("POST", "/models/{model}/monitor", None, EVERYONE),
    ("POST", "/versions/{model}/{v}/deploy-shadow", None, {"engineer"}),
    ("POST", "/versions/{model}/{v}/promote", {"reason": "matrix"}, {"engineer"}),
    ("POST", "/models/{model}/rollback", {"reason": "matrix"}, {"engineer"}),
    ("POST", "/versions/{model}/{v}/retire", {"reason": "matrix"}, {"engineer"}),
]


def test_role_by_endpoint_matrix_has_no_unauthorised_success(gov: Gov) -> None:
    version = approved(gov.platform, gov.team)
    unauthorised_successes = []
    for method, template, body, allowed in MATRIX:
        path = template.format(model=MODEL, v=version.version)
        # Refused roles first, so the allowed role's change cannot hide a refused one's.
        for who in sorted(ROLES, key=lambda r: r in allowed):
            before_state = gov.platform.get_version(version.ref).state
            before = _denials(gov.platform, gov.team)
            response = gov.call(method, path, who, json=body)
            if who in allowed:
                assert response.status_code not in (401, 403), (who, path, response.text)
                assert response.status_code in (200, 409, 422), (who, path, response.text)
                continue
            if response.status_code < 400:
                unauthorised_successes.append((who, method, path))
            assert response.status_code == 403, (who, path, response.text)
            assert response.json()["error"]["code"] == "permission_denied"
            assert gov.platform.get_version(version.ref).state is before_state
            assert _denials(gov.platform, gov.team) == before + 1, "refusal not recorded"
    assert unauthorised_successes == []
    # The engineer's allowed changes did happen: approved -> shadow -> retired.
    version = gov.platform.get_version(version.ref)
    assert version.state is VersionState.RETIRED
    assert VersionState.SHADOW in version.history


def test_only_clinical_reviewers_sign_approvals_with_their_password(gov: Gov) -> None:
    version = validated(gov.platform, gov.team)
    path = f"/versions/{MODEL}/{version.version}/signatures"
    approve = {"password": PASSWORD, "meaning": "approved"}
    for who in ("admin", "scientist", "engineer", "auditor", "nobody"):
        response = gov.call("POST", path, who, json=approve)
        assert response.status_code == 403, (who, response.text)
        assert response.json()["error"]["code"] == "signature_refused"
    wrong = gov.call("POST", path, "cmio", json={**approve, "password": "not it"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["details"]["rule"] == "reauth_failed"
    assert gov.platform.list_signatures(version.ref) == []
    first = gov.call("POST", path, "cmio", json={**approve, "comment": "looks right"})
    assert first.status_code == 201, first.text
    assert first.json()["signature"]["printed_name"] == "Dr Carol Chief"
    assert first.json()["state"] == "validated"
    second = gov.call("POST", path, "informaticist", json=approve)
    assert second.status_code == 201 and second.json()["state"] == "approved"
    shown = gov.call("GET", f"/versions/{MODEL}/{version.version}", "auditor").json()["version"]
    assert [(s["role"], s["meaning"], s["valid"]) for s in shown["signatures"]] == [
        ("CMIO", "approved", True),
        ("clinical_informaticist", "approved", True),
    ]
    assert shown["state"] == "approved" and shown["threshold"] == 0.4
    assert "inputs" not in str(shown) and "patient" not in str(shown)


def test_shadow_promotion_history_and_audit_over_http(gov: Gov, clock: Clock) -> None:
    version = approved(gov.platform, gov.team)
    base = f"/versions/{MODEL}/{version.version}"
    shadow = gov.call("POST", base + "/deploy-shadow", "engineer", json={"reason": "trial"})
    assert shadow.status_code == 200 and shadow.json()["version"]["state"] == "shadow"
    early = gov.call("POST", base + "/promote", "engineer")
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "invalid_transition"
    clock.advance(days=14, seconds=1)
    signed = gov.call(
        "POST",
        base + "/signatures",
        "second_cmio",
        json={"password": PASSWORD, "meaning": "approved", "purpose": "promotion"},
    )
    assert signed.status_code == 201, signed.text
    promoted = gov.call("POST", base + "/promote", "engineer", json={"reason": "shadow passed"})
    assert promoted.status_code == 200, promoted.text
    models = gov.call("GET", "/models", "cmio").json()["models"]
    assert [(m["name"], m["production"], m["shadow"]) for m in models] == [
        (MODEL, version.version, None)
    ]
    history = gov.call("GET", f"/models/{MODEL}/history", "auditor").json()
    assert history["production"] == version.ref
    assert {a["printed_name"] for a in history["approved_by"]} >= {"Dr Carol Chief"}
    before = gov.call(
        "GET", f"/models/{MODEL}/history", "auditor", params={"at": "2026-03-01T08:00:00+00:00"}
    ).json()
    assert before["production"] is None
    no_reason = gov.call("POST", f"/models/{MODEL}/rollback", "engineer", json={})
    assert no_reason.status_code == 422
    nothing_before = gov.call(
        "POST", f"/models/{MODEL}/rollback", "engineer", json={"reason": "test"}
    )
    assert nothing_before.status_code == 409
    assert "no earlier production version" in nothing_before.json()["error"]["message"]
    verified = gov.call("GET", "/audit/verify", "auditor").json()
    assert verified["verified"] is True and verified["events_checked"] > 10


def test_tokens_are_required_and_checked(gov: Gov) -> None:
    missing = gov.call("GET", "/models", None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "authentication_failed"
    with gov.server.client() as client:
        bad = client.get(GOV + "/models", headers={"Authorization": "Bearer nope"})
        basic = client.get(GOV + "/models", headers={"Authorization": "Basic YTpi"})
    assert bad.status_code == 401 and basic.status_code == 401
    gov.platform.revoke_token(gov.team.auditor, gov.tokens["auditor"])
    assert gov.call("GET", "/models", "auditor").status_code == 401
    gov.platform.set_user_active(gov.team.admin, "eli", active=False)
    assert gov.call("GET", "/models", "engineer").status_code == 401


def test_bad_requests_are_4xx_naming_the_problem(gov: Gov) -> None:
    assert gov.call("GET", f"/versions/{MODEL}/99", "cmio").status_code == 404
    assert gov.call("GET", "/versions/nope/1", "cmio").status_code == 404
    assert gov.call("GET", f"/versions/{MODEL}/one", "cmio").status_code == 422
    assert gov.call("GET", "/models/nope/history", "cmio").status_code == 404
    naive = gov.call("GET", f"/models/{MODEL}/history", "cmio", params={"at": "2026-03-01T08:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["details"]["errors"][0]["field"] == "at"
    version = validated(gov.platform, gov.team)
    extra = gov.call(
        "POST",
        f"/versions/{MODEL}/{version.version}/signatures",
        "cmio",
        json={"password": PASSWORD, "meaning": "approved", "by": "someone else"},
    )
    assert extra.status_code == 422
    meaning = gov.call(
        "POST",
        f"/versions/{MODEL}/{version.version}/signatures",
        "cmio",
        json={"password": PASSWORD, "meaning": "sure"},
    )
    assert meaning.status_code == 422
    assert gov.platform.list_signatures(version.ref) == []


def test_openapi_documents_the_governance_endpoints(gov: Gov) -> None:
    with gov.server.client() as client:
        spec = client.get("/openapi.json").json()
    paths = {p for p in spec["paths"] if p.startswith(GOV)}
    assert paths == {
        f"{GOV}/models",
        f"{GOV}/versions/{{name}}/{{number}}",
        f"{GOV}/versions/{{name}}/{{number}}/deploy-shadow",
        f"{GOV}/versions/{{name}}/{{number}}/promote",
        f"{GOV}/versions/{{name}}/{{number}}/retire",
        f"{GOV}/versions/{{name}}/{{number}}/signatures",
        f"{GOV}/models/{{name}}/rollback",
        f"{GOV}/models/{{name}}/history",
        f"{GOV}/models/{{name}}/monitor",
        f"{GOV}/audit/verify",
    }
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
