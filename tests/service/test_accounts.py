"""Users, roles, permissions, authentication and API tokens, on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bedside.domain.permissions import KIND_PERMISSIONS, Permission, RoleKind, is_allowed
from bedside.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from bedside.service import Platform
from tests.support import PASSWORD, Team


def test_every_permission_is_denied_unless_granted() -> None:
    assert not is_allowed([], Permission.READ_METRICS)
    assert not is_allowed(["no_such_kind"], Permission.READ_METRICS)
    granted = set().union(*KIND_PERMISSIONS.values())
    assert granted == set(Permission), "a permission no role can ever use"


def test_data_scientists_see_metrics_not_patient_rows() -> None:
    assert is_allowed(["data_scientist"], Permission.READ_METRICS)
    assert not is_allowed(["data_scientist"], Permission.READ_PATIENT_ROWS)


def test_admins_manage_people_but_cannot_sign_or_deploy() -> None:
    admin = KIND_PERMISSIONS[RoleKind.ADMIN]
    assert Permission.MANAGE_USERS in admin
    assert not admin & {
        Permission.SIGN_REVIEW,
        Permission.SIGN_RESPONSIBILITY,
        Permission.DEPLOY,
        Permission.PROMOTE,
        Permission.READ_PATIENT_ROWS,
    }


def test_user_changes_are_ledger_events(platform: Platform, team: Team) -> None:
    platform.grant_role(team.admin, "dana", "ml_engineer")
    platform.revoke_role(team.admin, "dana", "ml_engineer")
    platform.set_user_active(team.admin, "dana", active=False, reason="left the hospital")
    events = platform.list_audit_events(team.auditor, subject_id="dana")
    assert [e.action for e in events] == [
        "user.created",
        "role.granted",
        "role.granted",
        "role.revoked",
        "user.disabled",
    ]
    assert events[-1].reason == "left the hospital"
    assert events[2].after == {"roles": ["data_scientist", "ml_engineer"]}


def test_a_disabled_user_cannot_log_in_or_act(platform: Platform, team: Team) -> None:
    platform.set_user_active(team.admin, "eli", active=False)
    with pytest.raises(AuthenticationFailed):
        platform.authenticate("eli", PASSWORD)
    with pytest.raises(PermissionDenied, match="disabled"):
        platform.register_version(team.engineer, "sepsis-prediction")


def test_user_names_are_never_reused(platform: Platform, team: Team) -> None:
    platform.set_user_active(team.admin, "dana", active=False)
    with pytest.raises(AlreadyExists, match="never reused"):
        platform.add_user(team.admin, "dana", full_name="Another Dana", password=PASSWORD)


def test_only_admins_manage_users_and_refusals_are_recorded(platform: Platform, team: Team) -> None:
    with pytest.raises(PermissionDenied, match="may not users.manage"):
        platform.add_user(
            team.engineer, "mallory", full_name="M", password=PASSWORD, roles=["admin"]
        )
    denied = platform.list_audit_events(team.auditor, action_prefix="denied.")
    assert (denied[-1].actor, denied[-1].action) == ("eli", "denied.users.manage")


def test_weak_passwords_are_refused_without_echoing_them(platform: Platform, team: Team) -> None:
    with pytest.raises(InvalidInput, match="at least 12 characters") as info:
        platform.add_user(team.admin, "newbie", full_name="New Bie", password="hunter2")
    assert "hunter2" not in str(info.value)


def test_unknown_role_suggests_the_closest(platform: Platform, team: Team) -> None:
    with pytest.raises(NotFound, match="Did you mean 'CMIO'"):
        platform.grant_role(team.admin, "ivan", "CMOI")


def test_repeated_wrong_passwords_lock_the_account(platform: Platform, team: Team) -> None:
    for _ in range(platform.lockout_threshold):
        with pytest.raises(AuthenticationFailed):
            platform.authenticate("carol", "wrong password here")
    with pytest.raises(AuthenticationFailed):
        platform.authenticate("carol", PASSWORD)  # right password, but locked now
    events = platform.list_audit_events(team.auditor, subject_id="carol")
    assert [e.action for e in events].count("auth.failed") == platform.lockout_threshold + 1
    assert "user.locked" in [e.action for e in events]
    platform.set_user_active(team.admin, "carol", active=True, reason="identity verified")
    assert platform.authenticate("carol", PASSWORD).username == "carol"


def test_failure_message_does_not_reveal_whether_the_user_exists(
    platform: Platform, team: Team
) -> None:
    with pytest.raises(AuthenticationFailed) as unknown:
        platform.authenticate("nobody", "some password x")
    with pytest.raises(AuthenticationFailed) as wrong:
        platform.authenticate("carol", "some password x")
    assert str(unknown.value).replace("nobody", "X") == str(wrong.value).replace("carol", "X")


def test_api_tokens_are_stored_hashed_and_can_be_revoked(platform: Platform, team: Team) -> None:
    token, _record = platform.create_token(team.engineer, name="ci")
    assert platform.authenticate_token(token).username == "eli"
    with platform.database.read() as conn:
        stored = conn.execute(text("SELECT token_hash, prefix FROM api_tokens")).one()
    assert token not in stored.token_hash and len(stored.token_hash) == 64
    assert token.startswith(stored.prefix)
    platform.revoke_token(team.engineer, token)
    with pytest.raises(AuthenticationFailed, match="unknown or revoked"):
        platform.authenticate_token(token)
    with pytest.raises(AuthenticationFailed):
        platform.authenticate_token("bsd_made-up-token")


def test_passwords_are_stored_as_argon2id(platform: Platform, team: Team) -> None:
    with platform.database.read() as conn:
        hashes = [r.password_hash for r in conn.execute(text("SELECT password_hash FROM users"))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)


def test_initialising_twice_is_refused(platform: Platform, team: Team) -> None:
    with pytest.raises(AlreadyExists, match="already has users"):
        platform.initialise(admin_username="admin2", admin_full_name="A", admin_password=PASSWORD)
