"""Settings: every BEDSIDE_* variable, declared once, validated at start.

Settings come from (highest first): the process environment, then the project's ``bedside.toml``,
then the defaults below. Only entry points (the CLI, the server) call :meth:`Settings.load`;
everything else receives values as arguments. No other module reads ``os.environ``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedside.errors import ConfigError

CONFIG_FILE = "bedside.toml"
DEFAULT_DB_NAME = "bedside.db"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting: its name, environment variable, kind and help text."""

    name: str
    kind: str  # "str" | "path" | "bool" | "int" | "level" | "url"
    help: str

    @property
    def env(self) -> str:
        return "BEDSIDE_" + self.name.upper()


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "home",
        "path",
        "The project folder (holds bedside.toml, the database, keys, artifacts). "
        "Default: the current directory.",
    ),
    SettingSpec(
        "database_url",
        "str",
        "Governance database URL. Default: sqlite:///<home>/bedside.db "
        "(WAL mode). Production: postgresql+psycopg://user@host/db.",
    ),
    SettingSpec("artifacts_url", "str", "Where artifacts are kept. Default: <home>/artifacts."),
    SettingSpec(
        "mlflow_tracking_uri",
        "str",
        "MLflow tracking URI. Default: a SQLite store in <home>/mlflow/mlflow.db.",
    ),
    SettingSpec(
        "keys_dir",
        "path",
        "Folder of the project's secret keys (signing key, data keys). "
        "Default: <home>/keys. Keep it out of backups that leave the hospital.",
    ),
    SettingSpec(
        "log_level",
        "level",
        "Logging level: DEBUG, INFO, WARNING or ERROR. Default: WARNING for the CLI.",
    ),
    SettingSpec("log_json", "bool", "Write logs as JSON lines (for log shippers). Default: false."),
    SettingSpec(
        "lockout_threshold",
        "int",
        "Failed password attempts before an account is locked (21 CFR 11.300(d)). Default: 5.",
    ),
    SettingSpec(
        "alert_webhook_url",
        "url",
        "Where monitoring alerts are POSTed as JSON (http or https; no patient data is sent). "
        "Default: none (alerts are recorded in the ledger and logged only).",
    ),
)

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _mask_url(url: str) -> str:
    """Mask a password inside a URL (``scheme://user:secret@host``)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated settings of one bedside project."""

    home: Path
    database_url: str
    artifacts_url: str
    mlflow_tracking_uri: str
    keys_dir: Path
    log_level: str = "WARNING"
    log_json: bool = False
    lockout_threshold: int = 5
    alert_webhook_url: str | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return (
            f"Settings(home={str(self.home)!r}, database_url={_mask_url(self.database_url)!r}, "
            f"artifacts_url={self.artifacts_url!r}, "
            f"mlflow_tracking_uri={_mask_url(self.mlflow_tracking_uri)!r})"
        )

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        home: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from ``env`` (usually ``os.environ``), the project file and defaults.

        Args:
            env: the environment to read ``BEDSIDE_*`` variables from.
            home: the project folder; overrides ``BEDSIDE_HOME``.
            overrides: values given on the command line; highest precedence.

        Raises:
            ConfigError: a value has the wrong type, or the project file is unreadable.
        """
        raw: dict[str, Any] = {}
        sources: dict[str, str] = {}
        home_value = home or (Path(env["BEDSIDE_HOME"]) if env.get("BEDSIDE_HOME") else Path.cwd())
        home_path = Path(home_value).expanduser().resolve()
        config_file = home_path / CONFIG_FILE
        if config_file.exists():
            try:
                data = tomllib.loads(config_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(
                    f"Cannot read {config_file}: {exc}. Fix the file or run 'bedside init' again."
                ) from exc
            section = data.get("bedside", data)
            known = {s.name for s in SETTINGS}
            for key, value in section.items():
                if key not in known:
                    raise ConfigError(
                        f"{config_file}: unknown setting {key!r}. Known settings: "
                        f"{', '.join(sorted(known))}."
                    )
                raw[key] = value
                sources[key] = str(config_file)
        for spec in SETTINGS:
            if spec.env in env and env[spec.env] != "":
                raw[spec.name] = env[spec.env]
                sources[spec.name] = spec.env
        for key, value in (overrides or {}).items():
            if value is not None:
                raw[key] = value
                sources[key] = "command line"
        raw["home"] = home_path
        values = {
            spec.name: _cast(spec, raw[spec.name], sources.get(spec.name, "default"))
            for spec in SETTINGS
            if spec.name in raw
        }
        home_path = values["home"]
        keys_dir = values.get("keys_dir") or home_path / "keys"
        if not Path(keys_dir).is_absolute():
            keys_dir = home_path / keys_dir
        return cls(
            home=home_path,
            database_url=values.get("database_url") or f"sqlite:///{home_path / DEFAULT_DB_NAME}",
            artifacts_url=values.get("artifacts_url") or str(home_path / "artifacts"),
            mlflow_tracking_uri=values.get("mlflow_tracking_uri")
            or f"sqlite:///{home_path / 'mlflow' / 'mlflow.db'}",
            keys_dir=Path(keys_dir),
            log_level=values.get("log_level", "WARNING"),
            log_json=values.get("log_json", False),
            lockout_threshold=values.get("lockout_threshold", 5),
            alert_webhook_url=values.get("alert_webhook_url"),
            sources=sources,
        )


def _cast(spec: SettingSpec, value: Any, source: str) -> Any:
    where = f"{spec.env} (from {source})"
    if spec.kind == "path":
        return Path(str(value)).expanduser()
    if spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} has value {value!r}. Expected a non-empty string.")
        return value.strip()
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} has value {value!r}. Not a valid bool (use true or false).")
    if spec.kind == "int":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} has value {value!r}. Not a valid int.") from None
        if number < 1:
            raise ConfigError(f"{where} has value {value!r}. Expected a whole number ≥ 1.")
        return number
    if spec.kind == "url":
        text = str(value).strip() if isinstance(value, str) else ""
        scheme, _, rest = text.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or any(c.isspace() for c in text):
            raise ConfigError(
                f"{where} has value {_mask_url(text) if text else value!r}. Expected an http:// "
                "or https:// URL, such as https://alerts.hospital.internal/bedside."
            )
        return text
    if spec.kind == "level":
        text = str(value).strip().upper()
        if text not in _LEVELS:
            raise ConfigError(f"{where} has value {value!r}. Expected one of {', '.join(_LEVELS)}.")
        return text
    raise AssertionError(spec.kind)  # pragma: no cover - SETTINGS is static


def setting_names() -> list[str]:
    """Return the names of every setting (for docs and their test)."""
    return [s.name for s in SETTINGS]
