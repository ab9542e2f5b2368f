"""Real server processes: SIGKILL mid-load loses no acknowledged record; workers; clean stop."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bedside.security import KeyRing
from bedside.serving.inference_log import InferenceLogReader
from bedside.serving.log_format import SegmentReader, stream_segments
from tests.serving.support import free_port, record
from tests.support import REPO

CANARY = 987654.321
PREDICT = "/v1/models/sepsis/predict"


def _start(folder: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(folder / f"server-{port}.out", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.serving.serve_main", str(folder), str(port), str(workers)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            output = (folder / f"server-{port}.out").read_text(errors="replace")[-2000:]
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server not ready in 60 s")
        time.sleep(0.1)


@contextmanager
def _load(url: str, acknowledged: list[str], workers: int = 6) -> Iterator[threading.Event]:
    """Send requests from ``workers`` threads until stopped; collect ids answered with 200."""
    stop = threading.Event()
    lock = threading.Lock()

    def run(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                seed = worker * 100_000 + i
                payload: dict[str, object]
                if i % 4 == 0:
                    payload = {"records": [record(seed, x0=CANARY), record(seed + 1)]}
                else:
                    payload = {"features": record(seed, x0=CANARY)}
                try:
                    response = client.post(PREDICT, json=payload)
                except httpx.HTTPError:
                    time.sleep(0.01)  # the server is gone (killed): keep trying until stopped
                    continue
                if response.status_code == 200:
                    body = response.json()
                    ids = [p["request_id"] for p in body.get("predictions", [body])]
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def _children(pid: int) -> list[int]:
    """Return the ids of the live child processes of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return sorted(out)


def _wait_for_count(items: list[str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count:
        assert time.monotonic() < deadline, f"only {len(items)} answers in {timeout} s"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_mid_load_loses_no_acknowledged_record_and_duplicates_none(
    tmp_path: Path,
) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.create()
    log_folder = tmp_path / "inference-log"
    acknowledged: list[str] = []
    port = free_port()
    server = _start(tmp_path, port)
    with _load(f"http://127.0.0.1:{port}", acknowledged):
        _wait_for_count(acknowledged, 400)
        os.killpg(server.pid, signal.SIGKILL)  # mid-load, no chance to flush anything
        server.wait(30)
    before_restart = len(acknowledged)

    # As if the kill had landed in the middle of a write: a torn frame after the last good one.
    newest = stream_segments(log_folder, "w0")[-1][1]
    reader = SegmentReader(newest, key_ring=keys)
    reader.read_new(tail_may_tear=True)
    with open(newest, "r+b") as fh:
        fh.seek(reader.offset)
        fh.write(struct.pack(">II", 400, 0xDEADBEEF) + b"\xab" * 150)
    assert len(list(InferenceLogReader(log_folder, key_ring=keys).entries())) > 0  # readable

    port = free_port()
    server = _start(tmp_path, port)  # the same log folder: recovery runs
    with _load(f"http://127.0.0.1:{port}", acknowledged, workers=2):
        _wait_for_count(acknowledged, before_restart + 20)
    os.killpg(server.pid, signal.SIGTERM)
    # uvicorn stops gracefully, then re-raises the signal it caught: -SIGTERM is a clean stop.
    assert server.wait(60) in (0, -signal.SIGTERM)

    entries = list(InferenceLogReader(log_folder, key_ring=keys).entries())
    predictions = [e["request_id"] for e in entries if e["kind"] == "prediction"]
    assert len(predictions) == len(set(predictions)), "a prediction record is duplicated"
    missing = set(acknowledged) - set(predictions)
    assert not missing, f"{len(missing)} acknowledged predictions have no record"
    assert len(acknowledged) == len(set(acknowledged))
    # The torn frame was cut on restart; the restarted server wrote a new segment.
    cut = SegmentReader(newest, key_ring=keys)
    cut.read_new(tail_may_tear=False)
    assert cut.torn == 0 and newest.stat().st_size == cut.offset
    assert len(stream_segments(log_folder, "w0")) == 2
    # Inputs and request ids are not readable in the files.
    raw = b"".join(p.read_bytes() for p in log_folder.rglob("*") if p.is_file())
    assert repr(CANARY).encode() not in raw
    assert not any(rid.encode() in raw for rid in acknowledged[:200])


@pytest.mark.slow
def test_two_worker_processes_share_the_port_and_the_log(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.create()
    port = free_port()
    server = _start(tmp_path, port, workers=2)
    acknowledged: list[str] = []
    more: list[str] = []
    try:
        with _load(f"http://127.0.0.1:{port}", acknowledged, workers=8):
            _wait_for_count(acknowledged, 200)
        # Outcomes for every id, whichever worker answered it and whichever one gets these.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for start in range(0, len(acknowledged), 100):
                chunk = acknowledged[start : start + 100]
                response = client.post(
                    "/v1/models/sepsis/outcomes",
                    json={"outcomes": [{"request_id": rid, "label": 1} for rid in chunk]},
                )
                assert response.status_code == 200, response.text
        # A worker that dies is replaced; the replacement recovers the dead worker's stream.
        workers = _children(server.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(now := _children(server.pid)) != 2 or workers[0] in now:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        with _load(f"http://127.0.0.1:{port}", more, workers=8):
            _wait_for_count(more, 100)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(60)
    assert code in (0, -signal.SIGTERM)
    log_folder = tmp_path / "inference-log"
    assert {path.name for path in log_folder.iterdir() if path.is_dir()} == {"w0", "w1"}
    segments = [len(stream_segments(log_folder, s)) for s in ("w0", "w1")]
    assert sorted(segments) == [1, 2]  # the replacement started a new segment
    records = InferenceLogReader(log_folder, key_ring=keys).records()
    by_id = {r.request_id: r for r in records}
    assert set(acknowledged) <= set(by_id)
    assert all(by_id[rid].outcome is not None for rid in acknowledged)
    assert set(more) <= set(by_id)
