"""Record where a Python process tries to reach, with an audit hook (PEP 578).

:class:`EgressRecorder` installs one ``sys.addaudithook`` per process (audit hooks cannot be
removed, so the hook is gated by a flag and records only inside :meth:`EgressRecorder.recording`)
and collects every network destination — ``socket.connect``, ``socket.getaddrinfo``,
``socket.gethostbyname``/``gethostbyaddr``, ``socket.sendto``/``sendmsg``,
``http.client.connect``, ``urllib.Request`` — and every program started (``subprocess.Popen``,
``os.system``, ``os.exec``, ``os.posix_spawn``): a child process is out of the hook's sight, so
the tests also say which programs may run at all.

A destination is local when its host is loopback (``127.0.0.0/8``, ``::1``, ``localhost``), a
Unix socket path, or absent (a passive ``getaddrinfo(None, …)``); anything else is egress unless
the caller allows that host (a tracking server the project configured).

Run as a program (``python -m tests.egress MODE WORKDIR``), it performs a tracking session in a
fresh process and prints what it recorded as JSON; ``tests/test_no_egress.py`` runs it with a
scrubbed environment (no telemetry switches, no CI or pytest variables), which is the only way
to see what MLflow would do on a hospital server.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.sendmsg",
        "http.client.connect",
        "urllib.Request",
    }
)
PROGRAM_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"})
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class Destination:
    """One attempt to reach a host: the audit event, the host (None: no host) and the port."""

    event: str
    host: str | None
    port: int | None

    def is_local(self, allowed_hosts: frozenset[str] = frozenset()) -> bool:
        """Return whether this destination stays on the machine (or is an allowed host)."""
        if self.host is None or self.host.startswith("/") or self.host.startswith("\0"):
            return True  # no host, or a Unix socket path (abstract ones start with NUL)
        host = self.host.strip("[]").lower()
        if host in LOCAL_NAMES or host in allowed_hosts:
            return True
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback


def _host_port(address: Any) -> tuple[str | None, int | None]:
    if isinstance(address, tuple) and address:
        host = address[0]
        port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
        if isinstance(host, bytes):
            host = host.decode("idna", "replace")
        return (None if host is None else str(host)), port
    if isinstance(address, str | bytes):
        text = address.decode("utf-8", "replace") if isinstance(address, bytes) else address
        return text if text.startswith(("/", "\0")) else "/" + text, None  # a Unix socket path
    return repr(address), None


class EgressRecorder:
    """Records network destinations and started programs while :meth:`recording` is active."""

    _instance: EgressRecorder | None = None

    def __init__(self) -> None:
        self._active = False
        self._lock = threading.Lock()
        self.destinations: list[Destination] = []
        self.programs: list[str] = []

    @classmethod
    def install(cls) -> EgressRecorder:
        """Return the process's recorder, installing its audit hook on first call."""
        if cls._instance is None:
            cls._instance = cls()
            sys.addaudithook(cls._instance._hook)
        return cls._instance

    @contextmanager
    def recording(self) -> Iterator[EgressRecorder]:
        """Record (from every thread) until the block ends; earlier records are cleared."""
        with self._lock:
            self.destinations.clear()
            self.programs.clear()
            self._active = True
        try:
            yield self
        finally:
            self._active = False

    def non_local(self, allowed_hosts: frozenset[str] = frozenset()) -> list[Destination]:
        """Return the recorded destinations that leave the machine."""
        with self._lock:
            return [d for d in self.destinations if not d.is_local(allowed_hosts)]

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._active:
            return
        try:
            if event in NETWORK_EVENTS:
                self._record_destination(event, args)
            elif event in PROGRAM_EVENTS:
                program = args[0] if args else "?"
                if isinstance(program, bytes):
                    program = program.decode("utf-8", "replace")
                with self._lock:
                    self.programs.append(Path(str(program).split()[0]).name)
        except Exception:  # an audit hook must never break the code it watches
            with self._lock:
                self.destinations.append(Destination(event, "<unparsed>", None))

    def _record_destination(self, event: str, args: tuple[Any, ...]) -> None:
        host: str | None
        port: int | None = None
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            host, port = _host_port(args[1] if len(args) > 1 else None)
        elif event == "socket.getaddrinfo":
            raw = args[0]
            host = raw.decode("idna", "replace") if isinstance(raw, bytes) else raw
            port = args[1] if isinstance(args[1], int) else None
        elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
            host = str(args[0])
        elif event == "http.client.connect":
            host, port = str(args[1]), args[2] if isinstance(args[2], int) else None
        else:  # urllib.Request
            from urllib.parse import urlsplit

            parts = urlsplit(str(args[0]))
            host, port = parts.hostname, parts.port
        with self._lock:
            self.destinations.append(Destination(event, host, port))


# --- a tracking session in a fresh process --------------------------------------------------------


def _session_with_bedside(work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from bedside.stores.tracking import Tracker

    tracker = Tracker(
        f"sqlite:///{work / 'store' / 'mlflow.db'}", artifact_location=work / "store" / "artifacts"
    )
    rng = np.random.default_rng(7)
    features = pd.DataFrame({"age": rng.integers(18, 89, 300), "lactate": rng.gamma(2, 1, 300)})
    label = (features["lactate"] + rng.normal(0, 1, 300) > 2.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(features, label)
    with tracker.run("egress", run_name="egress-session", user="egress") as run_id:
        tracker.log_params(run_id, model.get_params())
        tracker.log_metrics(run_id, {"auroc": 0.8})
        tracker.log_dataset(
            run_id, features, name="egress-train", digest="c" * 64, source=str(work / "x.parquet")
        )
        logged = tracker.log_model(run_id, model, features=features)
    version = tracker.register_model(logged, "egress-model")
    tracker.set_champion("egress-model", version.version)
    loaded = tracker.load_model(version.model_id or "")
    same = bool((loaded.predict_proba(features) == model.predict_proba(features)).all())
    from mlflow.telemetry import get_telemetry_client

    return {"same_predictions": same, "telemetry_client": get_telemetry_client() is not None}


def _session_with_mlflow_only(work: Path) -> dict[str, Any]:
    import mlflow
    from mlflow.telemetry import get_telemetry_client

    uri = f"sqlite:///{work / 'store' / 'mlflow.db'}"
    (work / "store").mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("plain", artifact_location=(work / "a").as_uri())
    client.create_run(experiment)
    telemetry = get_telemetry_client()
    if telemetry is not None:
        deadline = time.monotonic() + 10  # the config thread gives up after a 1 s timeout
        while time.monotonic() < deadline and not telemetry._is_config_fetched:
            time.sleep(0.05)
    return {"telemetry_client": telemetry is not None}


def main(argv: list[str]) -> int:
    """Run one session (``bedside``, ``mlflow-first`` or ``mlflow-only``) and print JSON."""
    mode, work = argv[0], Path(argv[1])
    recorder = EgressRecorder.install()
    with recorder.recording():
        if mode == "mlflow-first":
            import mlflow  # noqa: F401 - imported before bedside can switch telemetry off
        result = (
            _session_with_mlflow_only(work)
            if mode == "mlflow-only"
            else _session_with_bedside(work)
        )
    result["destinations"] = [asdict(d) for d in recorder.destinations]
    result["non_local"] = [asdict(d) for d in recorder.non_local()]
    result["programs"] = sorted(set(recorder.programs))
    result["environment_switches"] = {
        k: os.environ.get(k) for k in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
