"""Users, roles, role grants and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import IntegrityError as DbIntegrityError

from bedside.domain.models import ApiToken, Role, User
from bedside.errors import AlreadyExists, NotFound
from bedside.stores.tables import (
    api_tokens,
    roles,
    to_role,
    to_token,
    to_user,
    user_roles,
    users,
)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has a primary key
    return int(key[0])


class Accounts:
    """People and what they may do, bound to one open connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- roles ---------------------------------------------------------------------------------

    def add_role(self, name: str, *, kind: str, description: str, now: datetime) -> Role:
        if self.find_role(name) is not None:
            raise AlreadyExists(f"Role {name!r} already exists.")
        self._conn.execute(
            insert(roles).values(name=name, kind=kind, description=description, created_at=now)
        )
        return Role(name=name, kind=kind, description=description)

    def find_role(self, name: str) -> Role | None:
        row = self._conn.execute(select(roles).where(roles.c.name == name)).mappings().first()
        return None if row is None else to_role(row)

    def list_roles(self) -> list[Role]:
        rows = self._conn.execute(select(roles).order_by(roles.c.name)).mappings()
        return [to_role(r) for r in rows]

    # -- users ---------------------------------------------------------------------------------

    def _role_names(self, user_id: int) -> frozenset[str]:
        rows = self._conn.execute(
            select(user_roles.c.role_name).where(user_roles.c.user_id == user_id)
        )
        return frozenset(r.role_name for r in rows)

    def add_user(self, username: str, *, full_name: str, password_hash: str, now: datetime) -> User:
        try:
            with self._conn.begin_nested():
                result = self._conn.execute(
                    insert(users).values(
                        username=username,
                        full_name=full_name,
                        password_hash=password_hash,
                        is_active=True,
                        is_locked=False,
                        failed_logins=0,
                        created_at=now,
                        password_changed_at=now,
                    )
                )
        except DbIntegrityError:
            raise AlreadyExists(
                f"User {username!r} already exists. User names are never reused (21 CFR 11.100(a))."
            ) from None
        user_id = _new_id(result)
        return User(
            id=user_id,
            username=username,
            full_name=full_name,
            roles=frozenset(),
            is_active=True,
            created_at=now,
        )

    def find_user(self, username: str) -> User | None:
        row = (
            self._conn.execute(select(users).where(users.c.username == username)).mappings().first()
        )
        return None if row is None else to_user(row, self._role_names(row["id"]))

    def get_user(self, username: str) -> User:
        user = self.find_user(username)
        if user is None:
            raise NotFound(f"No user named {username!r}. List users with: bedside user list")
        return user

    def list_users(self) -> list[User]:
        rows = self._conn.execute(select(users).order_by(users.c.username)).mappings().all()
        return [to_user(r, self._role_names(r["id"])) for r in rows]

    def password_hash(self, username: str) -> str | None:
        return self._conn.execute(
            select(users.c.password_hash).where(users.c.username == username)
        ).scalar_one_or_none()

    def update_user(self, username: str, **values: object) -> None:
        self._conn.execute(update(users).where(users.c.username == username).values(**values))

    def grant(self, user: User, role: str, *, by: str, now: datetime) -> None:
        self._conn.execute(
            insert(user_roles).values(
                user_id=user.id, role_name=role, granted_at=now, granted_by=by
            )
        )

    def revoke(self, user: User, role: str) -> None:
        self._conn.execute(
            delete(user_roles).where(
                user_roles.c.user_id == user.id, user_roles.c.role_name == role
            )
        )

    # -- tokens --------------------------------------------------------------------------------

    def add_token(
        self, user: User, *, name: str, prefix: str, token_hash: str, now: datetime
    ) -> ApiToken:
        result = self._conn.execute(
            insert(api_tokens).values(
                user_id=user.id, name=name, prefix=prefix, token_hash=token_hash, created_at=now
            )
        )
        return ApiToken(
            id=_new_id(result),
            username=user.username,
            name=name,
            prefix=prefix,
            created_at=now,
        )

    def find_token_owner(self, token_hash: str) -> tuple[ApiToken, User] | None:
        row = (
            self._conn.execute(
                select(api_tokens, users.c.username)
                .join(users, users.c.id == api_tokens.c.user_id)
                .where(api_tokens.c.token_hash == token_hash)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return to_token(row, row["username"]), self.get_user(row["username"])

    def list_tokens(self, user: User) -> list[ApiToken]:
        rows = self._conn.execute(
            select(api_tokens).where(api_tokens.c.user_id == user.id).order_by(api_tokens.c.id)
        ).mappings()
        return [to_token(r, user.username) for r in rows]

    def revoke_token(self, token_id: int, *, now: datetime) -> None:
        self._conn.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now)
        )
