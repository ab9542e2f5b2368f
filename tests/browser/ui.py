"""What a person does in the dashboard, as Playwright steps (sign in, sign out, sign a version)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

expect.set_options(timeout=30_000)  # generous: CI machines run other suites alongside


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Fill and submit the sign-in form (going to it first unless the page already shows it)."""
    if "/ui/login" not in page.url:
        page.goto(f"{url}/ui/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def sign_version(page: Any, *, meaning: str, purpose: str, password: str, comment: str) -> None:
    """Fill the review page's signature form and press Sign."""
    page.get_by_label("Meaning").select_option(meaning)
    page.get_by_label("Purpose").select_option(purpose)
    page.get_by_label("Comment").fill(comment)
    page.get_by_label("Password (re-enter to sign)").fill(password)
    page.get_by_role("button", name="Sign", exact=True).click()
    page.wait_for_load_state()


def heading(page: Any) -> Any:
    return page.get_by_role("heading", level=1)
