"""Run the prediction server with uvicorn, in one process or several worker processes.

With ``workers > 1`` the parent binds the socket and forks the workers; each calls
``app_factory()`` itself (so each opens its own inference log stream and model thread after the
fork) and accepts connections from the shared socket. The parent forwards SIGTERM/SIGINT to the
workers and restarts a worker that dies unexpectedly.

Shutdown is graceful: on SIGTERM or SIGINT uvicorn stops accepting connections, lets in-flight
requests finish, then the app's shutdown drains the batcher and closes the inference log (every
pending record is written and flushed) before the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

__all__ = ["serve", "uvicorn_config"]

logger = logging.getLogger(__name__)

AppFactory = Callable[[], Any]


def uvicorn_config(
    app_factory: AppFactory,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    graceful_timeout: float = 30.0,
) -> uvicorn.Config:
    """Return the uvicorn configuration the server runs with (uvloop/httptools when present)."""
    return uvicorn.Config(
        app_factory,
        factory=True,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        lifespan="on",
        access_log=False,  # one log line per request costs more than the request
        log_config=None,  # bedside.logs configures logging, not uvicorn
        log_level=log_level,
        timeout_graceful_shutdown=int(graceful_timeout),
        backlog=2048,
    )


def serve(
    app_factory: AppFactory,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
    graceful_timeout: float = 30.0,
) -> None:
    """Serve ``app_factory()`` on ``host:port`` until SIGTERM/SIGINT; return after a clean stop.

    Args:
        app_factory: builds the ASGI app (e.g. a closure over :func:`create_app`); called once per
            worker process, after the fork.
        workers: worker processes (1: serve in this process).
    """
    config = uvicorn_config(
        app_factory, host=host, port=port, log_level=log_level, graceful_timeout=graceful_timeout
    )
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    sock = config.bind_socket()
    _Supervisor(config, sock, workers).run()


class _Supervisor:
    """Forks ``workers`` uvicorn servers sharing one listening socket; restarts crashed ones."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, workers: int) -> None:
        self.config = config
        self.sock = sock
        self.workers = workers
        self.children: set[int] = set()
        self.stopping = False

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                uvicorn.Server(self.config).run(sockets=[self.sock])
            except BaseException:
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children.add(pid)

    def _stop(self, signum: int, _: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM if signum != signal.SIGINT else signal.SIGINT)
            except ProcessLookupError:
                self.children.discard(pid)

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.workers):
                self._spawn()
            logger.info("serving with %d worker processes", self.workers)
            while self.children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries wait()
                    continue
                self.children.discard(pid)
                if not self.stopping:
                    logger.error("worker %d exited (status %d); starting another", pid, status)
                    time.sleep(0.5)  # do not spin if every start fails
                    self._spawn()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
