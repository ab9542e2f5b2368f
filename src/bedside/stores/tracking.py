"""Experiment tracking and the model registry on MLflow — the only module that imports mlflow.

:class:`Tracker` writes runs (params, metrics, tags, dataset inputs, artifacts), logs models and
registers them, and manages the ``champion``/``shadow`` aliases that mirror bedside's lifecycle.
It talks to MLflow through an instance-scoped ``MlflowClient`` (no global "active run" or global
tracking URI), so several trackers can live in one process.

Every write passes :class:`bedside.domain.phi_guard.PhiGuard` first and is refused whole —
nothing is written — when anything looks like PHI; the error names the key and the rule, never
the value. MLflow's own phoning home is switched off before mlflow is imported
(:func:`disable_egress`). Models are saved with skops and a bedside-owned trust list
(:mod:`bedside.stores.model_format`), with pip requirements pinned from ``uv.lock``
(:mod:`bedside.stores.lineage`) instead of MLflow's ~4 s inference in a subprocess.

Artifacts never land in ``./mlruns``: a database-backed store needs an explicit artifact
location, and each experiment gets ``<artifact location>/<experiment slug>``. With a tracking
server (``http(s)://``) the server decides where artifacts go.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd

from bedside.domain.phi_guard import Field, PhiGuard, PhiViolation, raise_if_any
from bedside.errors import (
    AlreadyExists,
    BedsideError,
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from bedside.stores import model_format
from bedside.stores.lineage import Requirements, distributions_of_modules, requirements_from_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from bedside.config import Settings

logger = logging.getLogger(__name__)


class _NoPipVersionWarning(logging.Filter):
    """Drop MLflow's "Failed to resolve installed pip version" warning.

    bedside's environment is built by uv and has no pip; MLflow then writes an unversioned ``pip``
    into the model's conda.yaml (harmless: the model's pip requirements are pinned from the lock)
    and warns on every ``log_model``, which reads like a fault to users.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to resolve installed pip version")


logging.getLogger("mlflow.utils.environment").addFilter(_NoPipVersionWarning())

__all__ = [
    "EGRESS_SWITCHES",
    "Alias",
    "LoggedModelRef",
    "ModelVersionRef",
    "RunRecord",
    "Tracker",
    "disable_egress",
]

#: Environment switches that stop MLflow (and tools honouring the DO_NOT_TRACK convention) from
#: phoning home. In mlflow 3.17.2 the only egress on bedside's paths is telemetry: at import it
#: writes an installation id to ``~/.config/mlflow/telemetry.json`` and, on the first tracked
#: call, a background thread fetches ``https://config.mlflow-telemetry.io/<version>.json`` and
#: then posts usage records; the MLflow UI server fetches a UI telemetry config the same way.
#: Both obey these two variables. (Other network code in mlflow — Databricks, the REST store,
#: HTTP dataset sources, Jupyter session look-ups — is reached only when configured for it.)
EGRESS_SWITCHES: Final[Mapping[str, str]] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


def disable_egress() -> None:
    """Switch off MLflow's telemetry (and any DO_NOT_TRACK-aware tool) for this process.

    Why this module touches ``os.environ`` (only ``config.py`` and ``cli.py`` otherwise do):
    MLflow decides at import time whether to start its telemetry client, and its only switches
    are environment variables, so they must be set before ``import mlflow`` — and this is the
    one module that imports mlflow. Set unconditionally: bedside has no opt-in to phoning home.
    Child processes (e.g. ``mlflow ui`` started from bedside) inherit the switches.
    """
    for name, value in EGRESS_SWITCHES.items():
        os.environ[name] = value


disable_egress()  # at import, before any code path below can import mlflow


