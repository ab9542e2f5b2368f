"""The model format decision: skops with bedside's trust list; what a fitted model carries."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as skio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from bedside.errors import IntegrityError, InvalidInput
from bedside.stores.model_format import (
    BEDSIDE_TRUSTED_TYPES,
    inspect_model,
    load_model_file,
    required_trusted_types,
)

RNG = np.random.default_rng(5)
X = pd.DataFrame({"a": RNG.normal(size=300), "b": RNG.normal(size=300)})
Y = (X["a"] + RNG.normal(0, 0.5, 300) > 0).astype(int)

CLINICAL_MODELS = {
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=10),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=5),
    "random_forest": lambda: RandomForestClassifier(n_estimators=5),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=5),
    "decision_tree": lambda: DecisionTreeClassifier(max_depth=3),
    "logistic_pipeline": lambda: make_pipeline(
        SimpleImputer(), StandardScaler(), LogisticRegression()
    ),
    "calibrated_hgb": lambda: CalibratedClassifierCV(
        HistGradientBoostingClassifier(max_iter=5), cv=2
    ),
    "log_transform": lambda: make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
}


@pytest.mark.parametrize("kind", sorted(CLINICAL_MODELS))
def test_bedside_trust_list_covers_common_clinical_models(kind: str, tmp_path: Path) -> None:
    model = CLINICAL_MODELS[kind]().fit(X.abs(), Y)
    needed = required_trusted_types(model)
    assert set(needed) <= set(BEDSIDE_TRUSTED_TYPES)
    path = tmp_path / "m.skops"
    skio.dump(model, path)
    loaded = load_model_file(path)
    np.testing.assert_array_equal(loaded.predict_proba(X.abs()), model.predict_proba(X.abs()))


def test_a_model_needing_other_types_is_refused_with_their_names() -> None:
    knn = KNeighborsClassifier().fit(X, Y)
    with pytest.raises(InvalidInput) as caught:
        required_trusted_types(knn)
    assert caught.value.details["untrusted_types"] == [
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
    ]
    assert required_trusted_types(knn, caught.value.details["untrusted_types"]) == tuple(
        caught.value.details["untrusted_types"]
    )


def _crafted_file(path: Path, module: str, function: str) -> None:
    """A skops file whose function node points somewhere else (what an attacker would ship)."""
    data = skio.dumps(FunctionTransformer(np.log1p))
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    schema["content"]["content"]["func"].update({"__module__": module, "__class__": function})
    with zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            payload = source.read(item.filename)
            if item.filename == "schema.json":
                payload = json.dumps(schema).encode()
            target.writestr(item, payload)


def test_a_crafted_file_calling_os_system_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    _crafted_file(path, "os", "system")
    with pytest.raises(IntegrityError) as caught:
        load_model_file(path)
    assert caught.value.details["untrusted_types"] == ["os.system"]
    control = tmp_path / "fine.skops"
    _crafted_file(control, "numpy", "log1p")  # the same edit, pointing at a trusted function
    assert load_model_file(control).func is np.log1p


def test_a_file_that_is_not_skops_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(IntegrityError, match="not a readable skops file"):
        load_model_file(path)


def test_inspect_model_finds_feature_names_strings_and_modules() -> None:
    frame = X.assign(unit=np.where(Y == 1, "ICU", "ward"))
    model = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["unit"])]
        ),
        HistGradientBoostingClassifier(max_iter=5),
    ).fit(frame, Y)
    content = inspect_model(model)
    assert list(dict.fromkeys(content.feature_names)) == ["a", "b", "unit"]
    assert content.modules == {"sklearn", "numpy"}  # numpy: the dtypes the encoder keeps
    strings = dict(content.strings)
    assert strings["Pipeline.steps[0][1].transformers_[1][1].categories_[0][0]"] == "ICU"
    assert strings["Pipeline.steps[0][1].transformers_[1][1].categories_[0][1]"] == "ward"


def test_inspect_model_paths_never_contain_data() -> None:
    texts = ["mary quixwhistle was seen", "routine review"]
    model = CountVectorizer().fit(texts)
    content = inspect_model(model)
    words = {t for (_, t) in content.strings}
    assert {"quixwhistle", "mary"} <= words  # vocabulary keys are checked as strings …
    assert not any("quixwhistle" in path for path, _ in content.strings)  # … never used as paths


def test_inspect_model_handles_shared_and_nested_objects() -> None:
    scaler = StandardScaler().fit(X)
    holder: Any = make_pipeline(scaler, LogisticRegression()).fit(X, Y)
    holder.extra = {"again": scaler, "nested": [[("deep", ["leaf"])]]}
    content = inspect_model(holder)
    assert ("Pipeline.extra<1>[0][0][1][0]", "leaf") in content.strings
