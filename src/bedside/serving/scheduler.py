"""Scheduled monitoring inside the prediction server.

A :class:`MonitorScheduler` thread runs ``check(model_name)`` for every served model that has a
production version, every ``drift_check_interval`` of that version's pipeline file (or every
``interval`` seconds when one is given, for tests and demos). With several worker processes
exactly one runs the schedule: the one holding an exclusive ``flock`` on a lock file in the
project home; the others try again now and then and take over when the holder exits (the kernel
releases a dead process's lock).

When each model was last checked is kept beside the lock (``last-checks.json``), so a restart
does not reset the schedule: a model is first checked one interval after the schedule first saw
it. A failing check is logged (its type and bedside error code, never its data) and tried again
at the next interval; "nothing to monitor yet" (no production version, no predictions in the
window) is logged at INFO and is not an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from bedside.errors import BedsideError, InvalidInput, InvalidTransition

__all__ = [
    "MonitorScheduler",
    "monitoring_intervals",
    "scheduled_check",
]

logger = logging.getLogger(__name__)

LOCK_FILE: Final = "monitor.lock"
STATE_FILE: Final = "last-checks.json"

#: ``{model name: seconds between checks}`` for every model to check now.
Intervals = Callable[[], Mapping[str, float]]
#: Runs one check of a model (records ``monitoring.checked`` in the ledger).
Check = Callable[[str], object]


def monitoring_intervals(platform: Any) -> dict[str, float]:
    """Return ``{model: drift_check_interval in seconds}`` for models with a production version.

    The interval comes from the live version's own pipeline file (``monitoring`` stage).
    """
    from bedside.domain.models import VersionState
    from bedside.domain.specfile import load_pipeline_text

    found: dict[str, float] = {}
    with platform._read() as tx:
        for model in tx.registry.list_models():
            live = next(
                (v for v in tx.registry.list_versions(model) if v.state is VersionState.PRODUCTION),
                None,
            )
            if live is None or live.pipeline_sha256 is None:
                continue
            record = tx.registry.find_pipeline(live.pipeline_sha256)
            if record is None:
                continue
            spec = load_pipeline_text(record.content, source=record.name).spec
            interval: timedelta = spec.monitoring.drift_check_interval
            found[model.name] = interval.total_seconds()
    return found


def scheduled_check(platform: Any) -> Check | None:
    """Return the check the server runs on schedule, or ``None`` when none is available.

    ``Platform.monitor_scheduled(name)`` when the platform has it, else
    ``bedside.monitor_stage.run_monitoring(platform, None, name)`` (the scheduled check, acting as
    the system) when that module exists.
    """
    method = getattr(platform, "monitor_scheduled", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    import importlib.util

    if importlib.util.find_spec("bedside.monitor_stage") is None:
        return None
    import importlib

    run_monitoring = importlib.import_module("bedside.monitor_stage").run_monitoring

    def check(name: str) -> object:
        return run_monitoring(platform, None, name)

    return check


class MonitorScheduler:
    """Runs ``check(name)`` for each model every interval, in one process of the server.

    Args:
        intervals: returns ``{model: seconds}`` for the models to check (read at every tick, so
            promotions and changed intervals are followed).
        check: runs one check.
        folder: where the lock file and the last-check times are kept (created).
        interval: seconds between checks for every model, overriding ``intervals``' values.
        tick: how often the thread wakes to look for due checks and for the lock (s).
        clock: wall-clock seconds (the last-check times are wall-clock).
    """

    def __init__(
        self,
        *,
        intervals: Intervals,
        check: Check,
        folder: Path,
        interval: float | None = None,
        tick: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval is not None and interval <= 0:
            raise InvalidInput(f"The monitoring interval must be positive; got {interval}.")
        self.intervals = intervals
        self.check = check
        self.folder = Path(folder)
        self.interval = interval
        self.tick = min(tick, interval) if interval is not None else tick
        self.clock = clock
        self.checks = 0  # checks run by this process (for tests and metrics)
        self.failures = 0
        self._stop = threading.Event()
        self._lock_fd = -1
        self._thread = threading.Thread(target=self._run, name="bedside-monitor", daemon=True)

    @property
    def holds_lock(self) -> bool:
        """Return whether this process runs the schedule."""
        return self._lock_fd >= 0

    def start(self) -> MonitorScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the running check (if any); release the lock."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._release()

    # ---------------------------------------------------------------------------- the thread

    def _acquire(self) -> bool:
        if self._lock_fd >= 0:
            return True
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        logger.info("this server process runs the monitoring schedule (pid %d)", os.getpid())
        return True

    def _release(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _load(self) -> dict[str, float]:
        try:
            data = orjson.loads((self.folder / STATE_FILE).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def _save(self, last: Mapping[str, float]) -> None:
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(dict(last)))
        tmp.replace(self.folder / STATE_FILE)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._acquire():
                    self.run_due()
            except Exception as exc:  # keep the schedule alive; say what failed
                logger.error("monitoring schedule failed: %s", type(exc).__name__)
                logger.debug("traceback of the schedule failure", exc_info=exc)
            self._stop.wait(self.tick)

    def run_due(self) -> list[str]:
        """Run every check that is due now; return the models checked (holding the lock)."""
        now = self.clock()
        wanted = dict(self.intervals())
        last = self._load()
        changed = False
        for name in wanted.keys() - last.keys():
            last[name] = now  # first seen now: first check one interval later
            changed = True
        ran = []
        for name, every in sorted(wanted.items()):
            if self._stop.is_set():
                break
            every = self.interval if self.interval is not None else every
            if now - last[name] < every:
                continue
            self._check_one(name)
            ran.append(name)
            last[name] = self.clock()
            changed = True
        if changed:
            self._save(last)
        return ran

    def _check_one(self, name: str) -> None:
        self.checks += 1
        try:
            self.check(name)
        except (InvalidInput, InvalidTransition) as exc:
            logger.info("scheduled monitoring of %s: nothing to check (%s)", name, exc.code)
        except BedsideError as exc:
            self.failures += 1
            logger.error(
                "scheduled monitoring of %s failed (%s: %s); retried at the next interval",
                name,
                type(exc).__name__,
                exc.code,
            )
        except Exception as exc:
            self.failures += 1
            logger.error(
                "scheduled monitoring of %s failed (%s); retried at the next interval",
                name,
                type(exc).__name__,
            )
            logger.debug("traceback of the monitoring failure", exc_info=exc)
        else:
            logger.info("scheduled monitoring of %s done", name)
