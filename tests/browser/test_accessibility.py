"""Accessibility smoke test of every dashboard page in Chromium, and no request off 127.0.0.1.

For each page (as the person who sees most of it): the page has a language, one ``<main>`` with
exactly one ``<h1>``, every form control has a label, every table a caption, every image a text
alternative, every frame a title; and the page made no request to any host but 127.0.0.1 (all
assets are vendored: the dashboard must work in an air-gapped hospital network). The regulatory
documents are separate, self-contained HTML files: they are checked for a language, one ``<h1>``
and no outside requests. Each page is screenshotted.
"""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import ExternalRequests, Server, screenshot
from tests.browser.project import MODEL, PEOPLE
from tests.browser.ui import sign_in
from tests.support import PASSWORD

V = f"/ui/versions/{MODEL}/1"

#: Each dashboard page, and who opens it (the admin sees the users page; a clinical reviewer sees
#: the threshold and signature forms).
PAGES: dict[str, tuple[str, str]] = {
    "inventory": ("admin", "/ui/"),
    "model": ("engineer", f"/ui/models/{MODEL}"),
    "monitoring": ("engineer", f"/ui/models/{MODEL}/monitoring"),
    "version": ("engineer", V),
    "review": ("cmio", f"{V}/review"),
    "report": ("cmio", f"{V}/report"),
    "audit": ("auditor", "/ui/audit"),
    "users": ("admin", "/ui/admin/users"),
    "not-permitted": ("scientist", "/ui/admin/users"),
    "not-found": ("scientist", "/ui/no-such-page"),
}

_PROBLEMS = """() => {
  const out = [];
  const name = (el) => el.outerHTML.slice(0, 120);
  if (!document.documentElement.lang) out.push("the page has no lang attribute");
  const mains = document.querySelectorAll("main");
  if (mains.length !== 1) out.push(`${mains.length} <main> elements`);
  const h1s = document.querySelectorAll("h1");
  if (h1s.length !== 1) out.push(`${h1s.length} <h1> elements`);
  if (mains.length === 1 && mains[0].querySelectorAll("h1").length !== 1)
    out.push("the <h1> is not inside <main>");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (["hidden", "submit", "button", "reset"].includes(el.type)) continue;
    const labelled = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label")
      || el.getAttribute("aria-labelledby");
    if (!labelled) out.push("a form control without a label: " + name(el));
  }
  for (const el of document.querySelectorAll("button")) {
    if (!(el.textContent.trim() || el.getAttribute("aria-label")))
      out.push("a button without a name: " + name(el));
  }
  for (const el of document.querySelectorAll("table")) {
    const caption = el.querySelector("caption");
    if (!(caption && caption.textContent.trim()) && !el.getAttribute("aria-label"))
      out.push("a table without a caption: " + name(el));
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) out.push("an image without alt text: " + name(el));
  }
  for (const el of document.querySelectorAll("iframe")) {
    if (!el.title) out.push("a frame without a title: " + name(el));
  }
  return out;
}"""

_DOCUMENT_PROBLEMS = """() => {
  const out = [];
  if (!document.documentElement.lang) out.push("the document has no lang attribute");
  const h1s = document.querySelectorAll("h1").length;
  if (h1s !== 1) out.push(`${h1s} <h1> elements`);
  return out;
}"""


def test_every_page_is_labelled_and_stays_on_127_0_0_1(
    shared_server: Server, new_page: Any, external_requests: ExternalRequests
) -> None:
    url = shared_server.url
    pages: dict[str, Any] = {}

    def page_of(role: str) -> Any:
        if role not in pages:
            pages[role] = new_page()
            sign_in(pages[role], url, PEOPLE[role].username, PASSWORD)
        return pages[role]

    problems: dict[str, list[str]] = {}
    anonymous = new_page()
    anonymous.goto(f"{url}/ui/login")
    problems["sign-in"] = anonymous.evaluate(_PROBLEMS)
    screenshot(anonymous, "page-sign-in")
    for label, (role, path) in PAGES.items():
        page = page_of(role)
        response = page.goto(f"{url}{path}")
        assert response is not None and response.status < 500, (label, response)
        page.wait_for_load_state("load")
        problems[label] = page.evaluate(_PROBLEMS)
        screenshot(page, f"page-{label}")

    version_page = page_of("engineer")
    version_page.goto(f"{url}{V}")
    kinds = re.findall(rf'href="{re.escape(V)}/documents/([^"/?]+)"', version_page.content())
    for kind in sorted(set(kinds)):
        version_page.goto(f"{url}{V}/documents/{kind}")
        problems[f"document {kind}"] = version_page.evaluate(_DOCUMENT_PROBLEMS)
        screenshot(version_page, f"document-{kind}")

    # The checker itself finds what it looks for (on a page made to fail every check).
    anonymous.set_content(
        "<html><body><h1>a</h1><h1>b</h1><input name=q><button></button><table></table>"
        "<img src='data:,'><iframe src='about:blank'></iframe></body></html>"
    )
    assert len(anonymous.evaluate(_PROBLEMS)) == 8, anonymous.evaluate(_PROBLEMS)

    found = {label: found for label, found in problems.items() if found}
    assert found == {}, found
    assert external_requests.urls == [], f"requests left 127.0.0.1: {external_requests.urls}"
