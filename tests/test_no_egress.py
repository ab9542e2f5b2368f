"""No egress: a tracking session reaches nothing but the machine itself.

Two layers. In this process, a realistic session (experiment, run, params, metrics, dataset,
HistGradientBoosting model, registration, alias, load) runs under an audit hook that records
every socket connect, DNS look-up and started program. In a fresh process with a scrubbed
environment (no telemetry switches, no CI or pytest variables — MLflow switches its telemetry
off by itself under pytest, which would hide the very thing we test), the same session runs
through bedside, and a control session runs through plain MLflow: the control must be seen
phoning MLflow's telemetry host, which proves both that the hook sees real egress and that
bedside's switch is what stops it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from bedside.stores.tracking import EGRESS_SWITCHES, Tracker
from tests.egress import Destination, EgressRecorder
from tests.support import REPO

RECORDER = EgressRecorder.install()
# Programs a session may start: git (lineage), uname and lscpu (CPU/platform introspection by
# the standard library and joblib). Anything else — pip, uv, curl — could reach the network
# out of the audit hook's sight.
ALLOWED_PROGRAMS = {"git", "uname", "lscpu"}
TELEMETRY_HOST = "config.mlflow-telemetry.io"


def _session(tracker: Tracker, repo: Path) -> None:
    from bedside.stores.lineage import lineage_tags

    rng = np.random.default_rng(11)
    features = pd.DataFrame({"age": rng.integers(18, 89, 400), "lactate": rng.gamma(2, 1, 400)})
    label = (features["lactate"] + rng.normal(0, 1, 400) > 2.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(features, label)
    tags = lineage_tags(
        repo,
        dataset_digest="d" * 64,
        pipeline_file=REPO / "examples" / "sepsis" / "pipeline.yaml",
        lock_file=REPO / "uv.lock",
    )
    with tracker.run("no-egress", run_name="session", tags=tags, user="dana") as run_id:
        tracker.log_params(run_id, model.get_params())
        tracker.log_metrics(run_id, {"auroc": 0.81, "test.auroc.ci_low": 0.74})
        tracker.log_dataset(
            run_id, features, name="train", digest="d" * 64, source=str(repo / "snap.parquet")
        )
        logged = tracker.log_model(run_id, model, features=features, lock_file=REPO / "uv.lock")
    version = tracker.register_model(logged, "no-egress-model", tags={"bedside.state": "x"})
    tracker.set_champion("no-egress-model", version.version)
    tracker.set_shadow("no-egress-model", version.version)
    loaded = tracker.load_model(version.model_id or "")
    assert (loaded.predict_proba(features) == model.predict_proba(features)).all()


def test_no_egress_in_a_tracking_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with RECORDER.recording():
        tracker = Tracker(
            f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            artifact_location=tmp_path / "mlflow" / "artifacts",
        )
        _session(tracker, REPO)
    assert RECORDER.non_local() == []
    assert set(RECORDER.programs) <= ALLOWED_PROGRAMS, RECORDER.programs
    assert "git" in RECORDER.programs  # the hook did watch the session: lineage ran git
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow"]  # no ./mlruns, ./mlflow.db
    for name, value in EGRESS_SWITCHES.items():
        assert os.environ[name] == value


def test_egress_recorder_catches_a_lookup_and_a_connect() -> None:
    """The control: the hook records non-loopback attempts, so the test above can fail."""
    with RECORDER.recording():
        with pytest.raises(OSError):
            socket.getaddrinfo("example.invalid", 80)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.05)
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed
        except OSError:
            pass
        finally:
            probe.close()
    assert RECORDER.non_local() == [
        Destination("socket.getaddrinfo", "example.invalid", 80),
        Destination("socket.connect", "192.0.2.1", 9),
    ]
    assert RECORDER.non_local(allowed_hosts=frozenset({"example.invalid", "192.0.2.1"})) == []


def test_egress_recorder_treats_loopback_and_unix_sockets_as_local(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    unix_path = str(tmp_path / "s.sock")
    unix_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_server.bind(unix_path)
    unix_server.listen(1)
    try:
        with RECORDER.recording():
            with socket.create_connection(server.getsockname(), timeout=2):
                pass
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(unix_path)
            socket.getaddrinfo("localhost", 80)
        assert len(RECORDER.destinations) >= 3
        assert RECORDER.non_local() == []
    finally:
        server.close()
        unix_server.close()
    assert Destination("x", "::ffff:127.0.0.1", 1).is_local()
    assert not Destination("x", "10.0.0.1", 1).is_local()
    assert not Destination("x", "::ffff:10.0.0.1", 1).is_local()


# --- a fresh process, scrubbed environment --------------------------------------------------------


def _fresh_process(mode: str, tmp_path: Path) -> tuple[dict[str, Any], Path, Path]:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.egress", mode, str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), home, work


@pytest.mark.slow
def test_no_egress_in_a_fresh_process_without_any_switch_set(tmp_path: Path) -> None:
    result, home, work = _fresh_process("bedside", tmp_path)
    assert result["same_predictions"] is True
    assert result["non_local"] == []
    assert set(result["programs"]) <= ALLOWED_PROGRAMS
    assert result["environment_switches"] == dict(EGRESS_SWITCHES)
    assert result["telemetry_client"] is False
    assert not (home / ".config" / "mlflow").exists()  # no installation id written
    assert sorted(p.name for p in work.iterdir()) == ["store"]


@pytest.mark.slow
def test_control_plain_mlflow_phones_home_in_the_same_environment(tmp_path: Path) -> None:
    """Without bedside, the same environment looks up MLflow's telemetry host."""
    result, home, _ = _fresh_process("mlflow-only", tmp_path)
    hosts = {d["host"] for d in result["non_local"]}
    assert TELEMETRY_HOST in hosts
    assert (home / ".config" / "mlflow" / "telemetry.json").exists()
    assert result["environment_switches"] == {
        "MLFLOW_DISABLE_TELEMETRY": None,
        "DO_NOT_TRACK": None,
    }


@pytest.mark.slow
def test_no_egress_when_mlflow_was_imported_before_bedside(tmp_path: Path) -> None:
    """An early ``import mlflow`` creates MLflow's telemetry client; bedside drops it unused."""
    result, _, _ = _fresh_process("mlflow-first", tmp_path)
    assert result["same_predictions"] is True
    assert result["telemetry_client"] is False
    assert result["non_local"] == []
