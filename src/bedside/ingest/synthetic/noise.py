"""Counter-based random numbers: the value at a key depends only on (seed, stream, key).

Per-observation randomness (measurement noise, timing jitter, missed rounds, unit choice, ids)
is drawn from a hash of the observation's key rather than from a sequential generator. The same
admission therefore gets the same observations no matter how many observations other admissions
have, which keeps the output byte-identical under a fixed seed and makes a drift scenario leave
everything before its start date untouched.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_POW_53 = float(2**53)


def mix64(x: U64) -> U64:
    """Return the SplitMix64 finaliser of every element (a bijection on 64-bit integers)."""
    z = np.array(x, dtype=np.uint64, copy=True, ndmin=1)
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def _key_of(seed: int, stream: int) -> np.uint64:
    z = mix64(np.array([(seed * 0x100000001B3 + stream) & _MASK64], dtype=np.uint64))
    return np.uint64(z[0])


class KeyedRandom:
    """Draw reproducible random numbers addressed by integer keys.

    Args:
        seed: the generation seed (any non-negative integer).
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def bits(self, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> U64:
        """Return 64 random bits for every key pair ``(a[i], b[i])`` of ``stream``."""
        key = _key_of(self._seed, stream)
        av = np.asarray(a).astype(np.uint64)
        bv = np.asarray(b).astype(np.uint64)
        first = mix64(av * _GOLDEN ^ key)
        return mix64(first + bv * _M2)

    def uniform(self, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
        """Return a float in the open interval (0, 1) for every key pair."""
        bits = self.bits(stream, a, b)
        return ((bits >> _S11).astype(np.float64) + 0.5) / _TWO_POW_53

    def normal(self, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
        """Return a standard-normal draw for every key pair."""
        return np.asarray(ndtri(self.uniform(stream, a, b)), dtype=np.float64)


def uuid_strings(hi: U64, lo: U64) -> list[str]:
    """Format 128 random bits per element as RFC 4122 version-4 UUID strings (vectorised)."""
    n = hi.shape[0]
    raw = np.empty((n, 16), dtype=np.uint8)
    raw[:, :8] = hi.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 8:] = lo.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = digits[raw >> 4]
    nibbles[:, 1::2] = digits[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8] = nibbles[:, 0:8]
    out[:, 9:13] = nibbles[:, 8:12]
    out[:, 14:18] = nibbles[:, 12:16]
    out[:, 19:23] = nibbles[:, 16:20]
    out[:, 24:36] = nibbles[:, 20:32]
    return out.view("S36").ravel().astype("U36").tolist()


def keyed_uuids(rand: KeyedRandom, stream: int, a: npt.ArrayLike, b: npt.ArrayLike) -> list[str]:
    """Return one UUID string per key pair, reproducible from the seed."""
    hi = rand.bits(stream, a, b)
    lo = mix64(hi ^ _GOLDEN)
    return uuid_strings(hi, lo)
