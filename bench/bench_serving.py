"""Serving: bedside's prediction server against `mlflow models serve`, same model, same run.

python bench/bench_serving.py [--duration 10] [--concurrency 1 8 32] [--workers 1 2]
                              [--mlflow-workers 1] [--loadgen wrk|httpx]

One HistGradientBoostingClassifier on 20 features (seeded synthetic data) is logged once with
mlflow.sklearn (skops, trusted types named) to a temporary MLflow store. Both servers load that
artifact: `mlflow models serve --env-manager local` (PATH includes .venv/bin so its uvicorn is
found; telemetry off) and bedside's server, which also runs a second model as shadow and writes
every prediction to its durable, encrypted inference log before answering. Both run with
OMP_NUM_THREADS=1 and listen on 127.0.0.1.

The load generator is wrk (Debian package `wrk`, closed loop: N connections, each sends its next
request when the previous answer arrives), or an asyncio httpx generator in a separate process
when wrk is missing (it saturates near 350-500 req/s on a small machine, so it cannot show the
difference at high concurrency: install wrk). Each request carries one record (rotating over 64
seeded records). For each concurrency the servers are measured in turn (interleaved, so drifting
background load affects all alike): a warm-up, then `--duration` seconds. Afterwards the
bedside inference log is read back (decrypted) and its prediction records are counted against
the 200 responses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
N_FEATURES = 20
FEATURES = [f"x{i:02d}" for i in range(N_FEATURES)]


# --------------------------------------------------------------------------------- the model


def make_models(folder: Path) -> tuple[str, str]:
    """Train the production and shadow models, log both with mlflow.sklearn; return local paths."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops.io
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, N_FEATURES))
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + rng.normal(scale=0.8, size=len(X))
    y = (logit > 0.5).astype(int)
    with threadpool_limits(1):
        production = HistGradientBoostingClassifier(random_state=0).fit(X, y)
        # The shadow is a retrained candidate of the same kind (another seed and learning rate).
        shadow = HistGradientBoostingClassifier(learning_rate=0.08, random_state=1).fit(X, y)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench-serving", artifact_location=str(folder / "art"))
    probe = folder / "probe.skops"
    skops.io.dump(production, probe)
    trusted = skops.io.get_untrusted_types(file=probe)
    paths = []
    for name, model in (("production", production), ("shadow", shadow)):
        with mlflow.start_run(experiment_id=experiment, run_name=name):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                pyfunc_predict_fn="predict_proba",
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                skops_trusted_types=trusted,
            )
        paths.append(mlflow.artifacts.download_artifacts(info.model_uri))
    return paths[0], paths[1]


def records(count: int = 64) -> list[list[float]]:
    """Return ``count`` seeded feature rows (rounded, as a client would send them)."""
    rng = np.random.default_rng(42)
    return [[round(float(v), 4) for v in row] for row in rng.normal(size=(count, N_FEATURES))]


# ------------------------------------------------------------------------ the bedside server


def serve_bedside(args: argparse.Namespace) -> None:
    """Run bedside's server on the logged models (a subprocess of the benchmark)."""
    import mlflow.sklearn

    from bedside.security import KeyRing
    from bedside.serving.app import create_app
    from bedside.serving.inference_log import InferenceLog
    from bedside.serving.models import DeployedModel, ServedModels
    from bedside.serving.schema import FeatureSchema
    from bedside.serving.server import serve

    production = mlflow.sklearn.load_model(args.model)
    shadow = mlflow.sklearn.load_model(args.shadow)
    schema = FeatureSchema.numeric(FEATURES)
    keys = KeyRing(Path(args.folder) / "keys")
    keys.create()

    def factory() -> object:
        models = ServedModels.of(
            [DeployedModel("bench", "1", production, 0.5, schema)],
            [DeployedModel("bench", "2", shadow, 0.4, schema)],
        )
        log = InferenceLog.open(Path(args.folder) / "inference-log", key_ring=keys)
        return create_app(models, log)

    serve(factory, host="127.0.0.1", port=args.port, workers=args.workers[0])


