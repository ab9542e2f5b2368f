"""The governance dashboard over HTTP against a real server process (SQLite and PostgreSQL).

Each test signs in through the form like a browser would and acts on a model of its own; what a
page shows and what an action changed is checked against the record through Platform.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx

from bedside.documents import KINDS
from bedside.domain.models import AuditEvent, VersionState
from bedside.serving.inference_log import InferenceLog, prediction_entry
from tests.dashboard.conftest import Site, csrf_of
from tests.support import PASSWORD

S = VersionState


def _post(client: httpx.Client, path: str, page: str, **data: str) -> httpx.Response:
    """Submit a form of page ``page`` (its CSRF token) to ``path``."""
    token = csrf_of(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data})


def _events(site: Site, prefix: str) -> list[AuditEvent]:
    return site.platform.list_audit_events(site.user("aud"), action_prefix=prefix)


def _edit_event(site: Site, seq: int, reason: str) -> str:
    """Change an event's reason as someone with database-owner rights could; return the old one."""
    from sqlalchemy import text

    with site.platform.database.transaction() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        old = conn.execute(text("SELECT reason FROM audit_events WHERE seq = :s"), {"s": seq})
        before = str(old.scalar())
        conn.execute(
            text("UPDATE audit_events SET reason = :r WHERE seq = :s"), {"r": reason, "s": seq}
        )
        if sqlite:  # the migration's trigger, put back
            conn.execute(
                text(
                    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN "
                    "SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END"
                )
            )
        else:
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    return before


# -- sessions -------------------------------------------------------------------------------


