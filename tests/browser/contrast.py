"""Colour contrast and focus visibility, measured in the browser (WCAG 2.1 AA, 1.4.3 and 2.4.7).

``contrast(page)`` evaluates, in the page, every visible element that has its own text (a
non-blank text node among its children) and every visible text field, select and text button:
its computed ``color`` against its effective background — the element's ``background-color``
and its ancestors', composed (alpha over alpha) down to the first opaque one, over white. The
WCAG 2.1 contrast ratio must be at least 4.5:1, or 3:1 for large text (at least 24px, or at
least 18.66px and bold). Placeholders count as text. Disabled controls are exempt (WCAG says so),
and so is text hidden from sight (``display: none``, ``visibility: hidden``, or the 1-pixel
"visually hidden" box of screen-reader-only labels). An element's ``opacity`` (and its
ancestors') fades its text. A background image behind text cannot be measured: it is reported
as a problem to check by hand. Text drawn inside images (the report's PNG charts) is not seen.

``focus_problems(page)`` presses Tab through the page, as a keyboard user does, and requires
each link, button and form control that receives focus to show it: a computed outline (style
not ``none``, width above zero) or a box shadow; a solid outline's colour must also have 3:1
against the background around the element (WCAG 2.1 1.4.11).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Shared JavaScript: colour parsing, alpha composition, the effective background, the ratio.
_COMMON = r"""
  const WHITE = { r: 255, g: 255, b: 255, a: 1 };
  const parse = (text) => {
    const m = /^rgba?\(([^)]*)\)$/.exec(String(text).trim());
    if (!m) return null;
    const parts = m[1].split(/[\s,\/]+/).filter((p) => p !== "");
    if (parts.length < 3) return null;
    const channel = (p) => (p.endsWith("%") ? (parseFloat(p) * 255) / 100 : parseFloat(p));
    const alpha = parts.length > 3
      ? (parts[3].endsWith("%") ? parseFloat(parts[3]) / 100 : parseFloat(parts[3])) : 1;
    const c = { r: channel(parts[0]), g: channel(parts[1]), b: channel(parts[2]), a: alpha };
    return [c.r, c.g, c.b, c.a].some(Number.isNaN) ? null : c;
  };
  // Source-over composition of ``top`` on ``bottom``.
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    if (a === 0) return { r: 0, g: 0, b: 0, a: 0 };
    const mix = (t, b) => (t * top.a + b * bottom.a * (1 - top.a)) / a;
    return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a };
  };
  const hex = (c) => "#" + [c.r, c.g, c.b]
    .map((v) => Math.round(v).toString(16).padStart(2, "0")).join("")
    + (c.a < 1 ? ` (alpha ${Math.round(c.a * 100) / 100})` : "");
  const luminance = (c) => {
    const lin = (v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  };
  const ratio = (x, y) => {
    const [l1, l2] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (l1 + 0.05) / (l2 + 0.05);
  };
  // The colour behind ``el``: its own and its ancestors' backgrounds down to an opaque one,
  // on white. Returns {color} or {problem} (a background image, or a colour not given as rgb).
  const background = (el) => {
    const layers = [];
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const cs = getComputedStyle(n);
      if (cs.backgroundImage && cs.backgroundImage !== "none")
        return { problem: `a background image on ${where(n)}: check by hand` };
      const bg = parse(cs.backgroundColor);
      if (!bg)
        return { problem: `background-color ${cs.backgroundColor} of ${where(n)} not understood` };
      if (bg.a > 0) layers.push(bg);
      if (bg.a >= 1) break;
    }
    let color = WHITE;
    for (const layer of layers.reverse()) color = over(layer, color);
    return { color };
  };
  const where = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (typeof el.className === "string" && el.className.trim())
      s += "." + el.className.trim().split(/\s+/).join(".");
    const parent = el.parentElement;
    return parent && parent !== document.body && parent !== document.documentElement
      ? `${where(parent).split(" > ").slice(-2).join(" > ")} > ${s}` : s;
  };
