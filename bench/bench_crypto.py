"""Encryption at rest: AES-256-GCM envelope throughput, re-wrap cost, dataset snapshot speed.

    python bench/bench_crypto.py [--mib 256] [--rows 500000]

Prints MB/s (1 MB = 10^6 bytes) for encrypt/decrypt of bytes in memory and of files (streamed,
4 MiB segments), the raw AES-GCM rate of the same machine for comparison, the time to re-wrap a
blob under a new key (header only), and the content digest / write / read rates of a dataset
snapshot.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bedside.security import KeyRing
from bedside.stores.crypto import (
    DEFAULT_SEGMENT_SIZE,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    rewrap,
    rewrap_file,
)
from bedside.stores.snapshots import dataset_digest, read_snapshot, write_snapshot


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:8.0f} MB/s"


def bench_crypto(keys: KeyRing, folder: Path, mib: int) -> None:
    data = np.random.default_rng(0).integers(0, 256, mib * 1024 * 1024, dtype=np.uint8).tobytes()
    n = len(data)
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    segment = memoryview(data)[:DEFAULT_SEGMENT_SIZE]
    raw = _best(lambda: [aead.encrypt(nonce, segment, b"") for _ in range(n // len(segment))])
    print(f"raw AES-256-GCM, one 4 MiB buffer repeated   {_rate(n, raw)}")

    blob = encrypt_bytes(data, key_ring=keys, key_id="k1", context="bench")
    enc = _best(lambda: encrypt_bytes(data, key_ring=keys, key_id="k1", context="bench"))
    dec = _best(lambda: decrypt_bytes(blob, key_ring=keys, context="bench"))
    print(f"encrypt_bytes  {mib:5d} MiB in memory          {_rate(n, enc)}  ({enc:.3f} s)")
    print(f"decrypt_bytes  {mib:5d} MiB in memory          {_rate(n, dec)}  ({dec:.3f} s)")

    plain, sealed, out = folder / "plain.bin", folder / "sealed.enc", folder / "out.bin"
    plain.write_bytes(data)
    fenc = _best(
        lambda: encrypt_file(plain, sealed, key_ring=keys, key_id="k1", context="bench"), 2
    )
    fdec = _best(lambda: decrypt_file(sealed, out, key_ring=keys, context="bench"), 2)
    print(f"encrypt_file   {mib:5d} MiB, streamed + fsync  {_rate(n, fenc)}  ({fenc:.3f} s)")
    print(f"decrypt_file   {mib:5d} MiB, streamed + fsync  {_rate(n, fdec)}  ({fdec:.3f} s)")
    assert out.read_bytes() == data

    keys.create_data_key()
    wrap = _best(lambda: rewrap(blob[:4096], "k2", key_ring=keys), 50)
    print(f"rewrap (header only, any size)                {wrap * 1e6:8.0f} µs per blob")
    fwrap = _best(lambda: rewrap_file(sealed, "k2", key_ring=keys), 2)
    print(f"rewrap_file    {mib:5d} MiB (header + copy)     {fwrap:8.3f} s")
    small = b"x" * 512
    per_record = _best(
        lambda: [encrypt_bytes(small, key_ring=keys, key_id="k1", context="r") for _ in range(2000)]
    )
    print(f"encrypt_bytes  512-byte records              {2000 / per_record:8.0f} records/s")


def bench_snapshot(keys: KeyRing, folder: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "encounter_id": [f"enc-{i:08d}" for i in range(rows)],
            "patient_id": [f"pt-{i // 3:08d}" for i in range(rows)],
            "prediction_time": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**6, rows), "min"),
            **{f"feature_{j:02d}": rng.normal(0, 1, rows) for j in range(16)},
            "sex": pd.Categorical(rng.choice(["female", "male"], rows)),
            "sepsis": rng.random(rows) < 0.07,
            "split": rng.choice(["train", "validation", "test"], rows),
        }
    )
    frame["split"] = frame.groupby("patient_id")["split"].transform("first")
    mem = int(frame.memory_usage(deep=True).sum())
    digest_s = _best(lambda: dataset_digest(frame), 2)
    print(
        f"dataset_digest {rows:,} rows × {frame.shape[1]} cols ({mem / 1e6:.0f} MB in pandas): "
        f"{digest_s:.2f} s = {rows / digest_s:,.0f} rows/s"
    )
    t0 = time.perf_counter()
    manifest = write_snapshot(
        frame,
        root=folder / "artifacts",
        key_ring=keys,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        label_col="sepsis",
    )
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    back, _ = read_snapshot(folder / "artifacts" / "datasets" / manifest.digest, keys)
    read_s = time.perf_counter() - t0
    assert len(back) == rows
    size = (folder / "artifacts" / "datasets" / manifest.digest / "data.parquet.enc").stat().st_size
    print(
        f"write_snapshot (digest, Parquet zstd, round-trip check, encrypt): {write_s:.2f} s; "
        f"read_snapshot (decrypt, verify digest, to pandas): {read_s:.2f} s; "
        f"{size / 1e6:.0f} MB on disk"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keys = KeyRing(folder / "keys")
        keys.create()
        bench_crypto(keys, folder, args.mib)
        bench_snapshot(keys, folder, args.rows)


if __name__ == "__main__":
    main()
