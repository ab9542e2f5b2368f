"""Lineage: git state in a real repository, file hashes, requirements pinned from uv.lock."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

import bedside
from bedside.domain.phi_guard import Field, PhiGuard
from bedside.errors import ConfigError, InvalidInput
from bedside.stores.lineage import (
    git_state,
    lineage_tags,
    normalise_distribution,
    requirements_from_lock,
)
from tests.support import REPO

DIGEST = "ab" * 32


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    _git(folder, "init", "-q")
    (folder / "pipeline.yaml").write_text("pipeline: {name: p}\n")
    _git(folder, "add", "pipeline.yaml")
    _git(folder, "commit", "-q", "-m", "first")
    return folder


def test_git_state_clean_dirty_and_untracked(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(repo).commit == head
    assert git_state(repo).dirty is False
    (repo / "notes.txt").write_text("untracked files do not make a checkout dirty\n")
    assert git_state(repo).dirty is False
    (repo / "pipeline.yaml").write_text("pipeline: {name: changed}\n")
    assert git_state(repo) == git_state(repo).__class__(head, True)


def test_git_state_outside_a_checkout(tmp_path: Path) -> None:
    assert git_state(tmp_path).commit is None
    assert git_state(tmp_path).dirty is None


def test_lineage_tags_values(repo: Path) -> None:
    lock = repo / "uv.lock"
    lock.write_text("version = 1\n")
    tags = lineage_tags(
        repo, dataset_digest=DIGEST, pipeline_file=repo / "pipeline.yaml", lock_file=lock
    )
    head = _git(repo, "rev-parse", "HEAD")
    assert tags == {
        "bedside.git.commit": head,
        "mlflow.source.git.commit": head,
        "bedside.git.dirty": "false",  # the new uv.lock is untracked: only tracked files count
        "bedside.dataset.digest": DIGEST,
        "bedside.pipeline.sha256": hashlib.sha256(b"pipeline: {name: p}\n").hexdigest(),
        "bedside.lock.sha256": hashlib.sha256(b"version = 1\n").hexdigest(),
        "bedside.python": platform.python_version(),
        "bedside.platform": platform.platform(),
        "bedside.version": bedside.__version__,
    }
    assert PhiGuard().find_in_pairs(Field.TAG, tags) == []


def test_lineage_tags_without_git_or_lock(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("x")
    tags = lineage_tags(tmp_path, dataset_digest=DIGEST, pipeline_file=pipeline, lock_file=None)
    assert tags["bedside.git.commit"] == "none"
    assert tags["bedside.git.dirty"] == "unknown"
    assert tags["bedside.lock.sha256"] == "none"
    assert "mlflow.source.git.commit" not in tags
    assert PhiGuard().find_in_pairs(Field.TAG, tags) == []


def test_lineage_tags_refuse_bad_digest_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="SHA-256"):
        lineage_tags(tmp_path, dataset_digest="abc", pipeline_file=tmp_path, lock_file=None)
    with pytest.raises(ConfigError, match="missing.yaml"):
        lineage_tags(
            tmp_path,
            dataset_digest=DIGEST,
            pipeline_file=tmp_path / "missing.yaml",
            lock_file=None,
        )


def test_requirements_from_the_project_lock() -> None:
    found = requirements_from_lock(REPO / "uv.lock", ["scikit-learn", "skops"])
    assert found.source == "uv.lock"
    assert found.not_in_lock == ()
    names = [p.split("==")[0] for p in found.pins]
    assert names == sorted(names)
    for package in ("scikit-learn", "skops", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert f"{package}=={version(package)}" in found.pins
    assert not any(n in names for n in ("mlflow", "fastapi", "pytest"))  # not in the closure


def test_requirements_skip_what_is_not_installed_and_report_drift(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        "\n".join(
            [
                "version = 1",
                "[[package]]",
                'name = "scikit-learn"',
                'version = "0.0.1"',
                'dependencies = [{ name = "numpy" }, { name = "colorama-not-here" }]',
                "[[package]]",
                'name = "numpy"',
                f'version = "{version("numpy")}"',
            ]
        )
    )
    found = requirements_from_lock(lock, ["Scikit_Learn"])
    assert found.pins == (f"numpy=={version('numpy')}", f"scikit-learn=={version('scikit-learn')}")
    assert found.not_in_lock == (f"scikit-learn=={version('scikit-learn')}",)


def test_requirements_without_a_lock_follow_installed_metadata() -> None:
    found = requirements_from_lock(None, ["skops"])
    assert found.source == "installed"
    assert f"skops=={version('skops')}" in found.pins
    assert f"scikit-learn=={version('scikit-learn')}" in found.pins  # skops requires it


def test_requirements_refuse_an_unreadable_lock(tmp_path: Path) -> None:
    bad = tmp_path / "uv.lock"
    bad.write_text("[[package\n")
    with pytest.raises(ConfigError, match="uv.lock"):
        requirements_from_lock(bad, ["numpy"])


def test_normalise_distribution() -> None:
    assert normalise_distribution("Scikit_Learn") == "scikit-learn"
    assert normalise_distribution("fhir.resources") == "fhir-resources"
