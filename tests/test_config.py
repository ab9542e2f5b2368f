"""Settings: environment over project file over defaults; bad values fail at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedside.config import Settings
from bedside.errors import ConfigError


def test_defaults_live_in_the_project_folder(tmp_path: Path) -> None:
    s = Settings.load({}, home=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'bedside.db'}"
    assert s.keys_dir == tmp_path.resolve() / "keys"
    assert s.mlflow_tracking_uri.startswith("sqlite:///") and s.lockout_threshold == 5


def test_environment_overrides_the_project_file(tmp_path: Path) -> None:
    (tmp_path / "bedside.toml").write_text('[bedside]\nlog_level = "INFO"\nlockout_threshold = 3\n')
    s = Settings.load({"BEDSIDE_LOG_LEVEL": "debug"}, home=tmp_path)
    assert s.log_level == "DEBUG" and s.lockout_threshold == 3
    assert s.sources["log_level"] == "BEDSIDE_LOG_LEVEL"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"BEDSIDE_LOCKOUT_THRESHOLD": "five"}, "BEDSIDE_LOCKOUT_THRESHOLD .* Not a valid int"),
        ({"BEDSIDE_LOG_JSON": "maybe"}, "Not a valid bool"),
        ({"BEDSIDE_LOG_LEVEL": "LOUD"}, "Expected one of DEBUG"),
        ({"BEDSIDE_ALERT_WEBHOOK_URL": "hooks.local/x"}, "ALERT_WEBHOOK_URL .* Expected an http"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env, home=tmp_path)


def test_unknown_key_in_project_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bedside.toml").write_text("[bedside]\ndatabse_url = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'databse_url'"):
        Settings.load({}, home=tmp_path)


def test_broken_project_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bedside.toml").write_text("[bedside\n")
    with pytest.raises(ConfigError, match="Cannot read"):
        Settings.load({}, home=tmp_path)


def test_passwords_in_urls_are_masked(tmp_path: Path) -> None:
    s = Settings.load({"BEDSIDE_DATABASE_URL": "postgresql+psycopg://u:s3cret@db/x"}, home=tmp_path)
    assert "s3cret" not in repr(s) and "u:***@db" in repr(s)


def test_alert_webhook_url_is_optional_and_read_from_the_environment(tmp_path: Path) -> None:
    assert Settings.load({}, home=tmp_path).alert_webhook_url is None
    s = Settings.load({"BEDSIDE_ALERT_WEBHOOK_URL": "https://hooks.local/b"}, home=tmp_path)
    assert s.alert_webhook_url == "https://hooks.local/b"
