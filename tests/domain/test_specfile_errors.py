"""Malformed pipeline files: each problem is reported with its line, key, expectation and fix.

Every variant below is the founding example (examples/sepsis/pipeline.yaml) with one edit. Its
line numbers, for reference (number, then the line as written):

 1 pipeline:
 2   name: sepsis-prediction-pipeline
 3   version: "2.3"
 4   stages:
 5     - name: data_preparation
 6       validation:
 7         - {check: phi_scan, description: "Verify no PHI in training features", blocker: true}
 8         - {check: data_quality, min_completeness: 0.95}
 9     - {name: training, tracking: mlflow, encryption: AES-256-GCM}
10     - name: validation
11       gates:
12         - statistical: {min_auc_roc: 0.85, min_sensitivity: 0.90, max_false_positive_rate: 0.15}
13         - fairness: {max_disparity: 0.05, stratify_by: [race, sex, age_group]}
14         - clinical_review: {required_approvers: 2, roles: [CMIO, clinical_informaticist]}
15     - {name: deployment, strategy: shadow_first, shadow_duration: 14_days, auto_promote: false}
16     - {name: monitoring, drift_check_interval: 24h, accuracy_alert_threshold: 0.80,
17        retraining_trigger: drift_score > 0.3}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.domain.specfile import SpecIssue, load_pipeline_bytes, load_pipeline_text
from bedside.errors import InvalidInput, PipelineFileError

FOUNDING = (Path(__file__).resolve().parents[2] / "examples/sepsis/pipeline.yaml").read_text(
    encoding="utf-8"
)
SOURCE = "pipeline.yaml"


def _edit(old: str, new: str) -> str:
    assert FOUNDING.count(old) == 1, f"the edit target {old!r} must occur exactly once"
    return FOUNDING.replace(old, new)


def _issues(text: str) -> list[SpecIssue]:
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_text(text, source=SOURCE)
    issues = caught.value.issues
    assert issues, "a refused file names at least one issue"
    assert all(isinstance(issue, SpecIssue) for issue in issues)
    return issues


@dataclass(frozen=True)
class Variant:
    old: str
    new: str
    line: int
    column: int
    key_path: str
    expected: str
    found: str
    fix: str


VARIANTS: dict[str, Variant] = {
    "unknown key with did-you-mean": Variant(
        "shadow_duration: 14_days",
        "shadow_duraton: 14_days",
        15, 50, "pipeline.stages[3].shadow_duraton",
        "one of the keys name, strategy, shadow_duration, auto_promote, promotion_roles",
        "the unknown key 'shadow_duraton'",
        "did you mean 'shadow_duration'?",
    ),
    "wrong type": Variant(
        "required_approvers: 2",
        "required_approvers: two",
        14, 49, "pipeline.stages[2].gates[2].clinical_review.required_approvers",
        "a whole number from 1 to 20", "'two'", "whole number",
    ),
    "out of range": Variant(
        "min_auc_roc: 0.85",
        "min_auc_roc: 1.5",
        12, 38, "pipeline.stages[2].gates[0].statistical.min_auc_roc",
        "a number from 0 to 1", "1.5 (read as a number)", "in that range",
    ),
    "bad duration": Variant(
        "shadow_duration: 14_days",
        "shadow_duration: 14 fortnights",
        15, 67, "pipeline.stages[3].shadow_duration",
        "a duration such as 14_days, 24h", "'14 fortnights': not a duration",
        "a number and a unit",
    ),
    "duration without unit": Variant(
        "shadow_duration: 14_days",
        "shadow_duration: 14",
        15, 67, "pipeline.stages[3].shadow_duration",
        "a duration such as 14_days", "14 (read as a number): a duration needs a unit",
        "add a unit: 14_days, 14h",
    ),
    "bad trigger (column inside the expression)": Variant(
        "retraining_trigger: drift_score > 0.3",
        "retraining_trigger: drift_score >> 0.3",
        17, 41, "pipeline.stages[4].retraining_trigger",
        "an expression such as drift_score > 0.3", "unexpected '>' (column 14",
        "drift_score > 0.3",
    ),
    "unsafe trigger": Variant(
        "retraining_trigger: drift_score > 0.3",
        "retraining_trigger: __import__('os').system('touch pwned')",
        17, 28, "pipeline.stages[4].retraining_trigger",
        "an expression", "'__import__' is not part of the grammar", "metric name",
    ),
    "unknown metric name in trigger": Variant(
        "retraining_trigger: drift_score > 0.3",
        "retraining_trigger: drft_score > 0.3",
        17, 28, "pipeline.stages[4].retraining_trigger",
        "an expression", "unknown metric name 'drft_score'", "did you mean drift_score?",
    ),
    "trigger with a second statement": Variant(
        "retraining_trigger: drift_score > 0.3",
        "retraining_trigger: drift_score > 0.3; import os",
        17, 45, "pipeline.stages[4].retraining_trigger",
        "an expression", "only one expression is allowed", "and, or, or the end",
    ),
    "missing stage": Variant(
        "    - {name: monitoring, drift_check_interval: 24h, accuracy_alert_threshold: 0.80,\n"
        "       retraining_trigger: drift_score > 0.3}\n",
        "",
        4, 3, "pipeline.stages",
        "all five stages", "the monitoring stage is missing",
        "add this line under stages: - {name: monitoring, drift_check_interval: 24h",
    ),
    "duplicate stage": Variant(
        "    - {name: training, tracking: mlflow, encryption: AES-256-GCM}\n",
        "    - {name: training, tracking: mlflow, encryption: AES-256-GCM}\n"
        "    - {name: training}\n",
        10, 14, "pipeline.stages[2].name",
        "each stage at most once", "stage 'training' appears more than once (first as item 2)",
        "merge the two entries",
    ),
    "unknown stage name": Variant(
        "name: training",
        "name: trainig",
        9, 14, "pipeline.stages[1].name",
        "a 'name' that is one of data_preparation, training, validation, deployment, monitoring",
        "'trainig'", "did you mean 'training'?",
    ),
    "duplicate YAML key": Variant(
        "drift_check_interval: 24h,",
        "drift_check_interval: 24h, drift_check_interval: 12h,",
        16, 53, "pipeline.stages[4].drift_check_interval",
        "each key once per mapping", "'drift_check_interval' a second time (first on line 16)",
        "remove one of the two",
    ),
    "unquoted version": Variant(
        'version: "2.3"',
        "version: 2.3",
        3, 12, "pipeline.version",
        "text", "2.3 (read as a number)", 'quote it: version: "2.3"',
    ),
    "YAML syntax error": Variant(
        "age_group]}",
        "age_group}",
        13, 77, "",
        "valid YAML", "expected ',' or ']', but got '}'", "close the list with ']'",
    ),
    "tab indentation": Variant(
        "    - {name: training",
        "\t- {name: training",
        9, 1, "",
        "valid YAML", "found character '\\t'", "indent with spaces",
    ),
    "empty roles": Variant(
        "roles: [CMIO, clinical_informaticist]",
        "roles: []",
        14, 52, "pipeline.stages[2].gates[2].clinical_review.roles",
        "a list of at least 1 item", "an empty list", "add the missing entries",
    ),
    "required_approvers 0": Variant(
        "required_approvers: 2",
        "required_approvers: 0",
        14, 49, "pipeline.stages[2].gates[2].clinical_review.required_approvers",
        "a whole number from 1 to 20", "0 (read as a number)", "in that range",
    ),
    "negative threshold": Variant(
        "accuracy_alert_threshold: 0.80",
        "accuracy_alert_threshold: -0.80",
        16, 79, "pipeline.stages[4].accuracy_alert_threshold",
        "a number from 0 to 1", "-0.80 (read as a number)", "in that range",
    ),
    "stratify_by duplicate": Variant(
        "stratify_by: [race, sex, age_group]",
        "stratify_by: [race, sex, race]",
        13, 68, "pipeline.stages[2].gates[1].fairness.stratify_by[2]",
        "each attribute at most once", "'race': attribute 'race' appears more than once",
        "remove the repeated entry",
    ),
    "unknown gate kind": Variant(
        "- fairness:",
        "- fairnes:",
        13, 11, "pipeline.stages[2].gates[1].fairnes",
        "one of the keys statistical, fairness, clinical_review, expression",
        "the unknown key 'fairnes'", "did you mean 'fairness'?",
    ),
    "gate mapping with two keys": Variant(
        "- statistical: {min_auc_roc: 0.85, min_sensitivity: 0.90, max_false_positive_rate: 0.15}",
        "- statistical: {min_auc_roc: 0.85}\n          fairness: {max_disparity: 0.1, "
        "stratify_by: [sex]}",
        12, 11, "pipeline.stages[2].gates[0]",
        "a one-key mapping", "this one has 2 keys (statistical, fairness)",
        "one list item per gate",
    ),
    "bad estimator path syntax": Variant(
        "encryption: AES-256-GCM}",
        "encryption: AES-256-GCM, model: {estimator: sklearn..Foo}}",
        9, 86, "pipeline.stages[1].model.estimator",
        "an importable dotted path", "'sklearn..Foo': an empty part ('..')",
        "package.module.ClassName",
    ),
    "estimator that is not a dotted path": Variant(
        "encryption: AES-256-GCM}",
        "encryption: AES-256-GCM, model: {estimator: \"os.system('x')\"}}",
        9, 86, "pipeline.stages[1].model.estimator",
        "an importable dotted path", "is not a Python name", "package.module.ClassName",
    ),
    "fractions not summing to 1": Variant(
        "    - name: data_preparation\n",
        "    - name: data_preparation\n"
        "      split: {fractions: {train: 0.7, validation: 0.2, test: 0.2}}\n",
        6, 15, "pipeline.stages[0].split.fractions",
        "fractions train, validation and test that add up to 1",
        "0.7 + 0.2 + 0.2 = 1.1, not 1", "train: 0.7, validation: 0.15, test: 0.15",
    ),
    "missing required key": Variant(
        "accuracy_alert_threshold: 0.80,\n       retraining",
        "retraining",
        16, 7, "pipeline.stages[4].accuracy_alert_threshold",
        "the key 'accuracy_alert_threshold'", "no such key", "add accuracy_alert_threshold: 0.8",
    ),
    "bool where text is expected": Variant(
        'description: "Verify no PHI in training features"',
        "description: yes",
        7, 42, "pipeline.stages[0].validation[0].description",
        "text", "yes (read as the boolean true)", 'quote it: description: "yes"',
    ),
    "not a boolean": Variant(
        "blocker: true}",
        "blocker: maybe}",
        7, 89, "pipeline.stages[0].validation[0].blocker",
        "true or false", "'maybe'", "write true or false",
    ),
    "unknown literal": Variant(
        "strategy: shadow_first",
        "strategy: canary",
        15, 36, "pipeline.stages[3].strategy",
        "one of shadow_first", "'canary'", "use one of shadow_first",
    ),
    "literal with did-you-mean": Variant(
        "encryption: AES-256-GCM",
        "encryption: AES-256-GMC",
        9, 54, "pipeline.stages[1].encryption",
        "one of AES-256-GCM, none", "'AES-256-GMC'", "did you mean 'AES-256-GCM'?",
    ),
    "unknown check with did-you-mean": Variant(
        "{check: data_quality,",
        "{check: data_qualty,",
        8, 19, "pipeline.stages[0].validation[1].check",
        "a 'check' that is one of phi_scan, data_quality", "'data_qualty'",
        "did you mean 'data_quality'?",
    ),
    "missing clinical review": Variant(
        "        - clinical_review: {required_approvers: 2, "
        "roles: [CMIO, clinical_informaticist]}\n",
        "",
        11, 7, "pipeline.stages[2].gates",
        "one clinical_review gate", "the validation stage has no clinical_review gate",
        "add - clinical_review:",
    ),
    "built-in role cannot sign": Variant(
        "roles: [CMIO, clinical_informaticist]",
        "roles: [CMIO, admin]",
        14, 66, "pipeline.stages[2].gates[2].clinical_review.roles[1]",
        "clinical reviewer role names", "'admin' is a built-in role", "name the clinical roles",
    ),
    "secret instead of env var name": Variant(
        "    - name: data_preparation\n",
        "    - name: data_preparation\n"
        "      source: {kind: fhir_bulk, url: 'https://fhir.example.org/r4', auth_token: abc}\n",
        6, 69, "pipeline.stages[0].source.auth_token",
        "one of the keys kind, url", "the unknown key 'auth_token'",
        "did you mean 'auth_token_env'?",
    ),
    "bad LOINC check digit": Variant(
        "    - name: data_preparation\n",
        "    - name: data_preparation\n"
        "      features: [{kind: observation, name: hr, loinc: [8867-5]}]\n",
        6, 56, "pipeline.stages[0].features[0].loinc[0]",
        "a LOINC code such as 8867-4", "the check digit is wrong (8867-4 would be valid)",
        "check the code against loinc.org",
    ),
    "ZIP prefix read as a number": Variant(
        "    - name: data_preparation\n",
        "    - name: data_preparation\n"
        "      deidentification: {zip3_restricted_extra: [036]}\n",
        6, 50, "pipeline.stages[0].deidentification.zip3_restricted_extra[0]",
        "text", "036 (read as a number)", 'quote it: zip3_restricted_extra: "036"',
    ),
    "key read as a boolean": Variant(
        "pipeline:\n",
        "pipeline:\n  on: push\n",
        2, 3, "pipeline",
        "a key that is text", "on (read as the boolean true)", "quote the key: 'on':",
    ),
    "unknown top-level key": Variant(
        "pipeline:\n",
        "pipelines:\n",
        1, 1, "pipelines",
        "one of the keys pipeline", "the unknown key 'pipelines'", "did you mean 'pipeline'?",
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_malformed_variant_is_located_and_explained(variant: Variant) -> None:
    issues = _issues(_edit(variant.old, variant.new))
    matching = [issue for issue in issues if issue.key_path == variant.key_path]
    assert matching, f"no issue at {variant.key_path!r}; got:\n" + "\n".join(map(str, issues))
    issue = matching[0]
    assert (issue.line, issue.column) == (variant.line, variant.column), str(issue)
    assert issue.file == SOURCE
    assert variant.expected in issue.expected, str(issue)
    assert variant.found in issue.found, str(issue)
    assert variant.fix in issue.fix, str(issue)
    prefix = f"{SOURCE}:{variant.line}:{variant.column}:"
    prefix += f" {variant.key_path}:" if variant.key_path else ""
    assert str(issue).startswith(f"{prefix} expected ")
    assert "; found " in str(issue) and ". Fix: " in str(issue)


def test_variant_count_meets_acceptance() -> None:
    assert len(VARIANTS) >= 20


def test_unsafe_trigger_does_not_run(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    text = _edit(
        "retraining_trigger: drift_score > 0.3",
        f"retraining_trigger: __import__('os').system('touch {target}')",
    )
    _issues(text)
    assert not target.exists()


def test_all_problems_reported_together_in_line_order() -> None:
    text = _edit("shadow_duration: 14_days", "shadow_duration: 14 fortnights")
    text = text.replace('version: "2.3"', "version: 2.3")
    text = text.replace("min_auc_roc: 0.85", "min_auc_roc: 85")
    text = text.replace("    - {name: training, tracking: mlflow, encryption: AES-256-GCM}\n", "")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_text(text, source=SOURCE)
    issues = caught.value.issues
    assert [issue.key_path for issue in issues] == [
        "pipeline.version",
        "pipeline.stages",
        "pipeline.stages[1].gates[0].statistical.min_auc_roc",
        "pipeline.stages[2].shadow_duration",
    ]
    assert [issue.line for issue in issues] == [3, 4, 11, 14]
    message = str(caught.value)
    assert message.startswith(f"{SOURCE} is not a valid pipeline file (4 problems):")
    assert caught.value.details["issues"] == [str(issue) for issue in issues]
    assert caught.value.code == "invalid_pipeline_file"


def test_missing_stages_each_get_the_line_to_add() -> None:
    text = "pipeline:\n  name: x\n  version: '1'\n  stages:\n    - name: data_preparation\n"
    issues = _issues(text)
    missing = [issue for issue in issues if issue.found.endswith("stage is missing")]
    assert [issue.fix.split(": ", 1)[1] for issue in missing] == [
        "- {name: training, tracking: mlflow, encryption: AES-256-GCM}",
        "- {name: validation, gates: [clinical_review: {required_approvers: 2, roles: [CMIO, "
        "clinical_informaticist]}]}",
        "- {name: deployment, strategy: shadow_first, shadow_duration: 14_days}",
        "- {name: monitoring, drift_check_interval: 24h, accuracy_alert_threshold: 0.80, "
        "retraining_trigger: drift_score > 0.3}",
    ]
    assert all((issue.line, issue.key_path) == (4, "pipeline.stages") for issue in missing)


def test_the_lines_to_add_are_valid() -> None:
    text = (
        "pipeline:\n  name: x\n  version: '1'\n  stages:\n"
        "    - name: data_preparation\n"
        "    - {name: training, tracking: mlflow, encryption: AES-256-GCM}\n"
        "    - {name: validation, gates: [clinical_review: {required_approvers: 2, roles: [CMIO, "
        "clinical_informaticist]}]}\n"
        "    - {name: deployment, strategy: shadow_first, shadow_duration: 14_days}\n"
        "    - {name: monitoring, drift_check_interval: 24h, accuracy_alert_threshold: 0.80, "
        "retraining_trigger: drift_score > 0.3}\n"
    )
    assert load_pipeline_text(text).spec.deployment.promotion_roles == (
        "CMIO",
        "clinical_informaticist",
    )


def test_missing_key_is_not_reported_twice_when_a_typo_explains_it() -> None:
    issues = _issues(_edit("accuracy_alert_threshold: 0.80", "accuracy_alert_treshold: 0.80"))
    assert [issue.key_path for issue in issues] == ["pipeline.stages[4].accuracy_alert_treshold"]
    assert issues[0].fix == "did you mean 'accuracy_alert_threshold'?"


@pytest.mark.parametrize(
    ("text", "expected", "found"),
    [
        ("", "a YAML mapping that starts with 'pipeline:'", "an empty file"),
        ("# only a comment\n", "a YAML mapping that starts with 'pipeline:'", "an empty file"),
        ("- a\n- b\n", "a mapping that starts with 'pipeline:'", "a list of 2 items"),
        ("pipeline:\n", "a mapping of keys and values", "nothing (null)"),
        ("pipeline: [1]\n", "a mapping of keys and values", "a list of 1 item"),
    ],
)
def test_files_without_a_pipeline(text: str, expected: str, found: str) -> None:
    (issue,) = _issues(text)
    assert expected in issue.expected
    assert found in issue.found
    assert issue.line == 1


def test_second_yaml_document_is_refused() -> None:
    (issue,) = _issues(FOUNDING + "---\npipeline: {}\n")
    assert issue.line == 18 and "single document" in issue.found and "'---'" in issue.fix


def test_alias_bomb_is_refused_before_validation() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, previous in zip("bcdef", "abcde", strict=True):
        bomb += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    (issue,) = _issues(bomb)
    assert issue.expected.startswith("at most 50,000 values")


def test_deep_nesting_is_refused_cleanly() -> None:
    issues = _issues("pipeline: " + "[" * 5000 + "]" * 5000 + "\n")
    assert len(issues) == 1


def test_stage_that_is_not_a_mapping() -> None:
    issues = _issues(
        _edit("    - {name: training, tracking: mlflow, encryption: AES-256-GCM}", "    - training")
    )
    by_path = {issue.key_path: issue for issue in issues}
    assert by_path["pipeline.stages[1]"].expected.startswith("a mapping of keys and values")
    assert by_path["pipeline.stages[1]"].line == 9
    assert by_path["pipeline.stages"].found.endswith("the training stage is missing")


def test_long_values_are_shortened() -> None:
    long_value = "x" * 500
    issues = _issues(_edit("shadow_duration: 14_days", f"shadow_duration: {long_value}"))
    assert len(issues[0].found) < 150


def test_not_utf8_bytes_are_located() -> None:
    data = FOUNDING.encode().replace(b"Verify", b"Ver\xffify")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_bytes(data, source=SOURCE)
    (issue,) = caught.value.issues
    assert (issue.line, issue.column, issue.expected) == (7, 46, "UTF-8 text")


_PIECES = [
    "pipeline:",
    "  stages:",
    "    - name: training",
    "    - {name: monitoring, retraining_trigger: auroc <}",
    "  version: 2.3",
    "  version: '1'",
    "      gates: [statistical: {}]",
    "  name: [",
    "- x",
    "  on: yes",
    "  owners: {a: 1}",
    "*alias",
    "&anchor x",
    "!!python/object:os.system x",
    "\t",
    ": :",
    "'",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=8).map("\n".join))
def test_junk_files_raise_only_pipeline_file_errors(text: str) -> None:
    try:
        load_pipeline_text(text, source=SOURCE)
    except PipelineFileError as error:
        for issue in error.issues:
            assert issue.line is None or issue.line >= 1
            assert issue.expected and issue.found and issue.fix
    except InvalidInput as error:  # pragma: no cover - would be a bug: report the type
        pytest.fail(f"unexpected {type(error).__name__}: {error}")


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


_FULL = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples/sepsis/pipeline.full.yaml")
                       .read_text(encoding="utf-8"))  # fmt: skip
_FULL_PATHS = [path for path in _paths(_FULL) if path]
_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["14_days", "drift_score > 0.3", "8867-4", "phi_scan", "training"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "kind", "check", "statistical", "x"]), inner,
                      max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_FULL_PATHS), _junk), min_size=1, max_size=3))
def test_damaged_pipelines_raise_only_pipeline_file_errors(
    edits: list[tuple[tuple[object, ...], object]],
) -> None:
    document = copy.deepcopy(_FULL)
    for path, junk in edits:
        parent: Any = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this place
    text = yaml.safe_dump(document, sort_keys=False)
    try:
        load_pipeline_text(text, source=SOURCE)
    except PipelineFileError as error:
        for issue in error.issues:
            assert issue.line is None or 1 <= issue.line <= text.count("\n") + 1
            assert issue.expected and issue.found and issue.fix
