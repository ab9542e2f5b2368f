"""Tracker on a real MLflow SQLite store: runs, datasets, models, registry, aliases, the guard."""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import bedside
from bedside.errors import (
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
)
from bedside.stores.tracking import Alias, Tracker
from tests.support import REPO

DIGEST = "5e" * 32


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-store")


@pytest.fixture(scope="session")
def tracker(store_root: Path) -> Tracker:
    """One SQLite store for the session: creating one costs ~1.7 s of migrations."""
    return Tracker(
        f"sqlite:///{store_root / 'db' / 'mlflow.db'}", artifact_location=store_root / "artifacts"
    )


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(20260301)
    n = 600
    features = pd.DataFrame(
        {
            "age": rng.integers(18, 89, n),
            "heart_rate": rng.normal(88, 15, n),
            "lactate": rng.gamma(2.0, 1.0, n),
            "unit": rng.choice(["ICU", "ward", "ED"], n),
        }
    )
    risk = 0.04 * (features["heart_rate"] - 88) + 0.8 * (features["lactate"] - 2)
    label = pd.Series((risk + rng.normal(0, 1, n) > 0.5).astype(int), name="sepsis")
    return features, label


@pytest.fixture(scope="session")
def hgb(data: tuple[pd.DataFrame, pd.Series]) -> HistGradientBoostingClassifier:
    features, label = data
    numeric = features.drop(columns=["unit"])
    return HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(numeric, label)


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> str:
    return f"exp-{request.node.name[:60]}"


@pytest.fixture
def mlflow_client(tracker: Tracker) -> Iterator[Any]:
    """A plain MLflow client on the same store, for test-only reads (and the bypass test)."""
    import mlflow

    yield mlflow.MlflowClient(tracker.tracking_uri, registry_uri=tracker.tracking_uri)


# --- runs ----------------------------------------------------------------------------------------


def test_tracker_run_records_params_metrics_tags_and_dataset(
    tracker: Tracker, experiment: str, data: tuple[pd.DataFrame, pd.Series], hgb: Any
) -> None:
    features, label = data
    with tracker.run(
        experiment, run_name="train-hgb", tags={"stage": "training"}, user="dana"
    ) as r:
        tracker.log_params(r, hgb.get_params())
        tracker.log_params(r, {f"p{i}": i for i in range(150)})  # more than one batch
        tracker.set_tags(r, {"bedside.git.dirty": False})
        tracker.log_metrics(r, {"auroc": 0.83, "test.auroc.ci_low": 0.79, "n_rows": 600})
        tracker.log_dataset(
            r,
            features.assign(sepsis=label),
            name="sepsis-train",
            digest=DIGEST,
            source="/project/snapshots/abc.parquet",
            targets="sepsis",
            profile={"prevalence": float(label.mean()), "split": "train"},
        )
    run = tracker.get_run(r)
    assert run.status == "FINISHED" and run.name == "train-hgb"
    assert run.params["max_iter"] == "40" and run.params["p149"] == "149"
    assert run.params["random_state"] == "0"
    assert run.metrics == {"auroc": 0.83, "test.auroc.ci_low": 0.79, "n_rows": 600.0}
    assert run.tags["stage"] == "training" and run.tags["mlflow.user"] == "dana"
    assert run.tags["bedside.git.dirty"] == "false"
    assert run.datasets == (("sepsis-train", DIGEST[:32], "training"),)


def test_tracker_dataset_profile_and_schema_are_stored(
    tracker: Tracker, experiment: str, data: tuple[pd.DataFrame, pd.Series], mlflow_client: Any
) -> None:
    features, _ = data
    with tracker.run(experiment, run_name="ds") as r:
        tracker.log_dataset(
            r, features, name="d", digest=DIGEST, source="/x.parquet", profile={"events": 3}
        )
    dataset = mlflow_client.get_run(r).inputs.dataset_inputs[0].dataset
    profile = json.loads(dataset.profile)
    assert profile == {"num_rows": 600, "num_elements": 2400, "sha256": DIGEST, "events": 3}
    columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
    assert columns == ["age", "heart_rate", "lactate", "unit"]


