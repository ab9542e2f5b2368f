"""Scheduled monitoring: due checks, retries, one runner per project, and a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bedside.errors import InvalidInput
from bedside.service import Platform
from bedside.serving.scheduler import MonitorScheduler, monitoring_intervals
from tests.serving.lifecycle_support import MODEL, to_production
from tests.serving.support import free_port, record
from tests.support import Clock, Team


class Calls:
    def __init__(self, fail_first: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.names: list[str] = []
        self.fail_first = fail_first
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, name: str) -> object:
        with self.lock:
            self.names.append(name)
            if len(self.names) <= self.fail_first:
                raise self.error("nothing to monitor yet" if self.error is InvalidInput else "boom")
        return {"ok": True}


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_due_models_are_checked_each_interval_and_failures_retried(tmp_path: Path) -> None:
    calls = Calls(fail_first=2)
    scheduler = MonitorScheduler(
        intervals=lambda: {"fast": 0.1, "slow": 3600.0},
        check=calls,
        folder=tmp_path,
        tick=0.02,
    ).start()
    try:
        _wait(lambda: len(calls.names) >= 4, "four checks")
    finally:
        scheduler.stop()
    assert set(calls.names) == {"fast"}  # "slow" is not due for an hour
    assert scheduler.failures == 2 and scheduler.checks >= 4  # failed twice, then kept going


def test_nothing_to_monitor_is_not_a_failure(tmp_path: Path) -> None:
    calls = Calls(fail_first=1, error=InvalidInput)
    scheduler = MonitorScheduler(
        intervals=lambda: {"m": 1.0}, check=calls, folder=tmp_path, interval=0.05, tick=0.02
    ).start()
    try:
        _wait(lambda: len(calls.names) >= 2, "two checks")
    finally:
        scheduler.stop()
    assert scheduler.failures == 0


def test_one_scheduler_per_project_runs_and_another_takes_over(tmp_path: Path) -> None:
    first_calls, second_calls = Calls(), Calls()
    options = {"intervals": lambda: {"m": 0.05}, "folder": tmp_path, "tick": 0.02}
    first = MonitorScheduler(check=first_calls, **options).start()  # type: ignore[arg-type]
    _wait(lambda: first.holds_lock, "the first scheduler's lock")
    second = MonitorScheduler(check=second_calls, **options).start()  # type: ignore[arg-type]
    try:
        _wait(lambda: len(first_calls.names) >= 3, "checks by the first")
        assert second_calls.names == [] and not second.holds_lock
        first.stop()
        _wait(lambda: len(second_calls.names) >= 2, "the second to take over")
    finally:
        first.stop()
        second.stop()


def test_the_schedule_survives_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    calls = Calls()

    def scheduler() -> MonitorScheduler:
        return MonitorScheduler(
            intervals=lambda: {"m": 60.0}, check=calls, folder=tmp_path, clock=lambda: now[0]
        )

    running = scheduler()
    assert running._acquire()
    assert running.run_due() == []  # first seen: checked one interval later
    now[0] += 61
    assert running.run_due() == ["m"]
    running.stop()
    now[0] += 30
    again = scheduler()
    assert again._acquire()
    assert again.run_due() == []  # 30 s after the last check, not a fresh start
    now[0] += 31
    assert again.run_due() == ["m"]
    again.stop()
    with pytest.raises(InvalidInput, match="positive"):
        MonitorScheduler(intervals=dict, check=calls, folder=tmp_path, interval=0)


def test_intervals_come_from_the_live_versions_pipeline(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path
) -> None:
    assert monitoring_intervals(platform) == {}
    to_production(platform, team, clock, tmp_path)
    assert monitoring_intervals(platform) == {MODEL: 24 * 3600.0}


@pytest.mark.slow
def test_bedside_serve_runs_monitoring_on_schedule(
    platform: Platform, team: Team, clock: Clock, tmp_path: Path
) -> None:
    if platform.database.dialect != "sqlite":
        pytest.skip("one backend is enough: the schedule does not depend on it (~30 s a run)")
    version = to_production(platform, team, clock, tmp_path)
    (tmp_path / "bedside.toml").write_text('[bedside]\nlog_level = "INFO"\n', encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "BEDSIDE_HOME": str(tmp_path),
        "BEDSIDE_DATABASE_URL": platform.database.url,
        "BEDSIDE_KEYS_DIR": str(platform.keys.folder),
        "BEDSIDE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
    }
    errors = (tmp_path / "serve.err").open("wb")
    command = [sys.executable, "-m", "bedside", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--monitor-interval", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    url = f"http://127.0.0.1:{port}"

    def checked() -> int:
        return len(platform.list_audit_events(team.auditor, action_prefix="monitoring.checked"))

    try:
        _wait(lambda: _ready(url, proc), "the server", timeout=120)
        with httpx.Client(base_url=url, timeout=10) as client:
            for seed in range(40):
                answer = client.post(f"/v1/models/{MODEL}/predict", json={"features": record(seed)})
                assert answer.status_code == 200, answer.text
                assert answer.json()["version"] == str(version.version)
        try:
            _wait(lambda: checked() >= 1, "a scheduled monitoring.checked event", timeout=120)
        except AssertionError:
            errors.flush()
            log = (tmp_path / "serve.err").read_text(encoding="utf-8")[-2000:]
            raise AssertionError(f"no scheduled check; the server said:\n{log}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
            proc.wait()
            errors.close()
    events = platform.list_audit_events(team.auditor, action_prefix="monitoring.checked")
    assert all(e.subject_id == MODEL for e in events)
    assert all((e.after or {}).get("rows", 0) >= 1 for e in events), events


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"bedside serve exited with {proc.returncode}")
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
