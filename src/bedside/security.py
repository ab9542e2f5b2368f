"""Passwords, API tokens and the project's secret keys.

- Passwords are hashed with Argon2id (argon2-cffi defaults); they are never stored or logged.
- API tokens are random, shown once, and stored as SHA-256 hashes (a token has 256 bits of entropy,
  so a fast hash is enough; a slow hash would only slow every request).
- Keys live as files in the project's ``keys/`` folder, readable by the owner only: the signing key
  (HMAC seals on e-signatures) and data keys (AES-256-GCM, with key ids, for artifacts).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bedside.errors import ConfigError, InvalidInput

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "bsd_"


def check_password_policy(password: str) -> None:
    """Refuse a password that is too weak to protect an e-signature.

    Raises:
        InvalidInput: naming the rule (never echoing the password).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password is too short: it needs at least {MIN_PASSWORD_LENGTH} characters."
        )
    if password.strip() != password:
        raise InvalidInput("The password must not start or end with whitespace.")
    if len(set(password)) < 5:
        raise InvalidInput("The password needs at least 5 different characters.")


def hash_password(password: str, *, hasher: PasswordHasher = _hasher) -> str:
    """Return the Argon2id hash of ``password``."""
    return hasher.hash(password)


def verify_password(password_hash: str, password: str, *, hasher: PasswordHasher = _hasher) -> bool:
    """Return whether ``password`` matches ``password_hash`` (constant-time inside argon2).

    The parameters are read from the hash itself, so hashes made with other costs still verify.
    """
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str, str]:
    """Create an API token; return ``(token, prefix, sha256)``. Only the hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:12], hash_token(token)


def hash_token(token: str) -> str:
    """Return the stored form of an API token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


SIGNING_KEY_FILE = "signing.key"
PSEUDONYM_KEY_FILE = "pseudonym.key"
RETIRED_FOLDER = "retired"
#: Data key ids: ``k`` and a number, as in ``data-k1.key``.
DATA_KEY_ID = re.compile(r"k[1-9][0-9]{0,8}")


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The project's keys folder."""

    folder: Path

    def create(self) -> list[str]:
        """Create the keys that do not exist yet; return the names created."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, stat.S_IRWXU)
        created = []
        for name in (SIGNING_KEY_FILE, PSEUDONYM_KEY_FILE, "data-k1.key"):
            path = self.folder / name
            if not path.exists():
                _write_secret(path, secrets.token_bytes(32))
                created.append(name)
        return created

    def signing_key(self) -> bytes:
        """Return the HMAC key that seals e-signatures.

        Raises:
            ConfigError: the key is missing or malformed.
        """
        return self._read(SIGNING_KEY_FILE)

    def pseudonym_key(self) -> bytes:
        """Return the HMAC key for de-identification pseudonyms and per-patient date shifts.

        Pseudonyms keyed with it are derived from identifiers, so under HIPAA 164.514(c) the key
        must never leave the covered entity (REGULATORY §1.6). Older projects get one on demand.

        Raises:
            ConfigError: the key file is malformed.
        """
        path = self.folder / PSEUDONYM_KEY_FILE
        if not path.exists() and self.folder.is_dir():
            _write_secret(path, secrets.token_bytes(32))
        return self._read(PSEUDONYM_KEY_FILE)

    def data_key(self, key_id: str) -> bytes:
        """Return the AES-256 data key with id ``key_id``."""
        return self._read(f"data-{key_id}.key")

    def data_key_ids(self) -> list[str]:
        """Return the ids of the data keys in the folder, oldest first (``k1``, ``k2``, …)."""
        if not self.folder.is_dir():
            return []
        ids = []
        for path in self.folder.glob("data-k*.key"):
            key_id = path.name[len("data-") : -len(".key")]
            if DATA_KEY_ID.fullmatch(key_id):
                ids.append(key_id)
        return sorted(ids, key=lambda key_id: int(key_id[1:]))

    def has_data_key(self, key_id: str) -> bool:
        """Return whether a data key with id ``key_id`` is in the folder."""
        return (
            bool(DATA_KEY_ID.fullmatch(key_id)) and (self.folder / f"data-{key_id}.key").is_file()
        )

    def current_data_key_id(self) -> str:
        """Return the id of the newest data key: the one new data is encrypted with.

        Raises:
            ConfigError: the folder holds no data key.
        """
        ids = self.data_key_ids()
        if not ids:
            raise ConfigError(
                f"No data key (data-k<N>.key) in {self.folder}. Restore the keys folder from "
                "your key backup, or run 'bedside init' for a new project."
            )
        return ids[-1]

    def create_data_key(self) -> str:
        """Create the next data key (``k<N+1>``) for key rotation; return its id.

        New data is encrypted with the newest key; data encrypted with older keys stays readable
        until it is re-wrapped (``bedside.stores.crypto.rewrap``) and the old key is retired.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, stat.S_IRWXU)
        ids = self.data_key_ids()
        retired = [
            p.name[len("data-") : -len(".key")]
            for p in (self.folder / RETIRED_FOLDER).glob("data-k*.key")
        ]
        numbers = [int(i[1:]) for i in [*ids, *retired] if DATA_KEY_ID.fullmatch(i)]
        key_id = f"k{max(numbers, default=0) + 1}"
        _write_secret(self.folder / f"data-{key_id}.key", secrets.token_bytes(32))
        return key_id

    def retire_data_key(self, key_id: str) -> Path:
        """Move data key ``key_id`` out of use, into ``keys/retired/``; return its new path.

        Anything still encrypted with it can no longer be read until the file is moved back, so
        re-wrap first. The newest key cannot be retired: create a new one first. Destroying the
        retired file (crypto-shredding) is a deliberate, separate act.

        Raises:
            InvalidInput: ``key_id`` is not a data key id, or it is the newest key.
            ConfigError: there is no such key.
        """
        if not DATA_KEY_ID.fullmatch(key_id):
            raise InvalidInput(f"{key_id!r} is not a data key id; expected k1, k2, …")
        if not self.has_data_key(key_id):
            raise ConfigError(f"There is no data key {key_id!r} in {self.folder}.")
        if key_id == self.current_data_key_id():
            raise InvalidInput(
                f"Data key {key_id!r} is the newest key, used for new data; it cannot be retired. "
                "Create a new data key first, re-wrap, then retire this one."
            )
        retired = self.folder / RETIRED_FOLDER
        retired.mkdir(exist_ok=True)
        os.chmod(retired, stat.S_IRWXU)
        target = retired / f"data-{key_id}.key"
        os.replace(self.folder / f"data-{key_id}.key", target)
        return target

    def _read(self, name: str) -> bytes:
        path = self.folder / name
        try:
            data = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            raise ConfigError(
                f"Key file {path} is missing. Restore it from your key backup, or "
                "run 'bedside init' for a new project."
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"Key file {path} is not a hex-encoded key.") from None
        if len(data) != 32:
            raise ConfigError(f"Key file {path} holds {len(data)} bytes; expected 32.")
        return data


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(data.hex() + "\n")
