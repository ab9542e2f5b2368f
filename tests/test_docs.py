"""Docs stay honest: every setting and every error code is documented."""

from __future__ import annotations

import pytest

from bedside.config import SETTINGS
from bedside.errors import ALL_ERRORS, BedsideError
from tests.support import REPO


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(setting) -> None:  # type: ignore[no-untyped-def]
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert f"`{setting.env}`" in text, f"document {setting.env} in docs/configuration.md"


def test_every_error_class_is_listed_with_a_unique_code() -> None:
    import bedside.errors as module

    classes = {
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BedsideError)
    }
    assert classes == set(ALL_ERRORS), "add new error classes to ALL_ERRORS"
    codes = [cls.code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    for cls in ALL_ERRORS:
        assert f"`{cls.code}` | `{cls.__name__}` | {cls.http_status}" in text, cls


def test_user_errors_are_4xx_and_subclass_the_builtin_callers_expect() -> None:
    from bedside import errors

    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict, errors.PermissionDenied):
        assert 400 <= cls.http_status < 500
