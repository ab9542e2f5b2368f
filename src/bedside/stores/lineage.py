"""Lineage of a training run: git state, file hashes, environment, pinned requirements.

:func:`lineage_tags` gives the tags that tie an MLflow run to the exact code, data, pipeline file
and environment that produced it (DESIGN §4: "the exact environment is part of a model's
lineage"). Every value has a fixed shape, so the PHI guard checks each tag against its format
(:data:`bedside.domain.phi_guard.LINEAGE_KEYS`):

================================  =========================================================
``bedside.git.commit``            ``git rev-parse HEAD`` in the caller's repo, or ``none``
``mlflow.source.git.commit``      the same, when there is one (MLflow's UI shows it)
``bedside.git.dirty``             ``true`` when tracked files differ from HEAD (as
                                  ``git describe --dirty``; untracked files do not count),
                                  ``unknown`` outside a git checkout
``bedside.dataset.digest``        the dataset snapshot's SHA-256 (given by the caller)
``bedside.pipeline.sha256``       SHA-256 of the pipeline file's bytes
``bedside.lock.sha256``           SHA-256 of ``uv.lock``, or ``none``
``bedside.python``                ``platform.python_version()``
``bedside.platform``              ``platform.platform()``
``bedside.version``               bedside's version
================================  =========================================================

:func:`requirements_from_lock` pins a model's pip requirements from the project's ``uv.lock``
without spawning anything: it walks the lock's dependency graph from the packages the model
needs and pins what is installed. MLflow's own inference instead reloads the model in a
subprocess (~4 s a model; ``bench/bench_tracking.py``).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import re
import subprocess
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

import bedside
from bedside.errors import ConfigError, InvalidInput

logger = logging.getLogger(__name__)

__all__ = [
    "GitState",
    "Requirements",
    "distributions_of_modules",
    "file_sha256",
    "git_state",
    "lineage_tags",
    "normalise_distribution",
    "requirements_from_lock",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_GIT_TIMEOUT_S = 20


@dataclass(frozen=True, slots=True)
class GitState:
    """The commit a folder is checked out at and whether tracked files were changed."""

    commit: str | None
    dirty: bool | None


def git_state(repo: Path) -> GitState:
    """Return the git commit of ``repo`` and whether its tracked files differ from it.

    Runs ``git rev-parse HEAD`` and ``git status --porcelain --untracked-files=no`` in
    ``repo`` with ``--no-optional-locks`` (so a concurrent commit is never blocked by us).
    Outside a git checkout, or without git, both are None.
    """
    commit = _git(repo, "rev-parse", "--verify", "HEAD")
    if commit is None or not _COMMIT.fullmatch(commit):
        return GitState(None, None)
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return GitState(commit, None if status is None else status != "")


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("git %s failed in the lineage folder: %s", args[0], type(exc).__name__)
        return None
    if done.returncode != 0:
        logger.info("git %s exited %d in the lineage folder", args[0], done.returncode)
        return None
    return done.stdout.strip()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 (hex) of a file's bytes.

    Raises:
        ConfigError: the file cannot be read (the message names it).
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} to hash it for lineage: {exc.strerror}.") from exc
    return digest.hexdigest()


def lineage_tags(
    repo: Path,
    *,
    dataset_digest: str,
    pipeline_file: Path,
    lock_file: Path | None,
) -> dict[str, str]:
    """Return the lineage tags of a training run (see the module docstring for each tag).

    Args:
        repo: the folder whose git commit is the code's version (the project's checkout).
        dataset_digest: the dataset snapshot's SHA-256, 64 lower-case hex characters.
        pipeline_file: the pipeline file the run follows.
        lock_file: the project's ``uv.lock``; None when the project has none.

    Raises:
        InvalidInput: ``dataset_digest`` is not a SHA-256 hex digest.
        ConfigError: the pipeline or lock file cannot be read.
    """
    if not _SHA256.fullmatch(dataset_digest):
        raise InvalidInput(
            "dataset_digest must be a SHA-256 digest: 64 lower-case hex characters "
            f"(got {len(dataset_digest)} characters). Pass the snapshot's digest."
        )
    state = git_state(repo)
    commit = state.commit or "none"
    dirty = "unknown" if state.dirty is None else str(state.dirty).lower()
    tags = {
        "bedside.git.commit": commit,
        "bedside.git.dirty": dirty,
        "bedside.dataset.digest": dataset_digest,
        "bedside.pipeline.sha256": file_sha256(pipeline_file),
        "bedside.lock.sha256": "none" if lock_file is None else file_sha256(lock_file),
        "bedside.python": platform.python_version(),
        "bedside.platform": platform.platform(),
        "bedside.version": bedside.__version__,
    }
    if state.commit is not None:
        tags["mlflow.source.git.commit"] = state.commit
    return tags


# --- requirements --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirements:
    """Pinned pip requirements for a model, and how they were found.

    Attributes:
        pins: ``name==version`` lines, sorted by name.
        source: ``"uv.lock"`` (the lock's dependency graph) or ``"installed"`` (no lock file:
            the model's packages and what they declare, as installed).
        not_in_lock: installed versions the lock does not list (the environment drifted from
            the lock; the installed version is pinned, since that is what trained the model).
    """

    pins: tuple[str, ...]
    source: str
    not_in_lock: tuple[str, ...] = ()


def normalise_distribution(name: str) -> str:
    """Return a distribution name normalised as in PEP 503 (``Scikit_Learn`` → ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _module_to_distributions() -> dict[str, tuple[str, ...]]:
    return {mod: tuple(dists) for mod, dists in metadata.packages_distributions().items()}


def distributions_of_modules(modules: Iterable[str]) -> set[str]:
    """Return the installed distributions that provide the given top-level modules."""
    table = _module_to_distributions()
    found: set[str] = set()
    for module in modules:
        found.update(normalise_distribution(d) for d in table.get(module.split(".")[0], ()))
    return found


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements_from_lock(lock_file: Path | None, roots: Iterable[str]) -> Requirements:
    """Pin the requirements of ``roots`` (distribution names) and everything they depend on.

    With a lock file, the dependency closure comes from the lock's graph; only installed
    packages are pinned (a package the lock lists for another platform or Python is not
    installed here and is left out). Without one, the closure follows the installed packages'
    own metadata. Nothing is spawned and nothing is downloaded.

    Raises:
        ConfigError: the lock file cannot be read or parsed.
    """
    start = sorted({normalise_distribution(r) for r in roots})
    if lock_file is None:
        return Requirements(tuple(_pins(_installed_closure(start))), "installed")
    try:
        stat = lock_file.stat()
        graph, versions = _lock_graph(lock_file.resolve(), stat.st_mtime_ns, stat.st_size)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read the lock file {lock_file}: {exc}.") from exc
    seen: dict[str, str] = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        installed = _installed_version(name)
        if installed is None:
            continue
        seen[name] = installed
        todo.extend(sorted(graph.get(name, ())))
    drifted = tuple(
        f"{n}=={v}" for n, v in sorted(seen.items()) if n in versions and v not in versions[n]
    )
    if drifted:
        logger.warning("%d installed package(s) differ from the lock file", len(drifted))
    return Requirements(tuple(_pins(seen)), "uv.lock", drifted)


@lru_cache(maxsize=4)
def _lock_graph(
    path: Path, mtime_ns: int, size: int
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Parse a lock file into (dependencies, versions) by name; cached per file version."""
    lock = tomllib.loads(path.read_text(encoding="utf-8"))
    graph: dict[str, set[str]] = {}
    versions: dict[str, set[str]] = {}
    for package in lock.get("package", []):
        name = normalise_distribution(str(package.get("name", "")))
        versions.setdefault(name, set()).add(str(package.get("version", "")))
        deps = graph.setdefault(name, set())
        deps.update(normalise_distribution(str(d["name"])) for d in package.get("dependencies", []))
    return (
        {k: frozenset(v) for k, v in graph.items()},
        {k: frozenset(v) for k, v in versions.items()},
    )


def _installed_closure(start: list[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist.version
        for line in dist.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            # An extra's requirement, or one for another platform or Python, is not needed here.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalise_distribution(requirement.name))
    return seen


def _pins(versions: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(versions.items())]
