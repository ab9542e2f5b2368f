"""Accessibility smoke test of every dashboard page in Chromium, and no request off 127.0.0.1.

For each page (as the person who sees most of it): the page has a language, one ``<main>`` with
exactly one ``<h1>``, every form control has a label, every table a caption, every image a text
alternative, every frame a title; and the page made no request to any host but 127.0.0.1 (all
assets are vendored: the dashboard must work in an air-gapped hospital network). The regulatory
documents are separate, self-contained HTML files: they are checked for a language, one ``<h1>``
and no outside requests. Each page is screenshotted.

Every page, document and the validation report the report page frames (``…/report/raw``) is also
checked for colour contrast (WCAG 2.1 AA: 4.5:1 for text, 3:1 for large text, measured on the
computed colours — see ``contrast.py``) and for visible keyboard focus (Tab through the page: each
link, button and field shows an outline or shadow). The lowest ratio per page is written to
``contrast.txt`` beside the screenshots. States the pages walked here do not show (a flash, an
alert, a failed gate row, each lifecycle state badge, a danger button) are checked on a specimen
page styled by the dashboard's own stylesheet.
"""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import SCREENSHOTS, ExternalRequests, Server, screenshot
from tests.browser.contrast import Contrast, Focus, contrast, focus_problems
from tests.browser.project import MODEL, PEOPLE
from tests.browser.ui import sign_in
from tests.support import PASSWORD, REPO

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


def _seen(label: str, page: Any, contrasts: dict[str, Contrast], focus: dict[str, Focus]) -> None:
    """Measure contrast on the page as loaded, then Tab through it."""
    contrasts[label] = contrast(page)
    focus[label] = focus_problems(page)


def _write_contrast_summary(contrasts: dict[str, Contrast], focus: dict[str, Focus]) -> None:
    lines = ["page: texts checked, lowest contrast (needed) at element; focus stops"]
    for label, found in contrasts.items():
        low = found.lowest or {}
        lines.append(
            f"{label}: {found.checked} texts, lowest {low.get('ratio')}:1 (needs "
            f"{low.get('required')}:1) {low.get('color')} on {low.get('background')} at "
            f"{low.get('where')} {low.get('text')!r}; {focus[label].stops} focus stops"
        )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "contrast.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


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
    contrasts: dict[str, Contrast] = {}
    focus: dict[str, Focus] = {}
    anonymous = new_page()
    anonymous.goto(f"{url}/ui/login")
    problems["sign-in"] = anonymous.evaluate(_PROBLEMS)
    screenshot(anonymous, "page-sign-in")
    _seen("sign-in", anonymous, contrasts, focus)
    for label, (role, path) in PAGES.items():
        page = page_of(role)
        response = page.goto(f"{url}{path}")
        assert response is not None and response.status < 500, (label, response)
        page.wait_for_load_state("load")
        problems[label] = page.evaluate(_PROBLEMS)
        screenshot(page, f"page-{label}")
        _seen(label, page, contrasts, focus)

    # The page the report page frames: the validation report itself.
    report = page_of("cmio")
    response = report.goto(f"{url}{V}/report/raw")
    assert response is not None and response.status == 200, response
    problems["report (framed)"] = report.evaluate(_DOCUMENT_PROBLEMS)
    _seen("report (framed)", report, contrasts, focus)

    version_page = page_of("engineer")
    version_page.goto(f"{url}{V}")
    kinds = re.findall(rf'href="{re.escape(V)}/documents/([^"/?]+)"', version_page.content())
    for kind in sorted(set(kinds)):
        version_page.goto(f"{url}{V}/documents/{kind}")
        problems[f"document {kind}"] = version_page.evaluate(_DOCUMENT_PROBLEMS)
        screenshot(version_page, f"document-{kind}")
        _seen(f"document {kind}", version_page, contrasts, focus)

    # The checker itself finds what it looks for (on a page made to fail every check).
    anonymous.set_content(
        "<html><body><h1>a</h1><h1>b</h1><input name=q><button></button><table></table>"
        "<img src='data:,'><iframe src='about:blank'></iframe></body></html>"
    )
    assert len(anonymous.evaluate(_PROBLEMS)) == 8, anonymous.evaluate(_PROBLEMS)

    _write_contrast_summary(contrasts, focus)
    found = {label: found for label, found in problems.items() if found}
    assert found == {}, found
    # Every page was measured (an empty measurement would pass every page).
    assert all(c.checked > 10 for c in contrasts.values()), contrasts
    assert all(focus[label].stops > 0 for label in PAGES), focus
    low = {label: [*c.failures, *c.problems] for label, c in contrasts.items() if not c.passed}
    assert low == {}, f"text below WCAG AA contrast: {low}"
    unfocused = {label: f.problems for label, f in focus.items() if f.problems}
    assert unfocused == {}, f"focus not visible: {unfocused}"
    assert external_requests.urls == [], f"requests left 127.0.0.1: {external_requests.urls}"