def _import_mlflow() -> ModuleType:
    """Import mlflow with egress off (lazily: importing it costs ~3 s)."""
    disable_egress()
    import mlflow
    import mlflow.sklearn  # the flavour bedside logs models with
    from mlflow.telemetry import get_telemetry_client, set_telemetry_client

    with warnings.catch_warnings():
        # Warnings mlflow 3.17.2 raises once, while importing the modules bedside uses; nothing
        # a caller can act on, so they are not passed on (pytest turns warnings into errors):
        # - one ORM relationship is declared lazy="noload", which SQLAlchemy 2.1 deprecates;
        # - mlflow.pyfunc infers schemas from its own GenAI type hints and warns about ``Any``.
        warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType")
        import mlflow.pyfunc
        import mlflow.store.model_registry.sqlalchemy_store
        import mlflow.store.tracking.sqlalchemy_store

    if get_telemetry_client() is not None:
        # mlflow was imported before bedside could switch telemetry off; with the switches now
        # set, this replaces the client by None before it has sent anything.
        set_telemetry_client()  # type: ignore[no-untyped-call]
    return mlflow


class Alias(enum.StrEnum):
    """Registry aliases bedside manages; they mirror the lifecycle states of the same name."""

    CHAMPION = "champion"
    SHADOW = "shadow"


