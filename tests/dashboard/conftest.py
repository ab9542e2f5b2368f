"""A real server process with the dashboard, on each backend, shared by a module's tests.

Starting a server process costs seconds, so each backend gets one project and one server per
test module; tests stay independent by working on a model of their own (``site.new_model()``).
The test process prepares the record through Platform with a clock 30 days in the past (so a
shadow deployment made here has served its 14 days when the server, on the real clock, is asked
to promote it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher

from bedside.domain.evaluation import evaluate
from bedside.domain.fairness import assess_fairness
from bedside.domain.lifecycle import Action
from bedside.domain.models import Meaning, Purpose
from bedside.security import KeyRing
from bedside.service import Platform
from bedside.stores.database import Database
from tests.conftest import _postgres_unreachable, postgres_schema
from tests.serving.support import free_port
from tests.support import FOUNDING_PIPELINE, PASSWORD, REPO, Clock

PEOPLE = {
    "dana": ("Dana Scientist", ["data_scientist"]),
    "eli": ("Eli Engineer", ["ml_engineer"]),
    "carol": ("Dr Carol Chief", ["CMIO"]),
    "ivan": ("Ivan Informaticist", ["clinical_informaticist"]),
    "aud": ("Audrey Auditor", ["auditor"]),
    "cora": ("Dr Cora Second", ["CMIO"]),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def evidence(seed: int = 0) -> dict[str, Any]:
    """Training evidence computed by bedside's own evaluation and fairness code on seeded scores."""
    rng = np.random.default_rng(seed)
    n = 600
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0.001, 0.999)
    sex = rng.choice(["female", "male"], n)
    result = evaluate(y, p, threshold=0.5, seed=0, n_boot=50)
    fairness = assess_fairness(
        y,
        p,
        {"sex": sex},
        threshold=0.5,
        seed=0,
        n_boot=50,
        min_group_size=10,
        min_group_events=5,
    )
    return {
        "dataset_digest": "sha256:" + "ab" * 32,
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"C": 1.0},
        "seed": 7,
        "threshold": 0.5,
        "threshold_rule": "provisional",
        "label": "sepsis_within_48h",
        "n_train": 1200,
        "evaluation": {"test": result.to_dict()},
        "fairness": fairness.to_dict(),
    }


