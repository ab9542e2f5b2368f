"""Fixtures for the ingest tests: the FHIR test server running as a real uvicorn server.

The server listens on 127.0.0.1 on a free port in a background thread for the whole module; each
test gets it with fresh state (no jobs, empty request log, default configuration).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from tests.ingest.fhir_server import RunningFhirServer, ServerState, create_app


@pytest.fixture(scope="module")
def _fhir_server_thread() -> Iterator[RunningFhirServer]:
    state = ServerState()
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(state),
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,  # do not reconfigure the test process's logging
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the FHIR test server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield RunningFhirServer(f"http://127.0.0.1:{port}/fhir", state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def fhir_server(_fhir_server_thread: RunningFhirServer) -> RunningFhirServer:
    """Return the running FHIR test server with its state reset for this test."""
    _fhir_server_thread.state.reset()
    return _fhir_server_thread