RunStatus = Literal["FINISHED", "FAILED", "KILLED"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored: ids, name, status, params, latest metrics, tags and dataset inputs."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    datasets: tuple[tuple[str, str, str], ...]  # (name, digest, context)


@dataclass(frozen=True, slots=True)
class LoggedModelRef:
    """A model logged to a run: its MLflow model id and what it was saved with."""

    model_id: str
    run_id: str
    artifact_uri: str
    serialization_format: str
    trusted_types: tuple[str, ...]
    requirements: tuple[str, ...]
    requirements_source: str


@dataclass(frozen=True, slots=True)
class ModelVersionRef:
    """A registered model version (``model_id``: the logged model it was registered from)."""

    name: str
    version: str
    run_id: str | None
    model_id: str | None
    source: str
    aliases: tuple[str, ...]
    tags: dict[str, str]


_DATABASE_SCHEMES: Final = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
_SERVER_SCHEMES: Final = frozenset({"http", "https", "databricks"})
_BATCH: Final = 100
#: MLflow caps a dataset digest at 36 characters: it gets the SHA-256's first 32 hex characters
#: (128 bits); the full digest is in the dataset profile (``sha256``) and the lineage tags.
_DIGEST_CHARS: Final = 32
_TEXT_CHUNK: Final = 8 << 20
_SLUG: Final = re.compile(r"[^A-Za-z0-9._-]+")


class Tracker:
    """Experiment tracking and model registry on one MLflow store, behind the PHI guard.

    Args:
        tracking_uri: an MLflow tracking URI: ``sqlite:///…`` (the project default),
            ``postgresql://…``, or a tracking server ``http(s)://…``.
        artifact_location: where run and model artifacts go (a folder, ``file://``,
            ``s3://`` …). Required with a database URI (else MLflow writes ``./mlruns``);
            None with a tracking server lets the server decide.
        guard: the PHI guard (a default :class:`PhiGuard` when None).

    Raises:
        ConfigError: an unsupported URI scheme, or a database URI without artifact location.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        artifact_location: str | Path | None,
        guard: PhiGuard | None = None,
    ) -> None:
        scheme = urlparse(tracking_uri).scheme.split("+")[0]
        if scheme not in _DATABASE_SCHEMES | _SERVER_SCHEMES:
            raise ConfigError(
                f"Unsupported MLflow tracking URI scheme {scheme or '(none)'!r}. Use one of "
                "sqlite:///<path>, postgresql://…, mysql://…, mssql://… or http(s)://<server>."
            )
        if scheme in _DATABASE_SCHEMES and artifact_location is None:
            raise ConfigError(
                "A database tracking URI needs an explicit artifact location (otherwise MLflow "
                "writes ./mlruns in the current folder). Pass artifact_location=…"
            )
        if scheme == "sqlite":
            db_path = tracking_uri.split(":///", 1)[-1]
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.artifact_root = None if artifact_location is None else _as_uri(artifact_location)
        self.guard = guard or PhiGuard()

    @functools.cached_property
    def _mlflow(self) -> ModuleType:
        # Imported on first use: importing mlflow costs seconds, which a command that never
        # tracks (or a tracker that is only configured) should not pay.
        return _import_mlflow()

    @functools.cached_property
    def _client(self) -> MlflowClient:
        # A new SQLite store runs MLflow's migrations (~1.7 s) when the client first reaches it.
        client: MlflowClient = self._mlflow.MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
        )
        return client

    @classmethod
    def from_settings(cls, settings: Settings, *, guard: PhiGuard | None = None) -> Tracker:
        """Build the tracker of a project: its tracking URI, artifacts under ``artifacts_url``.

        With a database URI, MLflow's artifacts go to ``<artifacts_url>/mlflow``; with a
        tracking server, the server decides.
        """
        uri = settings.mlflow_tracking_uri
        server = urlparse(uri).scheme in _SERVER_SCHEMES
        location = None if server else f"{str(settings.artifacts_url).rstrip('/')}/mlflow"
        return cls(uri, artifact_location=location, guard=guard)

    # -- experiments and runs --------------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        """Return the id of the experiment ``name``, creating it (with its artifact folder)."""
        self.guard.check_name(Field.EXPERIMENT_NAME, name)
        with _translated("look up the experiment"):
            found = self._client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise Conflict(
                    f"The MLflow experiment {name!r} is deleted. Restore it ('mlflow "
                    "experiments restore') or choose another name."
                )
            return str(found.experiment_id)
        location = None
        if self.artifact_root is not None:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            location = f"{self.artifact_root}/{_SLUG.sub('-', name).strip('-')[:60]}-{digest}"
        try:
            with _translated("create the experiment"):
                return str(self._client.create_experiment(name, artifact_location=location))
        except AlreadyExists:  # created concurrently
            with _translated("look up the experiment"):
                again = self._client.get_experiment_by_name(name)
            assert again is not None  # it exists: creating it just failed for that reason
            return str(again.experiment_id)

    def start_run(
        self,
        experiment: str,
        *,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> str:
        """Start a run in ``experiment`` (created if needed) and return its id.

        Args:
            run_name: shown in the MLflow UI.
            tags: run tags (lineage tags from :func:`bedside.stores.lineage.lineage_tags`).
            user: the bedside user who trains (MLflow's ``mlflow.user`` tag); a username, not a
                person's full name.
        """
        tag_map = dict(tags or {})
        if user is not None:
            tag_map["mlflow.user"] = user
        self.guard.check_name(Field.RUN_NAME, run_name)
        self.guard.check_pairs(Field.TAG, tag_map)
        experiment_id = self.ensure_experiment(experiment)
        with _translated("start the run"):
            run = self._client.create_run(
                experiment_id, tags={k: _text(v) for k, v in tag_map.items()}, run_name=run_name
            )
        logger.info("started run %s in experiment %s", run.info.run_id, experiment_id)
        return str(run.info.run_id)

    def end_run(self, run_id: str, *, status: RunStatus = "FINISHED") -> None:
        """Mark a run finished (or failed/killed)."""
        with _translated("end the run"):
            self._client.set_terminated(run_id, status=status)

    @contextlib.contextmanager
    def run(
        self,
        experiment: str,
        *,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> Iterator[str]:
        """Start a run, yield its id, and end it ``FINISHED`` (``FAILED`` on an exception)."""
        run_id = self.start_run(experiment, run_name=run_name, tags=tags, user=user)
        try:
            yield run_id
        except BaseException:
            self.end_run(run_id, status="FAILED")
            raise
        self.end_run(run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params (values are written as text; numbers are not pattern-checked)."""
        self.guard.check_pairs(Field.PARAM, params)
        entities = [self._mlflow.entities.Param(str(k), _text(v)) for k, v in params.items()]
        for start in range(0, len(entities), _BATCH):
            with _translated("log params"):
                self._client.log_batch(run_id, params=entities[start : start + _BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        self.guard.check_pairs(Field.TAG, tags)
        entities = [self._mlflow.entities.RunTag(str(k), _text(v)) for k, v in tags.items()]
        for start in range(0, len(entities), _BATCH):
            with _translated("set tags"):
                self._client.log_batch(run_id, tags=entities[start : start + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Log metrics at ``step`` (names are checked; values must be numbers)."""
        self.guard.check_metric_names(metrics)
        timestamp = int(time.time() * 1000)
        entities = []
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise InvalidInput(
                    f"Metric {name!r} must be a number, got {type(value).__name__}. "
                    "Log numbers as metrics and text as tags."
                )
            entities.append(self._mlflow.entities.Metric(name, float(value), timestamp, step))
        for start in range(0, len(entities), _BATCH):
            with _translated("log metrics"):
                self._client.log_batch(run_id, metrics=entities[start : start + _BATCH])

    def log_dataset(
        self,
        run_id: str,
        frame: pd.DataFrame,
        *,
        name: str,
        digest: str,
        source: str,
        context: str = "training",
        targets: str | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> None:
        """Log a dataset input of the run: name, digest, source, schema and profile.

        The rows themselves are not stored in MLflow; the schema (column names and types) is
        inferred from ``frame``, and the profile is ``num_rows``/``num_elements``/``sha256``
        plus ``profile`` (e.g. prevalence, split bounds) — all of it checked by the guard.

        Args:
            digest: the snapshot's SHA-256 (64 hex characters); MLflow's digest field holds its
                first 32 characters (MLflow allows 36), the profile's ``sha256`` all of it.
            source: where the snapshot lives (a path or URI without credentials).
            context: ``training``, ``validation``, ``test`` … (MLflow's dataset context tag).
        """
        full_profile = {
            "num_rows": len(frame),
            "num_elements": int(frame.size),
            "sha256": digest,
            **(profile or {}),
        }
        found = self.guard.find_in_name(Field.DATASET, name)
        found += self.guard.find_in_pairs(
            Field.DATASET,
            {"bedside.dataset.digest": digest, "source": source, "context": context},
        )
        found += self.guard.find_in_columns(Field.DATASET, frame.columns)
        found += self.guard.find_in_tree(Field.DATASET_PROFILE, full_profile)
        raise_if_any(found)
        mlflow = self._mlflow
        with _translated("describe the dataset"), warnings.catch_warnings():
            # The integer-column hint is advice for model signatures; a dataset's schema only
            # describes the columns, so the hint is noise here. A local path matches two
            # registered local-artifact source classes of the same name; MLflow warns and picks
            # one, which is the right one either way.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            warnings.filterwarnings("ignore", message="The specified dataset source can be")
            described = mlflow.data.from_pandas(
                frame, source=source, targets=targets, name=name, digest=digest[:_DIGEST_CHARS]
            ).to_dict()
        entity = mlflow.entities.Dataset(
            name=described["name"],
            digest=described["digest"],
            source_type=described["source_type"],
            source=described["source"],
            schema=described.get("schema"),
            profile=json.dumps(full_profile, default=_json_default, sort_keys=True),
        )
        context_tag = mlflow.entities.InputTag(key="mlflow.data.context", value=context)
        with _translated("log the dataset"):
            self._client.log_inputs(
                run_id, datasets=[mlflow.entities.DatasetInput(entity, tags=[context_tag])]
            )

    def log_artifact(self, run_id: str, path: Path, *, artifact_path: str | None = None) -> None:
        """Log a file (or a folder's contents) as run artifacts, after checking names and text.

        File names (relative paths) get the full value rules; text files (no NUL byte in the
        first 8 KiB) get the high-confidence text rules over their whole content. Binary files
        (images, archives) are checked by name only.
        """
        if not path.exists():
            raise NotFound(f"No file or folder at {path} to log as an artifact.")
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        base = path.parent if path.is_file() else path
        found: list[PhiViolation] = []
        if artifact_path:
            found += self.guard.find_in_name(Field.ARTIFACT, artifact_path)
        for position, file in enumerate(files, start=1):
            relative = file.relative_to(base).as_posix()
            name_found = self.guard.find_in_name(Field.ARTIFACT, relative)
            found += [
                PhiViolation(v.field, "name", v.rule, f"file #{position}") for v in name_found
            ]
            label = f"file #{position}" if name_found else repr(relative)
            found += _scan_text_file(self.guard, file, label)
        raise_if_any(found)
        with _translated("log the artifact"):
            if path.is_dir():
                self._client.log_artifacts(run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(run_id, str(path), artifact_path)

    def get_run(self, run_id: str) -> RunRecord:
        """Return a run's params, latest metrics, tags and dataset inputs.

        Raises:
            NotFound: no run with this id.
        """
        with _translated("read the run"):
            run = self._client.get_run(run_id)
        inputs = run.inputs.dataset_inputs if run.inputs else []
        datasets = tuple(
            (
                d.dataset.name,
                d.dataset.digest,
                next((t.value for t in d.tags if t.key == "mlflow.data.context"), ""),
            )
            for d in inputs
        )
        return RunRecord(
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            name=run.info.run_name or "",
            status=run.info.status,
            params=dict(run.data.params),
            metrics={k: float(v) for k, v in run.data.metrics.items()},
            tags=dict(run.data.tags),
            datasets=datasets,
        )

    # -- models ----------------------------------------------------------------------------------

    def log_model(
        self,
        run_id: str,
        model: Any,
        *,
        features: pd.DataFrame,
        name: str = "model",
        input_example: pd.DataFrame | None = None,
        lock_file: Path | None = None,
        pip_requirements: Sequence[str] | None = None,
        trusted_types: Sequence[str] = (),
    ) -> LoggedModelRef:
        """Log a fitted scikit-learn-compatible model to a run, in the skops format.

        Args:
            model: the fitted estimator (a Pipeline is fine).
            features: a sample of the training features; its first 100 rows give the model
                signature (integer columns are declared as doubles, so missing values at
                inference pass MLflow's schema check). The sample itself is not stored.
            name: the logged model's name within the run.
            input_example: stored with the model (``input_example.json``) — use synthetic
                rows; it is checked like any other write.
            lock_file: the project's ``uv.lock``: requirements are pinned from it (fast path).
                Without it, the installed versions of what the model needs are pinned.
            pip_requirements: explicit requirements, overriding both.
            trusted_types: extra types skops may rebuild, after review (see model_format).

        Raises:
            InvalidInput: PHI-looking content (feature names, strings the model keeps, the
                input example, the name), or a type outside the trust list.
        """
        content = model_format.inspect_model(model)
        found = self.guard.find_in_name(Field.MODEL_NAME, name)
        columns = dict.fromkeys([*map(str, features.columns), *content.feature_names])
        found += self.guard.find_in_columns(Field.MODEL_CONTENT, columns)
        found += [
            PhiViolation(Field.MODEL_CONTENT, "value", v.rule, f"string at {path_label}")
            for path_label, v in _string_violations(self.guard, content.strings)
        ]
        if input_example is not None:
            found += self.guard.find_in_frame(Field.INPUT_EXAMPLE, input_example)
        raise_if_any(found)
        trusted = model_format.required_trusted_types(model, trusted_types)
        requirements = _requirements(content.modules, lock_file, pip_requirements)
        mlflow = self._mlflow
        predict_fn = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        sample = features.head(100)
        sample = sample.astype({c: "float64" for c in sample.select_dtypes("integer").columns})
        try:
            output = getattr(model, predict_fn)(sample)
        except Exception as exc:  # the estimator's own error may quote feature values
            raise InvalidInput(
                f"The model cannot {predict_fn} on `features` ({type(exc).__name__}). Pass a "
                "sample of the feature table the model was fitted on."
            ) from exc
        with _translated("infer the model signature"):
            signature = mlflow.models.infer_signature(sample, output)
        with _translated("read the run"):
            experiment_id = self._client.get_run(run_id).info.experiment_id
        with _translated("create the logged model"):
            logged = self._client.create_logged_model(
                experiment_id=experiment_id,
                name=name,
                source_run_id=run_id,
                tags={"bedside.serialization_format": model_format.FORMAT},
                model_type="scikit-learn",
            )
        try:
            self._client.log_outputs(
                run_id, [mlflow.entities.LoggedModelOutput(logged.model_id, step=0)]
            )
            with tempfile.TemporaryDirectory(prefix="bedside-model-") as tmp:
                local = Path(tmp) / "model"
                description = mlflow.models.Model(
                    artifact_path=logged.artifact_location,
                    model_uuid=logged.model_id,
                    run_id=run_id,
                    model_id=logged.model_id,
                )
                mlflow.sklearn.save_model(
                    model,
                    path=str(local),
                    mlflow_model=description,
                    serialization_format=model_format.FORMAT,
                    skops_trusted_types=list(trusted) or None,
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=list(requirements.pins),
                    pyfunc_predict_fn=predict_fn,
                )
                self._client.log_model_artifacts(logged.model_id, str(local))
            self._client.finalize_logged_model(logged.model_id, "READY")
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._client.finalize_logged_model(logged.model_id, "FAILED")
            if isinstance(exc, BedsideError):
                raise
            raise _to_bedside(exc, "log the model") from exc
        logger.info("logged model %s to run %s", logged.model_id, run_id)
        return LoggedModelRef(
            model_id=logged.model_id,
            run_id=run_id,
            artifact_uri=logged.artifact_location,
            serialization_format=model_format.FORMAT,
            trusted_types=trusted,
            requirements=requirements.pins,
            requirements_source=requirements.source,
        )

    def load_model(self, model_id: str, *, trusted_types: Sequence[str] = ()) -> Any:
        """Load a logged model with bedside's skops trust list (never the file's own list).

        Raises:
            NotFound: no logged model with this id.
            IntegrityError: the model is not a skops scikit-learn model, or needs an untrusted
                type.
        """
        mlflow = self._mlflow
        with _translated("read the logged model"):
            logged = self._client.get_logged_model(model_id)
        with tempfile.TemporaryDirectory(prefix="bedside-model-") as tmp:
            location = urlparse(logged.artifact_location)
            if location.scheme == "file":
                local = Path(url2pathname(location.path))  # read in place, nothing to copy
            else:
                with _translated("download the model"):
                    local = Path(
                        mlflow.artifacts.download_artifacts(
                            artifact_uri=logged.artifact_location,
                            dst_path=tmp,
                            tracking_uri=self.tracking_uri,
                        )
                    )
            with _translated("read the MLmodel file"):
                flavor = mlflow.models.Model.load(str(local / "MLmodel")).flavors.get("sklearn")
            if not flavor or flavor.get("serialization_format") != model_format.FORMAT:
                raise IntegrityError(
                    f"Logged model {model_id} is not a scikit-learn model in the skops format; "
                    "bedside does not load pickled models."
                )
            return model_format.load_model_file(local / flavor["pickled_model"], trusted_types)

    def register_model(
        self, model: LoggedModelRef, name: str, *, tags: Mapping[str, Any] | None = None
    ) -> ModelVersionRef:
        """Register a logged model as a new version of ``name`` (created if needed)."""
        version_tags = {**(tags or {}), "bedside.model_id": model.model_id}
        self.guard.check_name(Field.MODEL_NAME, name)
        self.guard.check_pairs(Field.TAG, version_tags)
        with contextlib.suppress(AlreadyExists), _translated("create the registered model"):
            self._client.create_registered_model(name)
        with _translated("create the model version"):
            # The source is the model's storage location, not "models:/<id>": MLflow's SQL
            # registry resolves a models:/ URI through the process-global tracking URI (its own
            # TODO says so), i.e. ./mlflow.db in the current folder, not this tracker's store.
            version = self._client.create_model_version(
                name,
                source=model.artifact_uri,
                run_id=model.run_id,
                tags={k: _text(v) for k, v in version_tags.items()},
                model_id=model.model_id,
            )
        # Link the logged model to its version, as MLflow's own registration does: the UI's
        # model page lists the versions from this tag. (The SQL registry keeps no model id.)
        with _translated("read the logged model"):
            logged = self._client.get_logged_model(model.model_id)
        links = json.loads(logged.tags.get("mlflow.modelVersions", "[]"))
        links.append({"name": name, "version": str(version.version)})
        with _translated("link the logged model"):
            self._client.set_logged_model_tags(
                model.model_id, {"mlflow.modelVersions": json.dumps(links)}
            )
        logger.info("registered model %s as version %s", model.model_id, version.version)
        return self.get_version(name, str(version.version))

    def get_version(self, name: str, version: str) -> ModelVersionRef:
        """Return a registered model version (raises :class:`NotFound`)."""
        with _translated("read the model version"):
            return _version_ref(self._client.get_model_version(name, version))

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a registered model version."""
        self.guard.check_pairs(Field.TAG, tags)
        for key, value in tags.items():
            with _translated("tag the model version"):
                self._client.set_model_version_tag(name, version, str(key), _text(value))

    def set_alias(self, name: str, alias: Alias, version: str) -> None:
        """Point ``alias`` (champion or shadow) of model ``name`` at ``version``."""
        with _translated("set the alias"):
            self._client.set_registered_model_alias(name, Alias(alias).value, version)

    def set_champion(self, name: str, version: str) -> None:
        """Make ``version`` the champion (the production model)."""
        self.set_alias(name, Alias.CHAMPION, version)

    def set_shadow(self, name: str, version: str) -> None:
        """Make ``version`` the shadow model."""
        self.set_alias(name, Alias.SHADOW, version)

    def delete_alias(self, name: str, alias: Alias) -> None:
        """Remove ``alias`` from model ``name`` (nothing happens when it is not set)."""
        if self.find_version_by_alias(name, alias) is None:
            return
        with _translated("delete the alias"):
            self._client.delete_registered_model_alias(name, Alias(alias).value)

    def find_version_by_alias(self, name: str, alias: Alias) -> ModelVersionRef | None:
        """Return the version ``alias`` points at, or None when the alias is not set.

        Raises:
            NotFound: there is no registered model ``name``.
        """
        with _translated("read the registered model"):
            registered = self._client.get_registered_model(name)
        version = (registered.aliases or {}).get(Alias(alias).value)
        return None if version is None else self.get_version(name, str(version))


# --- helpers -------------------------------------------------------------------------------------


def _as_uri(location: str | Path) -> str:
    text = str(location)
    if isinstance(location, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", text):
        return text.rstrip("/")
    folder = Path(text).expanduser().resolve()
    return folder.as_uri()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _string_violations(
    guard: PhiGuard, strings: list[tuple[str, str]]
) -> list[tuple[str, PhiViolation]]:
    out = []
    for position, (path, text) in enumerate(strings, start=1):
        for violation in guard.find_in_name(Field.MODEL_CONTENT, text):
            # The path is made of attribute names and positions, never of data.
            out.append((f"{path} (#{position})", violation))
    return out


def _requirements(
    modules: set[str], lock_file: Path | None, explicit: Sequence[str] | None
) -> Requirements:
    if explicit is not None:
        return Requirements(tuple(explicit), "explicit")
    roots = distributions_of_modules(modules) | {"scikit-learn", "skops", "numpy", "pandas"}
    return requirements_from_lock(lock_file, sorted(roots))


def _scan_text_file(guard: PhiGuard, file: Path, label: str) -> list[PhiViolation]:
    try:
        with file.open("rb") as handle:
            head = handle.read(8192)
            if b"\x00" in head:
                return []  # binary: checked by name only
            tail = ""
            block = head
            while block:
                text = tail + block.decode("utf-8", errors="replace")
                found = guard.find_in_text(Field.ARTIFACT, label, text)
                if found:
                    return found
                tail = text[-256:]
                block = handle.read(_TEXT_CHUNK)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot read the artifact {label} to check it: {exc.strerror}."
        ) from exc
    return []


def _version_ref(version: Any) -> ModelVersionRef:
    return ModelVersionRef(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        model_id=getattr(version, "model_id", None) or (version.tags or {}).get("bedside.model_id"),
        source=version.source,
        aliases=tuple(getattr(version, "aliases", ()) or ()),
        tags=dict(version.tags or {}),
    )


_ERROR_CLASSES: Final[Mapping[str, type[BedsideError]]] = {
    "RESOURCE_DOES_NOT_EXIST": NotFound,
    "NOT_FOUND": NotFound,
    "RESOURCE_ALREADY_EXISTS": AlreadyExists,
    "INVALID_PARAMETER_VALUE": InvalidInput,
    "BAD_REQUEST": InvalidInput,
    "INVALID_STATE": Conflict,
    "TEMPORARILY_UNAVAILABLE": StoreUnavailable,
    "ENDPOINT_NOT_FOUND": StoreUnavailable,
}


def _to_bedside(exc: Exception, action: str) -> BedsideError:
    code = getattr(exc, "error_code", "")
    message = getattr(exc, "message", None) or str(exc)
    cls = _ERROR_CLASSES.get(code)
    if cls is None:
        cls = StoreUnavailable if "OperationalError" in type(exc).__name__ else StoreError
    return cls(f"MLflow could not {action}: {message}", details={"mlflow_error_code": code})


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn MLflow and driver errors into bedside errors at the store boundary."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError) as exc:
        raise _to_bedside(exc, action) from exc