@dataclass
class Site:
    """The project, the Platform the test uses to prepare it, and the server's address."""

    url: str
    platform: Platform
    clock: Clock
    home: Path

    def user(self, username: str) -> Any:
        with self.platform._read() as tx:
            return tx.accounts.get_user(username)

    def new_model(self) -> str:
        """Register the founding pipeline under a new model name; return the name."""
        name = f"sepsis-{uuid.uuid4().hex[:8]}"
        text = FOUNDING_PIPELINE.read_text(encoding="utf-8").replace(
            "  name: sepsis-prediction-pipeline\n",
            f"  name: sepsis-prediction-pipeline\n  model_name: {name}\n",
            1,
        )
        self.platform.register_pipeline(self.user("admin"), content=text)
        return name

    def version(self, model: str, *, gates: bool = True, with_evidence: bool = True) -> str:
        """Register a candidate (with evidence); record passing gates; return its ref."""
        ref = self.platform.register_version(
            self.user("dana"),
            model,
            run_id=uuid.uuid4().hex,
            evidence=evidence() if with_evidence else {},
        ).ref
        if gates:
            for gate in ("statistical", "fairness"):
                self.platform.record_gate_result(
                    self.user("dana"),
                    ref,
                    gate=gate,
                    passed=True,
                    details={"verdict": "pass", "summary": f"{gate}: every bound met"},
                )
        return ref

    def fitted(self, model: str) -> str:
        """A validated version with a real model file and dataset snapshot (threshold-ready)."""
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        from bedside.service import model_context
        from bedside.stores.snapshots import write_snapshot
        from bedside.train_stage import encode, feature_schema, save_model

        rng = np.random.default_rng(3)
        n = 400
        frame = pd.DataFrame(
            {
                "patient_id": [f"p{i}" for i in range(n)],
                "prediction_time": pd.date_range("2025-01-01", periods=n, freq="h"),
                "split": np.where(np.arange(n) < 300, "train", "test"),
                "lactate": rng.gamma(2.0, 1.0, n),
                "age": rng.integers(18, 95, n).astype(float),
            }
        )
        frame["label"] = (frame["lactate"] + rng.normal(0, 1, n) > 2.5).astype(int)
        manifest = write_snapshot(
            frame,
            root=self.home / "artifacts",
            key_ring=self.platform.keys,
            created_at=self.clock(),
            label_col="label",
        )
        train = frame[frame["split"] == "train"]
        schema = feature_schema(train, ["lactate", "age"])
        estimator = LogisticRegression().fit(encode(train, schema), train["label"])
        ref = self.version(model)
        version = self.platform.get_version(ref)
        with self.platform._tx() as tx:
            tx.registry.set_evidence(
                version,
                {
                    **version.evidence,
                    "dataset_digest": manifest.digest,
                    "feature_schema": schema.to_dicts(),
                    "label": "label",
                },
            )
        folder = self.home / "artifacts" / "models" / model / str(version.version)
        save_model(estimator, folder, key_ring=self.platform.keys, context=model_context(version))
        self.platform.transition(self.user("eli"), ref, Action.VALIDATE)
        return ref

    def approved(self, model: str) -> str:
        ref = self.version(model)
        self.platform.transition(self.user("eli"), ref, Action.VALIDATE)
        for reviewer in ("carol", "ivan"):
            self.platform.sign(reviewer, PASSWORD, ref, meaning=Meaning.APPROVED)
        return ref

    def shadow_served(self, model: str) -> str:
        """A version in shadow since 30 days ago (its shadow period is over)."""
        ref = self.approved(model)
        self.platform.transition(self.user("eli"), ref, Action.DEPLOY_SHADOW)
        return ref

    def production(self, model: str) -> str:
        ref = self.shadow_served(model)
        self.platform.sign(
            "cora", PASSWORD, ref, meaning=Meaning.APPROVED, purpose=Purpose.PROMOTION
        )
        saved = self.clock.moment
        self.clock.advance(days=15)  # the shadow period served (then back to the past)
        try:
            self.platform.transition(self.user("eli"), ref, Action.PROMOTE)
        finally:
            self.clock.moment = saved
        return ref

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, follow_redirects=False)

    @contextmanager
    def login(self, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
        """Yield a client signed in as ``username`` through the sign-in form."""
        with self.client() as client:
            yield self._sign_in(client, username, password)

    def _sign_in(self, client: httpx.Client, username: str, password: str) -> httpx.Client:
        page = client.get("/ui/login")
        response = client.post(
            "/ui/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": csrf_of(page.text),
                "next": "/ui/",
            },
        )
        assert response.status_code == 303, response.text
        return client


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the dashboard server did not start in time")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("dashboard")
    if request.param == "sqlite":
        yield from _site(home, f"sqlite:///{home / 'bedside.db'}")
        return
    reason = _postgres_unreachable()
    if reason:
        pytest.skip(reason)
    with postgres_schema() as url:
        yield from _site(home, url)


def _site(home: Path, url: str) -> Iterator[Site]:
    database = Database(url)
    clock = Clock()
    clock.moment = datetime.now(UTC) - timedelta(days=30)
    platform = Platform(
        database,
        KeyRing(home / "keys"),
        clock=clock,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        home=home,
        artifacts_root=home / "artifacts",
    )
    admin = platform.initialise(
        admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD
    )
    platform.register_pipeline(admin, content=FOUNDING_PIPELINE.read_text(encoding="utf-8"))
    for username, (full_name, roles) in PEOPLE.items():
        platform.add_user(admin, username, full_name=full_name, password=PASSWORD, roles=roles)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.dashboard.serve_dashboard", url, str(home), str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        yield Site(f"http://127.0.0.1:{port}", platform, clock, home)
    finally:
        proc.terminate()
        proc.wait(30)
        database.dispose()
