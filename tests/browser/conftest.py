"""Fixtures of the browser tests: a trained project, a real server on 127.0.0.1, Chromium.

* ``template_project`` (session): a project with one user per role and version 1 trained
  (candidate), built once — see ``project.py``.
* ``shared_server`` (session): ``bedside serve`` on a copy of it, for the flow and the
  accessibility tests. The permission matrix starts its own server on its own copy, because it
  changes state that the flow test walks through itself.
* ``browser`` (session): Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, headless.
  The tests skip, saying why, only when that binary is missing (CI's ``.ci/run`` installs it).

Screenshots go to ``$BEDSIDE_SCREENSHOTS`` (default ``build/screenshots`` in the repository).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.project import build_project, copy_project
from tests.support import REPO

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("BEDSIDE_SCREENSHOTS") or REPO / "build" / "screenshots")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real ``bedside serve`` process on 127.0.0.1 over one project folder."""

    home: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    _platform: Any = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def platform(self) -> Any:
        """The project opened in this process (to check effects in the database)."""
        if self._platform is None:
            from tests.browser.project import open_platform

            self._platform = open_platform(self.home)
        return self._platform


def _environment(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BEDSIDE_") and key not in {"HTTP_PROXY", "HTTPS_PROXY"}
    }
    env.update(
        BEDSIDE_HOME=str(home),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def start_server(home: Path) -> Server:
    """Start ``bedside serve`` on a free port over ``home``; return when /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "bedside", "--project", str(home), "serve"]
    command += ["--port", str(port), "--no-monitor"]
    log = home / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO, env=_environment(home), stdout=subprocess.DEVNULL, stderr=stderr
        )
    server = Server(home, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with code {process.returncode}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    stop_server(server)
    raise AssertionError(f"the server did not answer /healthz in 90 s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)
    if server._platform is not None:
        server._platform.database.dispose()


@pytest.fixture(scope="session")
def template_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("browser-template") / "project"
    build_project(home)
    return home


@pytest.fixture(scope="session")
def serve_copy(
    template_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Server]]:
    """Start a server on a fresh copy of the template project (stopped at the end)."""
    started: list[Server] = []

    def start(name: str) -> Server:
        home = copy_project(template_project, tmp_path_factory.mktemp(name) / "project")
        server = start_server(home)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="session")
def shared_server(serve_copy: Callable[[str], Server]) -> Server:
    return serve_copy("shared")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run these tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class ExternalRequests:
    """Every request a page made to anywhere but 127.0.0.1 (there must be none)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "about", "blob"):
            return
        if parts.hostname != "127.0.0.1":
            self.urls.append(request.url)


@pytest.fixture
def external_requests() -> ExternalRequests:
    return ExternalRequests()


@pytest.fixture
def new_page(browser: Any, external_requests: ExternalRequests) -> Iterator[Callable[[], Any]]:
    """Open pages in fresh browser contexts (one signed-in person each) that record requests."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.set_default_timeout(60_000)  # a loaded CI machine can be slow
        context.on("request", external_requests)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    assert external_requests.urls == [], f"requests left 127.0.0.1: {external_requests.urls}"


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``name``.png in the screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def clear_screenshots() -> None:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
