"""Benchmark the synthetic hospital: admissions/s, resources/s and MB written.

Times ``generate_hospital`` for each requested size (default 5,000 and 50,000 admissions over one
year, seed 0) into a temporary folder, prints the figures and peak memory of the process, then
deletes the output. The output of 50,000 admissions is a few GB; pass ``--keep DIR`` to keep it.

Run: ``.venv/bin/python bench/bench_synthetic.py [--admissions 5000 50000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bedside.ingest.synthetic import generate_hospital

START, END = date(2024, 1, 1), date(2025, 1, 1)


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Generate each size, print admissions/s, resources/s, MB written and peak memory."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--admissions", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the output under DIR")
    args = parser.parse_args()
    print(f"synthetic hospital, {START} .. {END}, seed {args.seed}")
    print(
        f"{'admissions':>10} {'seconds':>8} {'adm/s':>8} {'resources':>11} {'res/s':>10} "
        f"{'obs':>11} {'MB':>8} {'MB/s':>7} {'peak RSS MB':>12} {'sepsis %':>8}"
    )
    for n in args.admissions:
        root = Path(tempfile.mkdtemp(prefix="bench-synthetic-"))
        out = (args.keep / f"hospital-{n}") if args.keep else root / "export"
        try:
            began = time.perf_counter()
            summary = generate_hospital(out, admissions=n, start=START, end=END, seed=args.seed)
            seconds = time.perf_counter() - began
            mb = summary.bytes_written / 1e6
            print(
                f"{n:>10,} {seconds:>8.1f} {n / seconds:>8,.0f} {summary.resources:>11,} "
                f"{summary.resources / seconds:>10,.0f} {summary.counts['Observation']:>11,} "
                f"{mb:>8,.0f} {mb / seconds:>7.0f} {_peak_rss_mb():>12,.0f} "
                f"{100 * summary.sepsis_prevalence:>8.2f}",
                flush=True,
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