#: Grey text made to fail and pass at the edges of the WCAG AA thresholds (ratios on white).
_MADE_TO_FAIL = """<html lang="en"><body>
<p style="color:#777777">grey 4.48 fails</p>
<p style="color:#767676">grey 4.54 passes</p>
<p style="color:#999999">grey 2.85 fails</p>
<h2 style="font-size:24px;font-weight:400;color:#949494">large 3.03 passes</h2>
<p style="font-size:18px;font-weight:700;color:#949494">bold 18px is not large, fails</p>
<p style="font-size:19px;font-weight:700;color:#949494">bold 19px is large, passes</p>
<div style="background:rgba(0,0,0,0.5)">
<span style="color:#ffffff">white on half black fails</span></div>
<div style="background:#1b1f24"><span style="color:#ffffff">white on ink passes</span></div>
<p style="color:#000000;opacity:0.3">faded black fails</p>
<input aria-label="q" style="color:#aaaaaa" value="pale typed text">
<span style="position:absolute;width:1px;height:1px;overflow:hidden;color:#eeeeee">hidden</span>
<button disabled style="color:#dddddd">disabled is exempt</button>
<a href="#a">default focus ring</a>
<a href="#b" style="outline:none">no focus ring</a>
<a href="#c" style="outline:3px solid #eeeeee">pale focus ring</a>
</body></html>"""


def test_the_contrast_checker_fails_grey_text_and_hidden_focus(new_page: Any) -> None:
    page = new_page()
    page.set_content(_MADE_TO_FAIL)
    found = contrast(page)
    failed = {row["text"]: row for row in found.failures}
    assert sorted(failed) == [
        "bold 18px is not large, fails",
        "faded black fails",
        "grey 2.85 fails",
        "grey 4.48 fails",
        "pale typed text",
        "white on half black fails",
    ], found.failures
    assert failed["grey 2.85 fails"]["ratio"] == 2.85
    assert failed["grey 2.85 fails"]["background"] == "#ffffff"
    assert failed["white on half black fails"]["background"] == "#808080"
    assert found.minimum == 2.11  # black at 30% opacity on white
    assert found.checked == 13 and found.problems == []  # hidden and disabled text not counted

    focus = focus_problems(page)
    assert focus.stops == 4
    assert len(focus.problems) == 2, focus.problems
    assert "no visible focus" in focus.problems[0] and "no focus ring" in focus.problems[0]
    assert "pale focus ring" in focus.problems[1] and "needs 3:1" in focus.problems[1]


_STATES = ["candidate", "validated", "approved", "shadow", "production", "retired", "rejected"]

#: Every coloured state of the dashboard's stylesheet, as the templates mark it up.
_SPECIMEN = """<html lang="en"><head><style>{css}</style></head><body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="site-header"><a class="brand" href="#">bedside</a>
<nav aria-label="Main"><ul><li><a href="#" aria-current="page">Models</a></li>
<li><a href="#">Audit ledger</a></li></ul></nav>
<div class="who"><span>Signed in as <strong>Ada</strong> (ada; cmio)</span>
<button type="button" class="secondary">Sign out</button></div></header>
<main id="main" tabindex="-1"><h1>Specimen</h1>
<p class="flash" role="status">Promoted to production.</p>
<p class="alert" role="alert">Refused: a promotion signature by a CMIO is missing.</p>
<p class="verified">Ledger verified: 12 events</p><p class="bad">Ledger BROKEN at event #4</p>
<p class="hint">A hint under a form.</p><p class="notice">By signing you take responsibility.</p>
<p>{states}</p>
<table><caption>Gates</caption>
<thead><tr><th scope="col">Gate</th><th scope="col">Verdict</th><th scope="col">Reason</th>
</tr></thead><tbody>
<tr class="fail"><th scope="row">discrimination</th><td>fail</td><td>AUROC below 0.7</td></tr>
<tr class="pass"><th scope="row">calibration</th><td>pass</td><td class="small">slope 0.98</td></tr>
</tbody></table>
<dl class="facts"><dt>Run</dt><dd><code>0a1b2c</code></dd></dl>
<details><summary>Earlier events</summary><p>none</p></details>
<div class="card"><label for="t">Threshold</label><input id="t" value="0.31" placeholder="0.25">
<label for="m">Meaning</label><select id="m"><option>approved</option></select>
<label for="c">Comment</label><textarea id="c" placeholder="Why"></textarea>
<label class="check"><input type="checkbox"> admin</label></div>
<form class="inline"><label for="r">Role</label><input id="r" value="auditor">
<button type="button" class="secondary">Grant</button></form>
<div class="button-row"><button type="button">Promote</button>
<button type="button" class="danger">Retire</button></div>
</main><footer class="site-footer"><p>Aggregates only.</p></footer></body></html>"""


def test_every_coloured_state_of_the_stylesheet_has_contrast(new_page: Any) -> None:
    """Flash, alert, failed gate rows, state badges, buttons: states the page walk may not show."""
    css = (REPO / "src" / "bedside" / "dashboard" / "static" / "bedside.css").read_text("utf-8")
    states = " ".join(f'<span class="state state-{s}">{s}</span>' for s in _STATES)
    page = new_page()
    page.set_content(_SPECIMEN.format(css=css, states=states))
    # The stylesheet is applied (an unstyled page would pass on black and white).
    assert page.evaluate("getComputedStyle(document.querySelector('.alert')).paddingLeft") != "0px"
    found = contrast(page)
    focus = focus_problems(page)
    screenshot(page, "page-colour-specimen")
    assert found.checked > 30, found
    assert found.passed, f"text below WCAG AA contrast: {[*found.failures, *found.problems]}"
    assert focus.stops >= 12 and focus.problems == [], focus
