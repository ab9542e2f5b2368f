"""Canonical encoding: the exact bytes that hashes and signatures are computed over."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Encode ``value`` as canonical JSON: sorted keys, no spaces, UTF-8, no NaN.

    Raises:
        ValueError: the value holds something JSON cannot represent exactly (NaN, a set, an object).
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(value: Any) -> str:
    """Return the SHA-256 (hex) of the canonical encoding of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def hmac_sha256_hex(key: bytes, value: Any) -> str:
    """Return HMAC-SHA256 (hex) of the canonical encoding of ``value`` under ``key``."""
    return hmac.new(key, canonical_json(value).encode("utf-8"), hashlib.sha256).hexdigest()