"""

#: Every visible text, its colours, size and ratio; the failures and the lowest ratio.
_CONTRAST = (
    "() => {"
    + _COMMON
    + r"""
  const out = { checked: 0, failures: [], problems: [], lowest: null };
  const visible = (el) => {
    if (el.getClientRects().length === 0) return false;
    const cs = getComputedStyle(el);
    if (cs.visibility !== "visible") return false;
    const box = el.getBoundingClientRect();
    return box.width > 1 && box.height > 1;  // not the 1-pixel box of a screen-reader-only label
  };
  const fade = (el) => {
    let opacity = 1;
    for (let n = el; n && n.nodeType === 1; n = n.parentElement)
      opacity *= parseFloat(getComputedStyle(n).opacity);
    return opacity;
  };
  const ownText = (el) => Array.from(el.childNodes)
    .filter((n) => n.nodeType === 3).map((n) => n.textContent)
    .join(" ").replace(/\s+/g, " ").trim();
  const check = (el, colorText, text, what) => {
    const cs = getComputedStyle(el);
    const fg = parse(colorText);
    if (!fg) {
      out.problems.push(`${what} colour ${colorText} of ${where(el)} not understood`);
      return;
    }
    const bg = background(el);
    if (bg.problem) { out.problems.push(bg.problem + ` (behind "${text.slice(0, 40)}")`); return; }
    const shown = over({ ...fg, a: fg.a * fade(el) }, bg.color);
    const size = parseFloat(cs.fontSize);
    const bold = parseInt(cs.fontWeight, 10) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const required = large ? 3 : 4.5;
    const value = ratio(shown, bg.color);
    const row = {
      where: where(el) + (what === "text" ? "" : ` (${what})`), text: text.slice(0, 60),
      color: hex(fg), background: hex(bg.color), ratio: Math.round(value * 100) / 100,
      required, size: Math.round(size * 10) / 10, bold,
    };
    out.checked += 1;
    if (out.lowest === null || value < out.lowest.exact) out.lowest = { ...row, exact: value };
    if (value < required) out.failures.push(row);
  };
  const SKIP = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "OPTION", "OPTGROUP", "TITLE"]);
  const FIELDS = new Set(["", "text", "password", "email", "number", "search", "url", "tel", "date",
    "datetime-local", "time", "month", "week", "submit", "button", "reset"]);
  for (const el of document.querySelectorAll("body, body *")) {
    if (SKIP.has(el.tagName) || el.closest(":disabled") || !visible(el)) continue;
    const svg = el instanceof SVGElement;
    const text = ownText(el);
    if (text) check(el, svg ? getComputedStyle(el).fill : getComputedStyle(el).color, text, "text");
    const field = el.tagName === "SELECT" || el.tagName === "TEXTAREA"
      || (el.tagName === "INPUT" && FIELDS.has((el.getAttribute("type") || "").toLowerCase()));
    if (field) {
      const value = el.tagName === "SELECT"
        ? (el.selectedOptions[0] ? el.selectedOptions[0].textContent.trim() : "")
        : (el.type === "password" ? "" : el.value);
      check(el, getComputedStyle(el).color, value || "(typed text)", "field text");
      if (el.placeholder)
        check(el, getComputedStyle(el, "::placeholder").color, el.placeholder, "placeholder");
    }
  }
  if (out.lowest) delete out.lowest.exact;
  return out;
}"""
)

#: Install a ``focusin`` recorder: each newly focused element's focus indicator, in Tab order;
#: ``done`` once focus comes back to an element already recorded (the Tab order wrapped).
_RECORD_FOCUS = (
    "() => {"
    + _COMMON
    + r"""
  const log = { events: 0, done: false, stops: [] };
  const seen = new WeakSet();
  window.__bedsideFocus = log;
  if (document.activeElement) document.activeElement.blur();
  document.addEventListener("focusin", (event) => {
    const el = event.target;
    log.events += 1;
    if (log.done || !(el instanceof Element) || el.tagName === "IFRAME") return;
    if (seen.has(el)) { log.done = true; return; }
    seen.add(el);
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0;
    const shadow = Boolean(cs.boxShadow) && cs.boxShadow !== "none";
    const stop = { where: where(el), text: (el.textContent || el.value || "").trim().slice(0, 40),
      outline: `${cs.outlineStyle} ${cs.outlineWidth} ${cs.outlineColor}`,
      visible: outline || shadow, keyboard: el.matches(":focus-visible"), ratio: null };
    // A drawn outline sits around the element: it needs 3:1 against what surrounds it.
    const drawn = outline && cs.outlineStyle !== "auto" && parseFloat(cs.outlineOffset) >= 0;
    if (drawn && el.parentElement) {
      const ring = parse(cs.outlineColor);
      const bg = background(el.parentElement);
      if (ring && bg.color)
        stop.ratio = Math.round(ratio(over(ring, bg.color), bg.color) * 100) / 100;
    }
    log.stops.push(stop);
  }, true);
  // How many tab stops the page seems to have (the recorder, not this guess, decides).
  const candidates = document.querySelectorAll(
    "a[href], button, input, select, textarea, summary, iframe, [tabindex]");
  return Array.from(candidates).filter((el) => el.tabIndex >= 0 && !el.disabled
    && el.type !== "hidden" && el.getClientRects().length > 0).length;
}"""
)

#: The most Tab presses spent on one page before giving up on reaching its end.
MAX_TAB_STOPS = 200
#: Tab presses between two further looks at the recorder, once the expected stops are passed.
_MORE = 3


@dataclass
class Contrast:
    """What ``contrast(page)`` found on one page."""

    checked: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lowest: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures and not self.problems

    @property
    def minimum(self) -> float | None:
        return None if self.lowest is None else float(self.lowest["ratio"])


def contrast(page: Any) -> Contrast:
    """Measure the contrast of every visible text on ``page`` (see the module docstring)."""
    found = page.evaluate(_CONTRAST)
    return Contrast(found["checked"], found["failures"], found["problems"], found["lowest"])


@dataclass
class Focus:
    """What ``focus_problems(page)`` found: how many elements took focus, and those that hid it."""

    stops: int
    problems: list[str] = field(default_factory=list)


def focus_problems(page: Any) -> Focus:
    """Tab through ``page`` from its start; every focused element must show that it has focus."""
    # Press Tab as often as the page seems to have tab stops, then on until the order wraps.
    presses = page.evaluate(_RECORD_FOCUS) + 1
    log = page.evaluate("() => window.__bedsideFocus")
    pressed = 0
    while pressed < MAX_TAB_STOPS:
        for _ in range(presses):
            page.keyboard.press("Tab")
        pressed += presses
        events = log["events"]
        log = page.evaluate("() => window.__bedsideFocus")
        if log["done"] or log["events"] == events:  # wrapped around, or nothing takes focus
            break
        presses = _MORE
    result = Focus(len(log["stops"]))
    if not log["done"] and pressed >= MAX_TAB_STOPS:
        result.problems.append(f"the Tab order did not end after {pressed} presses")
    for stop in log["stops"]:
        name = f"{stop['where']} {stop['text']!r}"
        if not (stop["visible"] and stop["keyboard"]):
            result.problems.append(f"no visible focus on {name}: outline {stop['outline']}")
        elif stop["ratio"] is not None and stop["ratio"] < 3:
            result.problems.append(
                f"focus outline of {name} has {stop['ratio']}:1 on its background (needs 3:1)"
            )
    return result