def test_tracker_run_context_marks_failure(tracker: Tracker, experiment: str) -> None:
    with pytest.raises(RuntimeError), tracker.run(experiment, run_name="boom") as r:
        raise RuntimeError("training crashed")
    assert tracker.get_run(r).status == "FAILED"


def test_tracker_lineage_tags_are_accepted_by_the_guard(tracker: Tracker, experiment: str) -> None:
    from bedside.stores.lineage import lineage_tags

    tags = lineage_tags(
        REPO,
        dataset_digest=DIGEST,
        pipeline_file=REPO / "examples" / "sepsis" / "pipeline.yaml",
        lock_file=REPO / "uv.lock",
    )
    run = tracker.get_run(tracker.start_run(experiment, run_name="lineage", tags=tags))
    assert {k: run.tags[k] for k in tags} == tags
    assert run.tags["bedside.version"] == bedside.__version__


# --- the guard: refused whole, nothing written ---------------------------------------------------


def test_tracker_refuses_phi_and_writes_nothing(
    tracker: Tracker, experiment: str, mlflow_client: Any, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        tracker.start_run(experiment, run_name="ok", tags={"note": "MRN 00412345"})
    assert "00412345" not in str(caught.value)
    assert mlflow_client.get_experiment_by_name(experiment) is None  # not even the experiment

    run_id = tracker.start_run(experiment, run_name="guarded")
    with pytest.raises(InvalidInput, match="param 'patient_id'"):
        tracker.log_params(run_id, {"max_iter": 10, "patient_id": "abc"})
    with pytest.raises(InvalidInput, match="metric 'mrn_count'"):
        tracker.log_metrics(run_id, {"auroc": 0.5, "mrn_count": 3})
    with pytest.raises(InvalidInput, match="rule 'person_name'"):
        tracker.set_tags(run_id, {"reviewed_by_patient": "Mary Quixwhistle"})
    features, _ = data
    with pytest.raises(InvalidInput, match="dataset 'patient_id'"):
        tracker.log_dataset(
            run_id, features.assign(patient_id=1), name="d", digest=DIGEST, source="/x"
        )
    with pytest.raises(InvalidInput, match="dataset profile"):
        tracker.log_dataset(
            run_id, features, name="d", digest=DIGEST, source="/x", profile={"oldest": "1931-07-19"}
        )
    with pytest.raises(InvalidInput, match="dataset 'source'"):
        tracker.log_dataset(run_id, features, name="d", digest=DIGEST, source="/data/Patient/12")
    with pytest.raises(InvalidInput, match="allow_list_format"):
        tracker.log_dataset(run_id, features, name="d", digest="not-a-digest", source="/x")
    run = tracker.get_run(run_id)
    assert run.params == {} and run.metrics == {} and run.datasets == ()
    assert set(run.tags) == {"mlflow.runName"}


def test_tracker_messages_never_carry_mlflow_values_for_refused_items(tracker: Tracker) -> None:
    with pytest.raises(InvalidInput) as caught:
        tracker.ensure_experiment("cohort of Smith, John")
    assert "Smith" not in str(caught.value)
    assert caught.value.details["violations"][0]["rule"] == "person_name"


# --- models --------------------------------------------------------------------------------------


def _models(features: pd.DataFrame, label: pd.Series) -> dict[str, tuple[Any, pd.DataFrame]]:
    numeric = features.drop(columns=["unit"])
    with_missing = numeric.mask(np.random.default_rng(1).random(numeric.shape) < 0.05)
    mixed = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "heart_rate", "lactate"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["unit"]),
        ]
    )
    categorical = features.assign(unit=features["unit"].astype("category"))
    return {
        "hist_gradient_boosting": (
            HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(numeric, label),
            numeric,
        ),
        "hgb_categorical_from_dtype": (
            HistGradientBoostingClassifier(
                max_iter=20, categorical_features="from_dtype", random_state=0
            ).fit(categorical, label),
            categorical,
        ),
        "random_forest": (
            RandomForestClassifier(n_estimators=15, random_state=0).fit(numeric, label),
            numeric,
        ),
        "impute_scale_logistic": (
            make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(
                with_missing, label
            ),
            with_missing,
        ),
        "column_transformer_hgb": (
            make_pipeline(mixed, HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(
                features, label
            ),
            features,
        ),
        "calibrated_hgb": (
            CalibratedClassifierCV(
                HistGradientBoostingClassifier(max_iter=15, random_state=0), cv=3
            ).fit(numeric, label),
            numeric,
        ),
    }


@pytest.fixture(scope="session")
def models(data: tuple[pd.DataFrame, pd.Series]) -> dict[str, tuple[Any, pd.DataFrame]]:
    return _models(*data)


@pytest.mark.parametrize(
    "kind",
    [
        "hist_gradient_boosting",
        "hgb_categorical_from_dtype",
        "random_forest",
        "impute_scale_logistic",
        "column_transformer_hgb",
        "calibrated_hgb",
    ],
)
def test_tracker_logged_model_loads_back_and_predicts_identically(
    tracker: Tracker, experiment: str, models: dict[str, tuple[Any, pd.DataFrame]], kind: str
) -> None:
    model, features = models[kind]
    with tracker.run(experiment, run_name=kind) as run_id:
        logged = tracker.log_model(run_id, model, features=features, lock_file=REPO / "uv.lock")
    loaded = tracker.load_model(logged.model_id)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    assert logged.serialization_format == "skops"


def test_tracker_logged_model_files_format_and_requirements(
    tracker: Tracker, experiment: str, hgb: Any, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    from importlib.metadata import version

    features = data[0].drop(columns=["unit"])
    with tracker.run(experiment, run_name="files") as run_id:
        logged = tracker.log_model(run_id, hgb, features=features, lock_file=REPO / "uv.lock")
    folder = Path(logged.artifact_uri.removeprefix("file://"))
    names = sorted(p.name for p in folder.iterdir())
    assert "model.skops" in names and not any(n.endswith(".pkl") for n in names)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    sklearn_flavor = mlmodel["flavors"]["sklearn"]
    assert sklearn_flavor["serialization_format"] == "skops"
    assert sklearn_flavor["skops_trusted_types"] == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]
    assert mlmodel["flavors"]["python_function"]["predict_fn"] == "predict_proba"
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [(c["name"], c["type"]) for c in inputs] == [
        ("age", "double"),  # integer columns are declared as doubles (missing values at serving)
        ("heart_rate", "double"),
        ("lactate", "double"),
    ]
    requirements = (folder / "requirements.txt").read_text().split()
    for package in ("scikit-learn", "skops", "numpy", "scipy", "pandas"):
        assert f"{package}=={version(package)}" in requirements
    assert any(r.startswith("mlflow==") for r in requirements)  # added by MLflow itself
    assert logged.requirements_source == "uv.lock"
    assert str(folder).startswith(str(tracker.artifact_root).removeprefix("file://"))


def test_tracker_log_model_requirements_without_lock_or_explicit(
    tracker: Tracker, experiment: str, hgb: Any, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    features = data[0].drop(columns=["unit"])
    with tracker.run(experiment, run_name="req") as run_id:
        installed = tracker.log_model(run_id, hgb, features=features, name="a")
        explicit = tracker.log_model(
            run_id, hgb, features=features, name="b", pip_requirements=["scikit-learn==1.9.1"]
        )
    assert installed.requirements_source == "installed"
    assert any(p.startswith("scikit-learn==") for p in installed.requirements)
    assert explicit.requirements == ("scikit-learn==1.9.1",)
    assert explicit.requirements_source == "explicit"


def test_tracker_refuses_a_model_that_memorised_names(
    tracker: Tracker, experiment: str, mlflow_client: Any, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, label = data
    leaky = features.assign(unit=np.where(label == 1, "Mary Quixwhistle", "ward"))
    model = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["unit"])]),
        LogisticRegression(),
    ).fit(leaky, label)
    run_id = tracker.start_run(experiment, run_name="leaky")
    with pytest.raises(InvalidInput) as caught:
        tracker.log_model(run_id, model, features=leaky)
    message = str(caught.value)
    assert "Quixwhistle" not in message
    assert "model string at Pipeline.steps[0][1].transformers_[0][1].categories_[0][0]" in message
    experiment_id = tracker.get_run(run_id).experiment_id
    assert mlflow_client.search_logged_models(experiment_ids=[experiment_id]) == []