def test_pages_redirect_to_sign_in_and_back(site: Site) -> None:
    with site.client() as client:
        response = client.get("/ui/audit")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login?next=%2Fui%2Faudit"
        page = client.get(response.headers["location"])
        assert page.status_code == 200
        assert '<label for="username">Username</label>' in page.text
        assert '<label for="password">Password</label>' in page.text
        assert 'value="/ui/audit"' in page.text
        signed_in = client.post(
            "/ui/login",
            data={
                "username": "aud",
                "password": PASSWORD,
                "csrf_token": csrf_of(page.text),
                "next": "/ui/audit",
            },
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/audit"
        cookie = signed_in.headers["set-cookie"]
        assert "bedside_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/ui" in cookie
        assert client.get("/ui/audit").status_code == 200


def test_a_next_address_off_the_dashboard_is_ignored(site: Site) -> None:
    with site.client() as client:
        page = client.get("/ui/login?next=https://evil.example/")
        assert "evil" not in page.text
        response = client.post(
            "/ui/login",
            data={
                "username": "aud",
                "password": PASSWORD,
                "csrf_token": csrf_of(page.text),
                "next": "//evil.example/ui/",
            },
        )
        assert response.headers["location"] == "/ui/"


def test_wrong_password_is_an_alert_and_locks_after_repeated_failures(site: Site) -> None:
    admin = site.user("admin")
    username = f"temp{uuid.uuid4().hex[:6]}"
    site.platform.add_user(admin, username, full_name="Tom Temp", password=PASSWORD)
    with site.client() as client:
        for _ in range(site.platform.lockout_threshold):
            page = client.get("/ui/login")
            response = client.post(
                "/ui/login",
                data={"username": username, "password": "wrong", "csrf_token": csrf_of(page.text)},
            )
            assert response.status_code == 200
            assert 'role="alert"' in response.text
        assert "locked" in response.text
        assert "Wrong username or password" not in response.text
        page = client.get("/ui/login")
        unknown = client.post(
            "/ui/login",
            data={"username": "nobody", "password": "x", "csrf_token": csrf_of(page.text)},
        )
        assert "Wrong username or password" in unknown.text
    assert site.user(username).is_locked


def test_sign_in_without_the_form_token_is_refused(site: Site) -> None:
    with site.client() as client:
        response = client.post("/ui/login", data={"username": "aud", "password": PASSWORD})
        assert response.status_code == 403
        assert "bedside_session" not in response.headers.get("set-cookie", "")


def test_sign_out_revokes_the_session(site: Site) -> None:
    with site.login("aud") as client:
        cookie = client.cookies.get("bedside_session", path="/ui")
        assert cookie
        page = client.get("/ui/")
        assert ">Sign out</button>" in page.text
        response = client.post("/ui/logout", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    # The old cookie, replayed, no longer opens a session: its token is revoked server side.
    with site.client() as replay:
        replay.cookies.set("bedside_session", cookie, path="/ui")
        assert replay.get("/ui/").status_code == 303
    assert _events(site, "token.revoked")


def test_a_forged_cookie_opens_nothing(site: Site) -> None:
    with site.client() as client:
        client.cookies.set("bedside_session", f"bs_x|{int(time.time())}|00", path="/ui")
        assert client.get("/ui/").status_code == 303


def test_posts_without_session_or_csrf_token_are_refused_and_do_nothing(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    number = ref.split("@")[1]
    with site.client() as anonymous:
        assert anonymous.post(f"/ui/versions/{model}/{number}/validate").status_code == 403
    with site.login("eli") as client:
        assert client.post(f"/ui/versions/{model}/{number}/validate").status_code == 403
        forged = client.post(
            f"/ui/versions/{model}/{number}/validate", data={"csrf_token": "0" * 64}
        )
        assert forged.status_code == 403
        assert "<h1>Not permitted</h1>" in forged.text
    assert site.platform.get_version(ref).state is S.CANDIDATE


# -- pages ----------------------------------------------------------------------------------


def test_inventory_lists_models_with_production_and_shadow(site: Site) -> None:
    model = site.new_model()
    live = site.production(model)
    shadow = site.shadow_served(model)
    with site.login("dana") as client:
        page = client.get("/ui/")
    assert page.status_code == 200
    assert "<caption>Models</caption>" in page.text
    assert f'href="/ui/models/{model}"' in page.text
    row = page.text.split(f'href="/ui/models/{model}"')[1].split("</tr>")[0]
    assert live in row and shadow in row
    assert page.text.count("<h1>") == 1 and "<main" in page.text
    assert 'href="/ui/static/bedside.css"' in page.text
    assert "https://" not in page.text and "http://" not in page.text  # no external requests


def test_version_page_shows_the_evidence(site: Site) -> None:
    model = site.new_model()
    ref = site.approved(model)
    number = ref.split("@")[1]
    with site.login("dana") as client:
        page = client.get(f"/ui/versions/{model}/{number}").text
    assert "<caption>Gates</caption>" in page and "statistical: every bound met" in page
    assert "<caption>Fairness</caption>" in page
    fairness = page.split("<caption>Fairness</caption>")[1].split("</table>")[0]
    assert ">female<" in fairness and ">male<" in fairness
    signatures = page.split("<caption>Signatures</caption>")[1].split("</table>")[0]
    assert "Dr Carol Chief" in signatures and "Ivan Informaticist" in signatures
    assert "CMIO" in signatures and "approved" in signatures
    version = site.platform.get_version(ref)
    assert version.run_id and version.run_id in page  # lineage
    assert version.pipeline_sha256 and version.pipeline_sha256 in page
    assert "sha256:" + "ab" * 32 in page
    assert "documents: run <code>bedside docs" in page or "/documents/" in page
    # A data scientist may not deploy: the button is not offered.
    assert "Deploy as shadow" not in page


def test_model_page_shows_versions_and_history(site: Site) -> None:
    model = site.new_model()
    ref = site.production(model)
    with site.login("aud") as client:
        page = client.get(f"/ui/models/{model}").text
    assert f'href="/ui/versions/{model}/1"' in page
    history = page.split("<caption>State changes</caption>")[1].split("</table>")[0]
    assert ref in history and "production" in history and "eli" in history
    assert "Roll back" not in page  # an auditor may not roll back


def test_unknown_pages_and_versions_are_404_pages(site: Site) -> None:
    with site.login("aud") as client:
        for path in (
            "/ui/nothing-here",
            "/ui/versions/nope/1",
            "/ui/versions/nope/x",
            "/ui/models/nope",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "<h1>Not found</h1>" in response.text


# -- actions ----------------------------------------------------------------------------------


def test_validate_sign_deploy_and_promote_through_the_dashboard(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    number = ref.split("@")[1]
    page = f"/ui/versions/{model}/{number}"
    with site.login("eli") as eli:
        assert "Validate</button>" in eli.get(page).text
        response = _post(eli, f"{page}/validate", page)
        assert (
            response.status_code == 303 and response.headers["location"] == f"{page}?done=validate"
        )
        assert 'role="status"' in eli.get(response.headers["location"]).text
    assert site.platform.get_version(ref).state is S.VALIDATED
    for reviewer in ("carol", "ivan"):
        with site.login(reviewer) as client:
            response = _post(
                client,
                f"{page}/sign",
                f"{page}/review",
                meaning="approved",
                purpose="clinical_review",
                comment="fit for shadow",
                password=PASSWORD,
            )
            assert response.status_code == 303, response.text
    assert site.platform.get_version(ref).state is S.APPROVED
    with site.login("eli") as eli:
        response = _post(eli, f"{page}/deploy-shadow", page)
        assert response.status_code == 303
        assert site.platform.get_version(ref).state is S.SHADOW
        # Promotion is refused: no promotion signature, and the shadow period has just begun.
        refused = _post(eli, f"{page}/promote", page)
        assert refused.status_code == 409
        assert 'role="alert"' in refused.text and "Cannot promote" in refused.text
    assert site.platform.get_version(ref).state is S.SHADOW
    assert _events(site, "refused.promote")[-1].subject_id == ref


def test_promote_then_roll_back_through_the_dashboard(site: Site) -> None:
    model = site.new_model()
    first = site.production(model)
    second = site.shadow_served(model)
    number = second.split("@")[1]
    page = f"/ui/versions/{model}/{number}"
    with site.login("cora") as cora:
        signed = _post(
            cora,
            f"{page}/sign",
            f"{page}/review",
            meaning="approved",
            purpose="promotion",
            password=PASSWORD,
        )
        assert signed.status_code == 303
    with site.login("eli") as eli:
        promoted = _post(eli, f"{page}/promote", page)
        assert promoted.status_code == 303, promoted.text
        assert site.platform.get_version(second).state is S.PRODUCTION
        assert site.platform.get_version(first).state is S.RETIRED
        model_page = f"/ui/models/{model}"
        no_reason = _post(eli, f"{model_page}/rollback", model_page, reason="  ")
        assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
        rolled = _post(eli, f"{model_page}/rollback", model_page, reason="alert rate doubled")
        assert rolled.status_code == 303
        assert 'role="status"' in eli.get(rolled.headers["location"]).text
    assert site.platform.get_version(first).state is S.PRODUCTION
    assert site.platform.get_version(second).state is S.RETIRED
    restore = _events(site, "version.restore")[-1]
    assert "alert rate doubled" in restore.reason


def test_retire_through_the_dashboard(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}"
    with site.login("eli") as eli:
        assert _post(eli, f"{page}/retire", page).status_code == 303
    assert site.platform.get_version(ref).state is S.RETIRED


def test_a_wrong_password_refuses_the_signature(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    site.platform.validate_version(site.user("eli"), ref)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}"
    with site.login("carol") as carol:
        review = carol.get(f"{page}/review").text
        for label in ("Meaning", "Purpose", "Comment", "Password (re-enter to sign)"):
            assert f">{label}</label>" in review
        assert "legally binding" in review and ">Sign</button>" in review
        refused = _post(
            carol,
            f"{page}/sign",
            f"{page}/review",
            meaning="approved",
            purpose="clinical_review",
            password="not my password",
        )
        assert 'role="alert"' in refused.text and "Signature refused:" in refused.text
    assert site.platform.list_signatures(ref) == []
    assert _events(site, "signature.refused")[-1].subject_id == ref


def test_forbidden_actions_are_403_and_recorded(site: Site) -> None:
    model = site.new_model()
    ref = site.approved(model)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}"
    with site.login("dana") as dana:  # a data scientist: a forged deploy request
        response = _post(dana, f"{page}/deploy-shadow", page)
        assert response.status_code == 403
        assert "<h1>Not permitted</h1>" in response.text and "deployment.deploy" in response.text
        threshold = _post(dana, f"{page}/threshold", f"{page}/review", threshold="0.3")
        assert threshold.status_code == 403 and "signature.review" in threshold.text
    with site.login("aud") as aud:  # an auditor may not sign at all
        signed = _post(
            aud,
            f"{page}/sign",
            f"{page}/review",
            meaning="approved",
            purpose="promotion",
            password=PASSWORD,
        )
        assert signed.status_code == 403 and "signature.review" in signed.text
        users = aud.get("/ui/admin/users")
        assert users.status_code == 403 and "users.manage" in users.text
    assert site.platform.get_version(ref).state is S.APPROVED
    assert site.platform.list_signatures(ref)[-1].username != "aud"
    denied = [e.actor for e in _events(site, "denied.")]
    assert "dana" in denied and "aud" in denied


def test_threshold_on_a_version_not_under_review_is_an_alert(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}"
    with site.login("carol") as carol:
        review = carol.get(f"{page}/review").text
        assert '<label for="threshold">Threshold</label>' in review
        assert "Set threshold</button>" in review
        assert "<caption>Operating points on the test split</caption>" in review
        bad = _post(carol, f"{page}/threshold", f"{page}/review", threshold="lots")
        assert bad.status_code == 422 and "between 0 and 1" in bad.text
        refused = _post(carol, f"{page}/threshold", f"{page}/review", threshold="0.3")
        assert refused.status_code == 409 and "not &#39;validated&#39;" in refused.text
    assert site.platform.get_version(ref).evidence["threshold"] == 0.5


def test_a_reviewer_sets_the_threshold_on_the_review_page(site: Site) -> None:
    model = site.new_model()
    ref = site.fitted(model)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}/review"
    with site.login("ivan") as ivan:
        response = _post(ivan, page.replace("/review", "/threshold"), page, threshold="0.35")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"{page}?done=threshold"
        shown = ivan.get(response.headers["location"]).text
        assert 'role="status"' in shown and "0.350" in shown
    chosen = site.platform.get_version(ref).evidence
    assert chosen["threshold"] == 0.35 and chosen["operating_point"]["threshold"] == 0.35
    assert "ivan" in chosen["threshold_rule"]


def test_audit_page_verifies_the_ledger_and_shows_a_break(site: Site) -> None:
    with site.login("aud") as aud:
        page = aud.get("/ui/audit").text
        found = re.search(r"Ledger verified: (\d+) events", page)
        assert found and int(found.group(1)) >= site.platform.verify_audit().events_checked - 5
        assert "<caption>Audit events</caption>" in page
        verified = _post(aud, "/ui/audit/verify", "/ui/audit")
        assert verified.status_code == 303
        assert "Ledger verified" in aud.get(verified.headers["location"]).text
        # Change one recorded event behind the ledger's back: the page says where it broke.
        original = _edit_event(site, 3, "edited")
        try:
            assert "Ledger BROKEN at event #3" in aud.get("/ui/audit").text
        finally:
            _edit_event(site, 3, original)
        assert site.platform.verify_audit().ok


def test_admins_manage_users_and_roles(site: Site) -> None:
    username = f"nina{uuid.uuid4().hex[:6]}"
    with site.login("admin") as admin:
        page = admin.get("/ui/admin/users").text
        assert "<caption>Users</caption>" in page and "Dr Carol Chief" in page
        weak = _post(
            admin,
            "/ui/admin/users",
            "/ui/admin/users",
            username=username,
            full_name="Nina New",
            password="zq7wk",
        )
        assert weak.status_code == 422 and 'role="alert"' in weak.text
        assert "zq7wk" not in weak.text  # the refused password is not echoed
        added = _post(
            admin,
            "/ui/admin/users",
            "/ui/admin/users",
            username=username,
            full_name="Nina New",
            password=PASSWORD,
            roles="auditor",
        )
        assert added.status_code == 303
        assert site.user(username).roles == frozenset({"auditor"})
        base = f"/ui/admin/users/{username}"
        assert _post(admin, f"{base}/grant", "/ui/admin/users", role="CMIO").status_code == 303
        assert _post(admin, f"{base}/revoke", "/ui/admin/users", role="auditor").status_code == 303
        assert site.user(username).roles == frozenset({"CMIO"})
        unknown = _post(admin, f"{base}/grant", "/ui/admin/users", role="wizard")
        assert unknown.status_code == 404 and "No role named" in unknown.text
        assert _post(admin, f"{base}/disable", "/ui/admin/users").status_code == 303
        assert not site.user(username).is_active
        assert _post(admin, f"{base}/enable", "/ui/admin/users").status_code == 303
        assert site.user(username).is_active
    with site.login("eli") as eli:  # an engineer may not grant roles, even with a forged form
        forged = _post(eli, f"/ui/admin/users/{username}/grant", "/ui/", role="admin")
        assert forged.status_code == 403
    assert "admin" not in site.user(username).roles


def test_documents_are_linked_and_served(site: Site) -> None:
    model = site.new_model()
    ref = site.approved(model)
    page = f"/ui/versions/{model}/{ref.split('@')[1]}"
    with site.login("aud") as aud:
        version_page = aud.get(page).text
        for kind in KINDS:
            assert f'href="{page}/documents/{kind}"' in version_page
        document = aud.get(f"{page}/documents/{KINDS[0]}")
        assert document.status_code == 200 and ref in document.text
        unknown = aud.get(f"{page}/documents/horoscope")
        assert unknown.status_code == 404


def test_the_validation_report_is_served_in_the_dashboard(site: Site) -> None:
    model = site.new_model()
    ref = site.version(model)
    bare = site.version(model, with_evidence=False)
    with site.login("dana") as dana:
        page = f"/ui/versions/{model}/{ref.split('@')[1]}"
        framed = dana.get(f"{page}/report")
        assert framed.status_code == 200 and f'src="{page}/report/raw"' in framed.text
        raw = dana.get(f"{page}/report/raw")
        assert raw.status_code == 200 and ref in raw.text
        missing = dana.get(f"/ui/versions/{model}/{bare.split('@')[1]}/report")
        assert missing.status_code == 404 and "no training" in missing.text


def test_monitoring_shows_aggregates_and_no_patient_rows(site: Site) -> None:
    model = site.new_model()
    site.production(model)
    # Predictions in the inference log with a value no aggregate would show.
    marker = 987.654321
    log = InferenceLog.open(site.home / "inference-log", key_ring=site.platform.keys)
    try:
        log.append_sync(
            [
                prediction_entry(
                    request_id=str(uuid.uuid4()),
                    received=time.time(),
                    model=model,
                    version="1",
                    threshold=0.5,
                    inputs={"heart_rate_max_6h": marker, "age": 42},
                    probability=0.73,
                    decision=True,
                    shadow_version=None,
                )
            ]
        )
    finally:
        log.close()
    # Two monitoring checks and an alert, as bedside monitor records them.
    with site.platform._tx() as tx:
        for drift, auroc in ((0.1, 0.81), (0.6, 0.62)):
            site.platform._event(
                tx,
                "eli",
                "monitoring.checked",
                "model",
                model,
                after={
                    "version": f"{model}@1",
                    "rows": 480,
                    "labelled": 200,
                    "drift_score": drift,
                    "dataset_drift": drift > 0.5,
                    "values": {"drift_score": drift, "auroc": auroc, "alert_rate": 0.12},
                    "trigger_fired": drift > 0.5,
                    "alert": auroc < 0.7,
                },
            )
        site.platform._event(
            tx,
            "system",
            "monitoring.alert",
            "model",
            model,
            after={"metric": "auroc", "value": 0.62, "threshold": 0.7},
        )
    pages = {}
    with site.login("dana") as dana:
        for path in (
            "/ui/",
            f"/ui/models/{model}",
            f"/ui/models/{model}/monitoring",
            f"/ui/versions/{model}/1",
            f"/ui/versions/{model}/1/review",
            "/ui/audit",
        ):
            response = dana.get(path)
            assert response.status_code == 200, path
            pages[path] = response.text
    monitoring = pages[f"/ui/models/{model}/monitoring"]
    assert "<caption>Monitoring checks</caption>" in monitoring
    assert "<svg" in monitoring and "0.620" in monitoring and "0.810" in monitoring
    assert "auroc 0.620 below 0.700" in monitoring
    assert "auroc 0.620 below 0.700" in pages["/ui/"]
    for path, text in pages.items():
        assert "987.65" not in text, path  # no inference-log row on any page
        assert "heart_rate_max_6h" not in text, path
