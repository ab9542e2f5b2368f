"""docs/pipeline.md documents every key of the schema, with its real default, and real examples."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bedside.domain.durations import parse_duration
from bedside.domain.expressions import EVALUATION_METRICS, MONITORING_METRICS
from bedside.domain.spec import PipelineSpec, PredictionTime
from bedside.domain.specfile import load_pipeline_text

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")

# Defaults filled in from other keys when the file is loaded; the docs say where they come from.
DERIVED = {("Pipeline", "model_name"), ("DeploymentStage", "promotion_roles"),
           ("DemographicFeature", "attribute")}  # fmt: skip


def _models(annotation: Any, found: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__name__ not in found:
            found[annotation.__name__] = annotation
            for field in annotation.model_fields.values():
                _models(field.annotation, found)
    else:
        for argument in get_args(annotation):
            _models(argument, found)
    return found


MODELS = _models(PipelineSpec, {})


def _section(marker: str) -> str:
    start = DOC.index(marker) + len(marker)
    following = DOC.find("<!--", start)
    return DOC[start : following if following != -1 else len(DOC)]


def _rows(marker: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in _section(marker).splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if match:
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
            rows[match.group(1)] = cells
    return rows


def _yaml_block_after(marker: str) -> str:
    start = DOC.index(marker)
    begin = DOC.index("```yaml\n", start) + len("```yaml\n")
    return DOC[begin : DOC.index("```", begin)]


def test_every_model_in_the_schema_is_found() -> None:
    assert {"Pipeline", "DeploymentStage", "StatisticalGate", "ObservationFeature"} <= set(MODELS)
    assert len(MODELS) >= 25


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_key_is_documented_in_its_section(name: str) -> None:
    marker = f"<!-- model: {name} -->"
    assert marker in DOC, f"docs/pipeline.md has no section for {name} (add '{marker}')"
    rows = _rows(marker)
    fields = set(MODELS[name].model_fields)
    assert set(rows) >= fields, f"{name}: undocumented keys {sorted(fields - set(rows))}"
    assert set(rows) <= fields, (
        f"{name}: documented keys that do not exist {sorted(set(rows) - fields)}"
    )


def _expected_default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _check_default(model: str, key: str, field: FieldInfo, cell: str) -> None:
    text = cell.strip("`")
    default = _expected_default(field)
    if (model, key) in DERIVED:
        assert cell.startswith("derived"), f"{model}.{key}: say where the default comes from"
    elif default is PydanticUndefined:
        assert text == "required", f"{model}.{key} is required; docs say {cell!r}"
    elif default is None:
        assert text == "none", f"{model}.{key} defaults to none; docs say {cell!r}"
    elif isinstance(default, bool):
        assert text == str(default).lower(), f"{model}.{key}: default {default}; docs {cell!r}"
    elif isinstance(default, int | float):
        assert float(text) == default, f"{model}.{key}: default {default}; docs {cell!r}"
    elif isinstance(default, str):
        assert text == default, f"{model}.{key}: default {default!r}; docs {cell!r}"
    elif isinstance(default, timedelta):
        assert parse_duration(text) == default, f"{model}.{key}: default {default}; docs {cell!r}"
    elif isinstance(default, PredictionTime):
        assert text == str(default), f"{model}.{key}: default {default}; docs {cell!r}"
    elif isinstance(default, dict):
        assert default == {} and text == "{}", f"{model}.{key}: docs {cell!r}"
    elif isinstance(default, tuple) and all(isinstance(x, str | int) for x in default):
        listed = "[" + ", ".join(str(x) for x in default) + "]"
        assert text == listed, f"{model}.{key}: default {listed}; docs {cell!r}"
    else:  # a nested mapping's defaults are documented in its own section
        assert cell, f"{model}.{key}: describe the default"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_documented_defaults_are_the_real_defaults(name: str) -> None:
    rows = _rows(f"<!-- model: {name} -->")
    for key, field in MODELS[name].model_fields.items():
        _type, default, meaning = rows[key]
        assert meaning, f"{name}.{key}: say what the key means"
        _check_default(name, key, field, default)


def test_docs_founding_example_is_the_example_file() -> None:
    block = _yaml_block_after("<!-- example: founding")
    assert block == (ROOT / "examples/sepsis/pipeline.yaml").read_text(encoding="utf-8")


def test_docs_full_example_is_the_example_file_and_loads() -> None:
    block = _yaml_block_after("<!-- example: full")
    assert block == (ROOT / "examples/sepsis/pipeline.full.yaml").read_text(encoding="utf-8")
    assert load_pipeline_text(block).spec.missing_for_run() == ()


@pytest.mark.parametrize(
    ("marker", "vocabulary"),
    [("<!-- metrics: monitoring -->", MONITORING_METRICS),
     ("<!-- metrics: evaluation -->", EVALUATION_METRICS)],
)  # fmt: skip
def test_every_metric_name_is_documented(marker: str, vocabulary: dict[str, str]) -> None:
    rows = _rows(marker)
    assert set(rows) == set(vocabulary)
    for name, meaning in vocabulary.items():
        assert rows[name] == [meaning]


def test_documented_error_lines_are_what_the_loader_says() -> None:
    founding = (ROOT / "examples/sepsis/pipeline.yaml").read_text(encoding="utf-8")
    shown = [line for line in DOC.splitlines() if line.startswith("pipeline.yaml:")]
    produced = []
    for new in ("shadow_duration: 14 fortnights", "shadow_duraton: 14_days"):
        text = founding.replace("shadow_duration: 14_days", new)
        try:
            load_pipeline_text(text, source="pipeline.yaml")
        except ValueError as error:
            produced += [str(issue) for issue in error.issues]  # type: ignore[attr-defined]
    assert shown == produced


def test_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    start = DOC.index("```python\n") + len("```python\n")
    code = DOC[start : DOC.index("```", start)]
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/pipeline.md", "exec"), namespace)  # our own documentation
    assert namespace["spec"].model_name == "sepsis-prediction"


def test_docs_mention_each_stage_and_gate_kind() -> None:
    for word in ("data_preparation", "training", "validation", "deployment", "monitoring",
                 "statistical", "fairness", "clinical_review", "expression"):  # fmt: skip
        assert f"`{word}`" in DOC


def test_type_cells_name_the_literal_options() -> None:
    # A key restricted to a few words lists them all in its type cell.
    for name, model in MODELS.items():
        rows = _rows(f"<!-- model: {name} -->")
        for key, field in model.model_fields.items():
            annotation = field.annotation
            if get_origin(annotation) is not None and str(get_origin(annotation)).endswith(
                "Literal"
            ):
                for option in get_args(annotation):
                    assert f"`{option}`" in rows[key][0], f"{name}.{key}: list `{option}`"