def test_tracker_refuses_identifier_features_and_phi_input_examples(
    tracker: Tracker, experiment: str, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, label = data
    numeric = features.drop(columns=["unit"])
    with_id = numeric.assign(mrn=np.arange(len(numeric)))
    model = LogisticRegression().fit(with_id, label)
    run_id = tracker.start_run(experiment, run_name="ids")
    with pytest.raises(InvalidInput, match="model 'mrn' \\(column\\): rule 'key_name'"):
        tracker.log_model(run_id, model, features=with_id)
    clean = LogisticRegression().fit(numeric, label)
    example = numeric.head(2).assign(age=[45, 93])
    with pytest.raises(InvalidInput, match="input example column 'age'"):
        tracker.log_model(run_id, clean, features=numeric, input_example=example)
    logged = tracker.log_model(
        run_id, clean, features=numeric, input_example=numeric.head(2).assign(age=[45, 71])
    )
    assert (Path(logged.artifact_uri.removeprefix("file://")) / "input_example.json").exists()


def test_tracker_refuses_features_the_model_cannot_predict_on(
    tracker: Tracker, experiment: str, hgb: Any, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    run_id = tracker.start_run(experiment, run_name="mismatch")
    with pytest.raises(InvalidInput, match="cannot predict_proba on `features`"):
        tracker.log_model(run_id, hgb, features=data[0][["age"]])


def test_tracker_trust_list_comes_from_bedside_not_from_the_model_file(
    tracker: Tracker, experiment: str, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    features = data[0][["age", "lactate"]]
    knn = KNeighborsClassifier().fit(features, data[1])
    run_id = tracker.start_run(experiment, run_name="knn")
    with pytest.raises(InvalidInput, match="sklearn.neighbors._kd_tree.KDTree"):
        tracker.log_model(run_id, knn, features=features)
    extra = [
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
    ]
    logged = tracker.log_model(run_id, knn, features=features, trusted_types=extra)
    # The MLmodel file lists the types, but bedside does not take the file's word for it.
    with pytest.raises(IntegrityError, match="KDTree"):
        tracker.load_model(logged.model_id)
    loaded = tracker.load_model(logged.model_id, trusted_types=extra)
    np.testing.assert_array_equal(loaded.predict_proba(features), knn.predict_proba(features))


def test_tracker_refuses_to_load_a_pickled_model(
    tracker: Tracker, experiment: str, hgb: Any, mlflow_client: Any, tmp_path: Path
) -> None:
    import mlflow

    experiment_id = tracker.ensure_experiment(experiment)
    logged = mlflow_client.create_logged_model(experiment_id=experiment_id, name="pickled")
    local = tmp_path / "m"
    mlflow.sklearn.save_model(
        hgb, str(local), serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
    )
    mlflow_client.log_model_artifacts(logged.model_id, str(local))
    with pytest.raises(IntegrityError, match="does not load pickled models"):
        tracker.load_model(logged.model_id)


# --- registry and aliases ------------------------------------------------------------------------


def test_tracker_register_version_and_move_aliases(
    tracker: Tracker, experiment: str, models: dict[str, tuple[Any, pd.DataFrame]]
) -> None:
    name = f"model-{experiment[-40:]}"
    first, features = models["hist_gradient_boosting"]
    second, _ = models["random_forest"]
    with tracker.run(experiment, run_name="v1") as run_1:
        logged_1 = tracker.log_model(run_1, first, features=features)
    with tracker.run(experiment, run_name="v2") as run_2:
        logged_2 = tracker.log_model(run_2, second, features=features)
    v1 = tracker.register_model(logged_1, name, tags={"bedside.state": "candidate"})
    v2 = tracker.register_model(logged_2, name)
    assert (v1.version, v2.version) == ("1", "2")
    assert (v1.run_id, v1.model_id) == (run_1, logged_1.model_id)
    assert v1.tags["bedside.state"] == "candidate"

    assert tracker.find_version_by_alias(name, Alias.CHAMPION) is None
    tracker.set_champion(name, "1")
    tracker.set_shadow(name, "2")
    champion = tracker.find_version_by_alias(name, Alias.CHAMPION)
    shadow = tracker.find_version_by_alias(name, Alias.SHADOW)
    assert champion is not None and champion.version == "1" and champion.aliases == ("champion",)
    assert shadow is not None and shadow.model_id == logged_2.model_id

    tracker.set_champion(name, "2")  # promotion moves the alias
    promoted = tracker.get_version(name, "2")
    assert set(promoted.aliases) == {"champion", "shadow"}
    assert tracker.get_version(name, "1").aliases == ()
    tracker.delete_alias(name, Alias.SHADOW)
    tracker.delete_alias(name, Alias.SHADOW)  # already gone: nothing happens
    assert tracker.find_version_by_alias(name, Alias.SHADOW) is None

    loaded = tracker.load_model(promoted.model_id or "")
    np.testing.assert_array_equal(loaded.predict_proba(features), second.predict_proba(features))
    tracker.set_version_tags(name, "2", {"bedside.state": "production"})
    assert tracker.get_version(name, "2").tags["bedside.state"] == "production"


def test_tracker_logged_model_lists_its_registered_versions(
    tracker: Tracker,
    experiment: str,
    hgb: Any,
    data: tuple[pd.DataFrame, pd.Series],
    mlflow_client: Any,
) -> None:
    features = data[0].drop(columns=["unit"])
    with tracker.run(experiment, run_name="link") as run_id:
        logged = tracker.log_model(run_id, hgb, features=features)
    tracker.register_model(logged, f"link-{experiment[-30:]}")
    tags = mlflow_client.get_logged_model(logged.model_id).tags
    assert json.loads(tags["mlflow.modelVersions"]) == [
        {"name": f"link-{experiment[-30:]}", "version": "1"}
    ]
    assert str(mlflow_client.get_logged_model(logged.model_id).status) == "READY"


def test_tracker_registry_guard_and_errors(tracker: Tracker) -> None:
    with pytest.raises(NotFound):
        tracker.get_version("no-such-model", "1")
    with pytest.raises(NotFound):
        tracker.get_run("0" * 32)
    with pytest.raises(ValueError):
        tracker.set_alias("x", "production", "1")  # type: ignore[arg-type]


def test_tracker_changing_a_logged_param_is_refused(tracker: Tracker, experiment: str) -> None:
    run_id = tracker.start_run(experiment, run_name="param")
    tracker.log_params(run_id, {"max_iter": 10})
    with pytest.raises(InvalidInput) as caught:
        tracker.log_params(run_id, {"max_iter": 20})
    assert "max_iter" in str(caught.value)


# --- artifacts and locations ---------------------------------------------------------------------


def test_tracker_log_artifact_checks_names_and_text(
    tracker: Tracker, experiment: str, tmp_path: Path, mlflow_client: Any
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "validation.html").write_text("<h1>AUROC 0.84</h1><p>2026-03-01, Dr Carol Jones</p>")
    (report / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + b"555-013-2719")
    run_id = tracker.start_run(experiment, run_name="artifacts")
    tracker.log_artifact(run_id, report, artifact_path="validation")
    folder = Path(mlflow_client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    assert sorted(p.name for p in (folder / "validation").iterdir()) == [
        "roc.png",
        "validation.html",
    ]

    leaky = tmp_path / "notes.txt"
    leaky.write_text("x" * (9 << 20) + " call 555-013-2719 ")  # past the first 8 MiB block
    with pytest.raises(InvalidInput, match="artifact 'notes.txt' \\(content\\): rule 'phone'"):
        tracker.log_artifact(run_id, leaky)
    named = tmp_path / "Mary_Quixwhistle 1931-07-19.txt"
    named.write_text("fine")
    with pytest.raises(InvalidInput) as caught:
        tracker.log_artifact(run_id, named)
    assert "artifact file #1 (name)" in str(caught.value)
    assert "Quixwhistle" not in str(caught.value)
    assert not (folder / "notes.txt").exists() and not (folder / named.name).exists()


def test_tracker_never_writes_into_the_current_folder(
    tracker: Tracker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hgb: Any,
    data: tuple[pd.DataFrame, pd.Series],
) -> None:
    # (A brand-new store under a changed folder is covered by tests/test_no_egress.py.)
    monkeypatch.chdir(tmp_path)
    features = data[0].drop(columns=["unit"])
    with tracker.run("cwd", run_name="r") as run_id:
        tracker.log_artifact(run_id, REPO / "examples" / "sepsis" / "pipeline.yaml")
        logged = tracker.log_model(run_id, hgb, features=features)
    version = tracker.register_model(logged, "cwd")
    tracker.load_model(version.model_id or "")
    assert list(tmp_path.iterdir()) == []
    assert logged.artifact_uri.startswith(str(tracker.artifact_root))


def test_tracker_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="explicit artifact location"):
        Tracker(f"sqlite:///{tmp_path / 'm.db'}", artifact_location=None)
    with pytest.raises(ConfigError, match="Unsupported MLflow tracking URI scheme"):
        Tracker(str(tmp_path / "mlruns"), artifact_location=tmp_path)
    with pytest.raises(ConfigError, match="Unsupported"):
        Tracker("ftp://host/x", artifact_location=tmp_path)


def test_tracker_from_settings_puts_artifacts_under_the_project(tmp_path: Path) -> None:
    from bedside.config import Settings

    settings = Settings.load({}, home=tmp_path)
    local = Tracker.from_settings(settings)
    assert local.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert local.artifact_root == (tmp_path / "artifacts" / "mlflow").as_uri()
    remote = Tracker.from_settings(
        Settings.load({"BEDSIDE_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}, home=tmp_path)
    )
    assert remote.artifact_root is None  # the tracking server decides


def test_only_the_tracking_store_imports_mlflow() -> None:
    src = Path(bedside.__file__).parent
    importers = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                importers.append(path.relative_to(src).as_posix())
    assert sorted(set(importers)) == ["stores/tracking.py"]


def test_mlflows_missing_pip_warning_is_dropped_and_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import bedside.stores.tracking  # noqa: F401  (installs the filter)

    mlflow_env = logging.getLogger("mlflow.utils.environment")
    with caplog.at_level(logging.WARNING, logger="mlflow.utils.environment"):
        mlflow_env.warning(
            "Failed to resolve installed pip version. ``pip`` will be added to conda.yaml"
        )
        mlflow_env.warning("some other MLflow warning")
    assert [r.getMessage() for r in caplog.records] == ["some other MLflow warning"]
