"""Layer boundaries: domain/ is pure and imports nothing from the layers around it."""

from __future__ import annotations

import ast
from pathlib import Path

import bedside

SRC = Path(bedside.__file__).parent
# The domain may use the standard library, numeric libraries, pydantic/yaml (the pipeline file's
# schema and parser) and other domain modules — never stores, services, interfaces or I/O libraries.
ALLOWED_THIRD_PARTY = {"numpy", "pandas", "pydantic", "pydantic_core", "yaml", "scipy"}
FORBIDDEN_STDLIB = {"sqlite3", "socket", "subprocess", "urllib", "http", "requests", "shutil"}
ALLOWED_BEDSIDE = ("bedside.domain", "bedside.errors")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_domain_imports_only_pure_modules() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    problems = []
    files = sorted((SRC / "domain").rglob("*.py"))
    assert files, "no domain modules found"
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "bedside":
                if not name.startswith(ALLOWED_BEDSIDE):
                    problems.append(f"{path.name}: imports {name}")
            elif top in stdlib:
                if top in FORBIDDEN_STDLIB:
                    problems.append(f"{path.name}: imports {name} (I/O)")
            elif top != "__future__" and top not in ALLOWED_THIRD_PARTY:
                problems.append(f"{path.name}: imports {name}")
    assert problems == [], "domain/ must stay pure:\n" + "\n".join(problems)


def test_only_the_cli_prints() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name in ("cli.py",):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == [], f"library code never prints: {offenders}"


def test_only_config_and_interfaces_read_the_environment() -> None:
    # tracking.py switches MLflow's telemetry off in the environment before importing mlflow.
    allowed = {"config.py", "cli.py", "cli_data.py", "tracking.py"}
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == [], f"read settings through bedside.config.Settings: {offenders}"