# ---------------------------------------------------------------------------- load generation

_WRK_SCRIPT = """
bodies = {%(bodies)s}
requests = {}
for i, body in ipairs(bodies) do
  requests[i] = wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
counter = 0
request = function()
  counter = counter + 1
  return requests[(counter %% #requests) + 1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "non200": %%d, "errors": %%d, ' ..
    '"p50": %%f, "p90": %%f, "p99": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3))
end
"""


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_wrk(url: str, path: str, bodies: list[str], concurrency: int, seconds: float) -> dict:
    """Run wrk against ``url + path``; return its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_WRK_SCRIPT % {"bodies": ", ".join(map(_lua_string, bodies)), "path": path})
        script = fh.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    line = [x for x in out.splitlines() if x.startswith("{")][-1]
    return json.loads(line)


async def _httpx_load(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    non200 = errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker(offset: int) -> None:
            nonlocal non200, errors
            i = offset
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += 1
                started = time.perf_counter()
                try:
                    response = await client.post(
                        url, content=body, headers={"content-type": "application/json"}
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    non200 += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1e3
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "non200": non200,
        "errors": errors,
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
    }


def run_httpx(url: str, path: str, bodies: list[str], concurrency: int, seconds: float) -> dict:
    """Run the asyncio httpx load generator in a separate process; return its figures."""
    spec = json.dumps({"url": url + path, "bodies": bodies, "c": concurrency, "s": seconds})
    out = subprocess.run(
        [sys.executable, __file__, "--httpx-loadgen"],
        input=spec,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------- the servers


@dataclass
class Server:
    label: str
    url: str
    path: str
    bodies: list[str]
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {process.returncode}; its log ends:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout} s: {url}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started, and its children (it leads its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_mlflow(model: str, workers: int, env: dict[str, str], logs: Path) -> Server:
    port = _free_port()
    command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    log = logs / f"mlflow-w{workers}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ping", process, log)
    bodies = [
        json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}}) for row in records()
    ]
    return Server(f"mlflow models serve (-w {workers})", url, "/invocations", bodies, process)


def start_bedside(
    model: str, shadow: str, workers: int, folder: Path, env: dict[str, str], logs: Path
) -> Server:
    port = _free_port()
    command = [sys.executable, __file__, "--serve-bedside", "--model", model, "--shadow", shadow]
    command += ["--folder", str(folder), "--port", str(port), "--workers", str(workers)]
    log = logs / f"bedside-w{workers}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/readyz", process, log)
    bodies = [json.dumps({"features": dict(zip(FEATURES, row, strict=True))}) for row in records()]
    return Server(f"bedside (workers {workers})", url, "/v1/models/bench/predict", bodies, process)


# -------------------------------------------------------------------------------------- main


def _check_same_answers(servers: list[Server]) -> None:
    """Both servers must return the same probability for the same record (same model)."""
    answers = []
    for server in servers:
        response = httpx.post(
            server.url + server.path,
            content=server.bodies[0],
            headers={"content-type": "application/json"},
            timeout=10,
        )
        response.raise_for_status()
        data = response.json()
        answers.append(data["probability"] if "probability" in data else data["predictions"][0][1])
    assert np.allclose(answers, answers[0]), f"servers disagree: {answers}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mlflow-workers", type=int, nargs="+", default=[1])
    parser.add_argument("--loadgen", choices=["wrk", "httpx"], default=None)
    parser.add_argument("--serve-bedside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--httpx-loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--shadow", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bedside:
        serve_bedside(args)
        return
    if args.httpx_loadgen:
        spec = json.loads(sys.stdin.read())
        bodies = [b.encode() for b in spec["bodies"]]
        print(json.dumps(asyncio.run(_httpx_load(spec["url"], bodies, spec["c"], spec["s"]))))
        return

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    loadgen = args.loadgen or ("wrk" if shutil.which("wrk") else "httpx")
    run_load = run_wrk if loadgen == "wrk" else run_httpx
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
    )
    print(f"load generator: {loadgen}; load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        model, shadow = make_models(folder)
        elapsed = time.perf_counter() - started
        print(f"models trained and logged with mlflow.sklearn in {elapsed:.1f} s")
        servers: list[Server] = []
        try:
            for workers in args.mlflow_workers:
                servers.append(start_mlflow(model, workers, env, folder))
            for workers in args.workers:
                servers.append(
                    start_bedside(
                        model, shadow, workers, folder / f"bedside-w{workers}", env, folder
                    )
                )
            _check_same_answers(servers)
            results: dict[tuple[str, int], dict] = {}
            answered = {server.label: 0 for server in servers}
            for concurrency in args.concurrency:
                for server in servers:
                    warm = run_load(
                        server.url, server.path, server.bodies, concurrency, args.warmup
                    )
                    figures = run_load(
                        server.url, server.path, server.bodies, concurrency, args.duration
                    )
                    figures["rps"] = figures["requests"] / figures["seconds"]
                    answered[server.label] += sum(
                        f["requests"] - f["non200"] for f in (warm, figures)
                    )
                    results[(server.label, concurrency)] = figures
                    print(
                        f"  c={concurrency:<3} {server.label:<28} {figures['rps']:8.1f} req/s  "
                        f"p50 {figures['p50']:7.2f}  p90 {figures['p90']:7.2f}  "
                        f"p99 {figures['p99']:7.2f} ms  non-200 {figures['non200']}  "
                        f"errors {figures['errors']}",
                        flush=True,
                    )
        finally:
            for server in servers:
                _stop(server.process)
        report(results, servers, args.concurrency)
        verify_logs(folder, args.workers, answered)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def report(results: dict[tuple[str, int], dict], servers: list[Server], levels: list[int]) -> None:
    """Print the table and the ratios against MLflow's default (first) configuration."""
    print("\n| server | concurrency | req/s | p50 ms | p90 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for concurrency in levels:
        for server in servers:
            f = results[(server.label, concurrency)]
            print(
                f"| {server.label} | {concurrency} | {f['rps']:,.0f} | {f['p50']:.1f} | "
                f"{f['p90']:.1f} | {f['p99']:.1f} | {f['non200'] + f['errors']} |"
            )
    reference = next(s.label for s in servers if s.label.startswith("mlflow"))
    print(f"\nRatios, bedside against {reference}:")
    print("| bedside | concurrency | throughput × | p99 fraction of MLflow's |")
    print("|---|---:|---:|---:|")
    for concurrency in levels:
        base = results[(reference, concurrency)]
        for server in servers:
            if server.label.startswith("bedside"):
                f = results[(server.label, concurrency)]
                print(
                    f"| {server.label} | {concurrency} | {f['rps'] / base['rps']:.1f}× | "
                    f"{f['p99'] / base['p99']:.3f} |"
                )


def verify_logs(folder: Path, workers: list[int], answered: dict[str, int]) -> None:
    """Read every bedside inference log back (decrypting it) and count its records.

    Every 200 wrk counted has its prediction record; a few more records are normal (answers
    that arrived after the load generator stopped counting).
    """
    from bedside.security import KeyRing
    from bedside.serving.inference_log import InferenceLogReader

    for n in workers:
        root = folder / f"bedside-w{n}"
        kinds: dict[str, int] = {}
        started = time.perf_counter()
        for entry in InferenceLogReader(
            root / "inference-log", key_ring=KeyRing(root / "keys")
        ).entries():
            kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
        counted = answered[f"bedside (workers {n})"] + 1  # + the answer check
        print(
            f"bedside (workers {n}) inference log read back and verified in "
            f"{time.perf_counter() - started:.1f} s: {kinds}; 200 responses counted: {counted}"
        )
        assert kinds.get("prediction", 0) >= counted, "a 200 response without its log record"


if __name__ == "__main__":
    main()
