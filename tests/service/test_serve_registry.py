"""`bedside serve` as a real process serving what the lifecycle says (promote → production)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bedside.service import Platform
from bedside.serving.log_reader import InferenceLogReader
from tests.service.test_train import (  # noqa: F401 - hospital is a fixture
    _tracker,
    hospital,
    trained_to_production,
)
from tests.serving.support import free_port
from tests.support import Clock, Team


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("server not ready in time")


@pytest.mark.slow
def test_serve_predicts_with_the_promoted_version_and_logs_encrypted(
    platform: Platform,
    team: Team,
    clock: Clock,
    tmp_path: Path,
    hospital: Path,  # noqa: F811
) -> None:
    _pipeline, version = trained_to_production(platform, team, clock, tmp_path, hospital)

    (tmp_path / "bedside.toml").write_text("[bedside]\n", encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "BEDSIDE_HOME": str(tmp_path),
        "BEDSIDE_DATABASE_URL": platform.database.url,
        "BEDSIDE_KEYS_DIR": str(platform.keys.folder),
        "BEDSIDE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
    }
    errors = (tmp_path / "serve.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bedside", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        features = {
            f["name"]: (f["categories"][0] if f["kind"] == "category" else 98.0)
            for f in version.evidence["feature_schema"]
        }
        ok = httpx.post(
            f"{url}/v1/models/sepsis-prediction/predict", json={"features": features}, timeout=10
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["version"] == "1" and 0.0 <= body["probability"] <= 1.0
        bad = httpx.post(
            f"{url}/v1/models/sepsis-prediction/predict",
            json={"features": {**features, "heart_rate_max_6h": "fast"}},
            timeout=10,
        )
        assert bad.status_code == 422 and "heart_rate_max_6h" in bad.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        errors.close()
    records = InferenceLogReader(tmp_path / "inference-log", key_ring=platform.keys).records()
    assert [r.request_id for r in records] == [body["request_id"]]
    assert records[0].version == "1"
    assert b"heart_rate_max_6h" not in b"".join(
        p.read_bytes() for p in (tmp_path / "inference-log").rglob("*") if p.is_file()
    )
