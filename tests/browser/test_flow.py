"""The governed path to production, clicked through in Chromium against the real server.

A data scientist validates version 1; a clinical informaticist sets the threshold and signs
(a wrong password is refused and leaves no signature); the CMIO signs the second approval; the
engineer deploys it as shadow, is refused promotion until the CMIO signs the promotion, then
promotes; the inventory shows it in production and the audit page shows the ledger verified.
Every step is checked against the record (through Platform), not only on the page. Each page is
screenshotted to the screenshots folder (see docs/dashboard-testing.md).
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from bedside.domain.models import VersionState
from tests.browser.conftest import Server, screenshot
from tests.browser.project import MODEL, PEOPLE, REF
from tests.browser.ui import heading, sign_in, sign_out, sign_version
from tests.support import PASSWORD

V = f"/ui/versions/{MODEL}/1"
S = VersionState


def test_sign_in_review_sign_deploy_promote_and_verify_the_ledger(
    shared_server: Server, new_page: Any
) -> None:
    url, platform = shared_server.url, shared_server.platform()
    page = new_page()

    def shot(name: str) -> None:
        screenshot(page, f"flow-{name}")

    # Sign in: any page sends you to the form; a wrong password is refused.
    page.goto(f"{url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    sign_in(page, url, PEOPLE["scientist"].username, "not the password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    shot("01-sign-in-refused")
    sign_in(page, url, PEOPLE["scientist"].username, PASSWORD)
    expect(page).to_have_url(f"{url}/ui/")

    # The inventory, the model, its monitoring, the version and its report.
    inventory = page.get_by_role("table", name="Models")
    expect(inventory).to_contain_text(MODEL)
    shot("02-inventory")
    inventory.get_by_role("link", name=MODEL, exact=True).click()
    expect(heading(page)).to_have_text(f"Model {MODEL}")
    shot("03-model")
    page.get_by_role("link", name=re.compile("^Monitoring")).click()
    expect(heading(page)).to_have_text(f"Monitoring {MODEL}")
    shot("04-monitoring")
    page.go_back()
    page.get_by_role("table", name="Versions").get_by_role("link", name=REF, exact=True).click()
    expect(heading(page)).to_have_text(f"Version {REF}")
    expect(page.get_by_role("table", name="Gates")).to_contain_text("statistical")
    expect(page.get_by_role("table", name="Fairness")).to_be_visible()
    shot("05-version-candidate")
    page.get_by_role("link", name="Validation report (HTML)").click()
    expect(heading(page)).to_have_text(f"Validation report {REF}")
    shot("06-validation-report")
    page.go_back()
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status")).to_contain_text("Validation recorded")
    assert platform.get_version(REF).state is S.VALIDATED
    sign_out(page)

    # The clinical informaticist sets the threshold, then signs: wrong password first.
    sign_in(page, url, PEOPLE["informaticist"].username, PASSWORD)
    page.goto(f"{url}{V}/review")
    expect(heading(page)).to_have_text(f"Review {REF}")
    page.get_by_label("Threshold").fill("0.3")
    page.get_by_role("button", name="Set threshold").click()
    expect(page.get_by_role("status")).to_contain_text("Threshold set")
    assert platform.get_version(REF).evidence["threshold"] == 0.3
    expect(page.get_by_text("legally binding equivalent")).to_be_visible()
    shot("07-review")
    sign_version(
        page,
        meaning="approved",
        purpose="clinical_review",
        password="not my password",
        comment="Threshold table reviewed",
    )
    expect(page.get_by_role("alert")).to_contain_text("Signature refused")
    assert platform.list_signatures(REF) == []
    shot("08-signature-refused")
    sign_version(
        page,
        meaning="approved",
        purpose="clinical_review",
        password=PASSWORD,
        comment="Threshold table reviewed",
    )
    expect(page.get_by_role("status")).to_contain_text("Signature recorded")
    signatures = page.get_by_role("table", name="Signatures")
    expect(signatures).to_contain_text(PEOPLE["informaticist"].full_name)
    expect(signatures).to_contain_text("approved")
    assert [s.username for s in platform.list_signatures(REF)] == ["ivan"]
    sign_out(page)

    # The CMIO's approval completes the clinical review.
    sign_in(page, url, PEOPLE["cmio"].username, PASSWORD)
    page.goto(f"{url}{V}/review")
    sign_version(page, meaning="approved", purpose="clinical_review", password=PASSWORD, comment="")
    expect(page.get_by_role("status")).to_contain_text("Signature recorded")
    expect(page.get_by_role("table", name="Signatures")).to_contain_text(PEOPLE["cmio"].full_name)
    assert platform.get_version(REF).state is S.APPROVED
    shot("09-version-approved")
    sign_out(page)

    # The engineer deploys it as shadow; promotion is refused without the promotion signature.
    sign_in(page, url, PEOPLE["engineer"].username, PASSWORD)
    page.goto(f"{url}{V}")
    page.get_by_role("button", name="Deploy as shadow").click()
    expect(page.get_by_role("status")).to_contain_text("Deployed as shadow")
    assert platform.get_version(REF).state is S.SHADOW
    time.sleep(1.1)  # the test pipeline's shadow period is one second
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("alert")).to_contain_text("promotion needs a human approval signature")
    assert platform.get_version(REF).state is S.SHADOW
    shot("10-promotion-refused")
    sign_out(page)

    # The CMIO signs the promotion; the engineer promotes.
    sign_in(page, url, PEOPLE["cmio"].username, PASSWORD)
    page.goto(f"{url}{V}/review")
    sign_version(
        page, meaning="approved", purpose="promotion", password=PASSWORD, comment="Shadow reviewed"
    )
    expect(page.get_by_role("status")).to_contain_text("Signature recorded")
    sign_out(page)
    sign_in(page, url, PEOPLE["engineer"].username, PASSWORD)
    page.goto(f"{url}{V}")
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("status")).to_contain_text("Promoted to production")
    assert platform.get_version(REF).state is S.PRODUCTION
    shot("11-version-production")

    # The inventory shows it in production; the model page shows the history.
    page.get_by_role("link", name="Models").click()
    row = page.get_by_role("table", name="Models").get_by_role("row").filter(has_text=MODEL)
    expect(row.locator("td").nth(0)).to_have_text(REF)
    expect(row.locator("td").nth(1)).to_have_text("none")
    shot("12-inventory-production")
    row.get_by_role("link", name=MODEL, exact=True).click()
    expect(page.get_by_role("table", name="State changes")).to_contain_text("production")
    shot("13-model-history")

    # The audit ledger verifies, on the page and on demand.
    page.get_by_role("link", name="Audit ledger").click()
    expect(page.get_by_text(re.compile(r"Ledger verified: \d+ events"))).to_be_visible()
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_role("status")).to_contain_text("Ledger verified")
    expect(page.get_by_text(re.compile(r"Ledger verified: \d+ events"))).to_be_visible()
    expect(page.get_by_role("table", name="Audit events")).to_contain_text("version.promote")
    assert platform.verify_audit().ok
    shot("14-audit")


def test_sign_in_with_the_keyboard_only(shared_server: Server, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{shared_server.url}/ui/login")
    for _ in range(10):  # Tab through the skip link and the header to the form
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "username":
            break
    else:
        raise AssertionError("Tab never reached the Username field")
    page.keyboard.type(PEOPLE["auditor"].username)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{shared_server.url}/ui/")
    expect(page.get_by_text(f"Signed in as {PEOPLE['auditor'].full_name}")).to_be_visible()
