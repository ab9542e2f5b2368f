"""Serve what bedside's lifecycle says: production and shadow versions from the registry.

:class:`PlatformModels` loads each registered model's ``production`` and ``shadow`` versions from
bedside's encrypted model copies (tamper refused), with the signed threshold and the version's
feature schema, and a :class:`RegistryWatcher` re-reads the registry every few seconds so that a
promotion or rollback hot-swaps the served model without dropping a request.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bedside.domain.models import VersionState
from bedside.serving.models import DeployedModel, ServedModels
from bedside.serving.schema import FeatureSchema

logger = logging.getLogger(__name__)


def stratification_attributes(evidence: dict[str, Any]) -> frozenset[str]:
    """Return the attribute names a version was assessed by (its fairness gates' ``stratify_by``).

    Intersections (``race×sex``) are not attributes a request sends; only plain names count.
    """
    names: set[str] = set()
    results = [evidence.get("fairness"), *(evidence.get("fairness_by_gate") or {}).values()]
    for result in results:
        if isinstance(result, dict):
            names.update(
                a for a in result.get("attributes") or () if isinstance(a, str) and a.isidentifier()
            )
    return frozenset(names)


def deployed(platform: Any, version: Any) -> DeployedModel:
    """Build the served form of a registered version."""
    evidence = version.evidence
    return DeployedModel(
        version.model_name,
        str(version.version),
        platform.load_version_model(version.ref),
        float(evidence["threshold"]),
        FeatureSchema.from_dicts(evidence["feature_schema"]),
        stratification_attributes(evidence),
    )


def current_versions(platform: Any) -> dict[str, dict[str, Any]]:
    """Return ``{model: {"production": version|None, "shadow": version|None}}`` now."""
    found: dict[str, dict[str, Any]] = {}
    for entry in platform.status():
        roles: dict[str, Any] = {"production": None, "shadow": None}
        for row in entry.versions:
            if row.version.state is VersionState.PRODUCTION:
                roles["production"] = row.version
            elif row.version.state is VersionState.SHADOW:
                roles["shadow"] = row.version
        if roles["production"] is not None or roles["shadow"] is not None:
            found[entry.model.name] = roles
    return found


def sync(platform: Any, served: ServedModels) -> list[str]:
    """Make ``served`` hold what the registry says; return what changed (refs)."""
    changed = []
    wanted_now = current_versions(platform)
    for name in served.names():  # a name whose versions were all retired keeps empty slots
        wanted_now.setdefault(name, {"production": None, "shadow": None})
    for name, roles in wanted_now.items():
        now = served.get(name)
        for index, role in enumerate(("production", "shadow")):
            version = roles[role]
            held = None if now is None else now[index]
            wanted = None if version is None else str(version.version)
            if (held.version if held is not None else None) == wanted:
                continue
            if version is None:
                served.deploy(None, role=role, name=name)  # type: ignore[arg-type]
            else:
                served.deploy(deployed(platform, version), role=role)  # type: ignore[arg-type]
            changed.append(f"{name}:{role}={wanted}")
    return changed


class RegistryWatcher:
    """Re-read the registry every ``interval`` seconds and hot-swap changed versions."""

    def __init__(self, platform: Any, served: ServedModels, *, interval: float = 5.0) -> None:
        self.platform = platform
        self.served = served
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bedside-registry", daemon=True)

    def start(self) -> RegistryWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                changes = sync(self.platform, self.served)
            except Exception:  # keep serving the current models; say why in the log
                logger.exception("could not refresh served models from the registry")
                continue
            if changes:
                logger.info("hot-swapped served models: %s", ", ".join(changes))
