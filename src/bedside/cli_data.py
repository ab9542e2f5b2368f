"""Data commands of the CLI: generate the synthetic hospital, ingest NDJSON / bulk exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bedside import cli_options
from bedside.errors import InvalidInput
from bedside.ingest.synthetic.model import DriftKind

out = Console(highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(
    description: str, *, unit_total: int | None = None
) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawing a Rich bar on standard error."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=unit_total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date; expected YYYY-MM-DD.") from None


def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the FHIR bulk export (created).")],
    admissions: Annotated[int, typer.Option(help="Number of admissions (Encounters).")] = 5000,
    start: Annotated[str, typer.Option(help="First admission date, YYYY-MM-DD.")] = "2024-01-01",
    end: Annotated[
        str, typer.Option(help="Admissions start before this date, YYYY-MM-DD.")
    ] = "2025-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    drift: Annotated[
        DriftKind | None, typer.Option(help="A drift scenario, starting at --drift-start.")
    ] = None,
    drift_start: Annotated[
        str | None, typer.Option(help="When the drift begins, YYYY-MM-DD.")
    ] = None,
    drift_magnitude: Annotated[float, typer.Option(help="How strong the drift is (0–1).")] = 0.3,
) -> None:
    """Write a deterministic synthetic hospital as a FHIR R4 bulk export (synthetic PHI included,
    so de-identification has work to do). Nothing is downloaded.
    """
    from bedside.ingest.synthetic import DriftScenario, generate_hospital

    scenario = None
    if drift is not None:
        if drift_start is None:
            raise InvalidInput("--drift needs --drift-start YYYY-MM-DD (when the drift begins).")
        scenario = DriftScenario(
            kind=drift,
            starts=_parse_date(drift_start, "--drift-start"),
            magnitude=drift_magnitude,
        )
    with progress_bar("generating admissions") as progress:
        summary = generate_hospital(
            out_dir,
            admissions=admissions,
            start=_parse_date(start, "--start"),
            end=_parse_date(end, "--end"),
            seed=seed,
            drift=scenario,
            progress=progress,
        )
    counts = ", ".join(f"{k} {v:,}" for k, v in summary.counts.items())
    out.print(
        f"Wrote {out_dir}: {counts}; sepsis prevalence {summary.sepsis_prevalence:.1%}; "
        f"{summary.bytes_written / 1e6:.0f} MB in {summary.seconds:.1f} s"
    )


def ingest(
    source: Annotated[Path, typer.Argument(help="A bulk-export folder or an .ndjson(.gz) file.")],
    dest: Annotated[
        Path, typer.Option(help="Where accepted resources, the quarantine and the report go.")
    ],
    resource_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only these resource types (repeatable).")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Also validate every resource against the FHIR R4B models (slow).")
    ] = False,
) -> None:
    """Read FHIR NDJSON: accept good resources, quarantine bad lines (with file, line and reason),
    never stop on one bad line. Prints read = accepted + quarantined per file.
    """
    from bedside.ingest.ndjson import ingest_ndjson

    with progress_bar("ingesting") as progress:
        report = ingest_ndjson(
            source, dest, resource_types=resource_type, strict=strict, progress=progress
        )
    for file in report.files:
        out.print(
            f"  {file.name}: read {file.read:,} = accepted {file.accepted:,} + quarantined "
            f"{file.quarantined:,} + blank {file.blank:,} + skipped {file.skipped:,}"
        )
    out.print(
        f"Accepted {report.accepted:,} resources; quarantined {report.quarantined:,}. "
        f"Report: {Path(dest) / 'ingest-report.json'}"
    )
    if report.has_file_errors:
        typer.echo("Error: some files could not be read to the end (see the report).", err=True)
        raise typer.Exit(1)


def prepare(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file.")],
    user: cli_options.UserOpt = None,
    password_stdin: cli_options.PasswordStdinOpt = False,
) -> None:
    """Run the data preparation stage: ingest, features and label, split, data quality,
    de-identification, PHI scan, and an encrypted, content-addressed dataset snapshot.

    A blocking check (phi_scan or data_quality with blocker: true) stops it: the report says
    which column and rule, never a value. Exits 0 when a snapshot was written, 4 when blocked.
    """
    import os

    from bedside.cli import _session
    from bedside.pipeline_file import load_pipeline_file
    from bedside.prepare import BlockedDataset

    spec = load_pipeline_file(pipeline).spec
    source = spec.data_preparation.source
    token_env = getattr(source, "auth_token_env", None)
    token = os.environ.get(token_env) if token_env else None
    platform, actor = _session(user, password_stdin)
    with Console(stderr=True).status("preparing") as status:
        result = platform.prepare_dataset(
            actor, pipeline, token=token, progress=lambda step: status.update(step)
        )
    if isinstance(result, BlockedDataset):
        typer.echo(
            f"Error: blocked by {result.check}: {result.summary}. Report: {result.report}", err=True
        )
        raise typer.Exit(4)
    out.print(f"Dataset snapshot {result.digest}")
    out.print(
        f"  {result.rows:,} rows, {result.patients:,} patients; "
        + ", ".join(
            f"{name} {c['rows']:,} rows / {c['events']:,} events"
            for name, c in result.counts.items()
            if name != "all"
        )
    )
    out.print(f"  snapshot:     {result.folder} (encrypted)")
    out.print(f"  data quality: {result.quality_html}")
    out.print(f"  PHI scan:     {result.phi_report}")
    out.print(f"  ingest:       {result.ingest_report}")


# The same options as every other command (declared once, in cli_options).
UserOpt = cli_options.UserOpt
PasswordStdinOpt = cli_options.PasswordStdinOpt


def train(
    pipeline: Annotated[Path, typer.Argument(help="The (registered) pipeline file.")],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="A dataset snapshot digest (or its first characters). Default: the newest one "
            "prepared for this pipeline."
        ),
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Train the pipeline's model on a prepared snapshot, evaluate it with patient-level
    bootstrap CIs, judge every gate, track it in MLflow, and register it as a candidate.
    """
    from bedside.cli import _session, state
    from bedside.stores.tracking import Tracker

    platform, actor = _session(user, password_stdin)
    settings = state.load_settings()
    repo = Path(__file__).resolve().parents[2]
    lock = repo / "uv.lock"
    with Console(stderr=True).status("training") as status:
        version = platform.train_version(
            actor,
            pipeline,
            tracker=Tracker.from_settings(settings),
            dataset_digest=dataset,
            repo=repo,
            lock_file=lock if lock.exists() else None,
            n_boot=n_boot,
            progress=lambda step: status.update(step),
        )
    out.print(f"Registered {version.ref} (candidate); MLflow run {version.run_id}")
    _print_gates(version)
    out.print(f"Next: bedside validate {version.ref}")


def _print_gates(version: Any) -> None:
    for gate in version.gate_results:
        mark = "pass" if gate.passed else "FAIL"
        out.print(f"  [{mark}] {gate.details.get('summary', gate.gate)}", markup=False)


def validate(
    ref: Annotated[str, typer.Argument(help="The version, as NAME@VERSION.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Make a candidate 'validated' when every gate passed, else 'rejected' (recorded)."""
    from bedside.cli import _session

    platform, actor = _session(user, password_stdin)
    version = platform.validate_version(actor, ref)
    _print_gates(version)
    out.print(f"{version.ref} is {version.state.value}")


def gate_check(
    ref: Annotated[str, typer.Argument(help="The version, as NAME@VERSION.")],
) -> None:
    """Exit non-zero when any gate of the version did not pass (for CI jobs that must block)."""
    from bedside.cli import state

    version = state.platform().get_version(ref)
    _print_gates(version)
    if not version.gate_results:
        typer.echo(f"Error: {ref} has no gate results yet (train it first).", err=True)
        raise typer.Exit(1)
    if not all(g.passed for g in version.gate_results):
        raise typer.Exit(1)


def review(
    ref: Annotated[str, typer.Argument(help="The version, as NAME@VERSION.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Set the operating threshold (clinical reviewers, before any approval)."),
    ] = None,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Show a version's evidence for clinical review: metrics with CIs, gates, thresholds.
    With --threshold, a clinical reviewer sets the operating threshold (recorded, and part of
    the record every approval signature is bound to).
    """
    from rich.table import Table

    from bedside.cli import _session, state

    if threshold is not None:
        platform, actor = _session(user, password_stdin)
        version = platform.set_threshold(actor, ref, threshold)
        point = version.evidence["operating_point"]
        out.print(
            f"Operating threshold of {ref} set to {threshold:g}: sensitivity "
            f"{point['sensitivity']:.3f}, specificity {point['specificity']:.3f}, "
            f"alerts per 100 admissions {point['alerts_per_100']:.1f} (test split)"
        )
    platform = state.platform()
    version = platform.get_version(ref)
    evidence = version.evidence
    out.print(
        f"[bold]{version.ref}[/bold] — {version.state.value}; trained by "
        f"{version.created_by}; dataset {str(evidence.get('dataset_digest', '?'))[:12]}; "
        f"threshold {evidence.get('threshold', '?')}"
    )
    evaluation = evidence.get("evaluation", {}).get("test")
    if evaluation:
        table = Table(title="Test split (patient-level bootstrap CIs)")
        for col in ("metric", "value", "CI"):
            table.add_column(col)
        for name, m in evaluation["metrics"].items():
            if m.get("value") is None:
                continue
            ci = (
                f"{m['ci_lower']:.3f}–{m['ci_upper']:.3f}" if m.get("ci_lower") is not None else "-"
            )
            table.add_row(name, f"{m['value']:.3f}", ci)
        out.print(table)
        rows = evaluation.get("threshold_table", [])
        if rows:
            t = Table(title="Candidate thresholds (the operating threshold is a clinical decision)")
            keys = [
                k
                for k in ("threshold", "sensitivity", "specificity", "ppv", "alerts_per_100")
                if k in rows[0]
            ]
            for k in keys:
                t.add_column(k)
            for row in rows[:12]:
                t.add_row(*[f"{row[k]:.3f}" if isinstance(row[k], float) else "-" for k in keys])
            out.print(t)
    _print_gates(version)
    if "evaluation" in evidence:
        html, _json = platform.write_validation_report(ref)
        out.print(f"Validation report (figures, subgroups, signatures): {html}")
    for sig, problem in platform.verify_signatures(ref):
        state_text = "verifies" if problem is None else f"DOES NOT VERIFY: {problem}"
        out.print(
            f"  signature: {sig.printed_name} ({sig.role}) {sig.meaning.value} "
            f"{sig.signed_at.isoformat()} — {state_text}"
        )


def reproduce(
    ref: Annotated[str, typer.Argument(help="The version, as NAME@VERSION.")],
    tolerance: Annotated[
        float, typer.Option(help="Largest acceptable difference between old and new probabilities.")
    ] = 0.0,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Retrain a version from its recorded lineage (dataset digest, estimator, parameters,
    seed) and report whether its test-split predictions are identical. Exits 1 when not.
    """
    from bedside.cli import _session

    platform, actor = _session(user, password_stdin)
    result = platform.reproduce_version(actor, ref, tolerance=tolerance)
    verdict = (
        "identical"
        if result["identical"]
        else ("within tolerance" if result["within_tolerance"] else "DIFFERENT")
    )
    out.print(
        f"{ref}: predictions on {result['rows']:,} test rows are {verdict} (largest "
        f"difference {result['max_abs_difference']:.3g}, tolerance {tolerance:g})."
    )
    if not result["within_tolerance"]:
        raise typer.Exit(1)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    refresh: Annotated[
        float,
        typer.Option(help="Seconds between registry checks (promotions and rollbacks hot-swap)."),
    ] = 5.0,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor/--no-monitor",
            help="Run monitoring on schedule (each live version's drift_check_interval).",
        ),
    ] = True,
    monitor_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between scheduled monitoring checks, overriding the pipeline's "
            "drift_check_interval (for tests and demos).",
            min=0.1,
        ),
    ] = None,
) -> None:
    """Serve the production model of every registered model (the shadow scores the same
    requests and is logged, never returned); every prediction is written to the encrypted
    inference log before it is answered. Governance endpoints (token) under /v1/governance,
    the governance dashboard under /ui; OpenAPI docs at /docs.
    """
    import logging

    from bedside.cli import state
    from bedside.dashboard import mount_dashboard
    from bedside.service import Platform
    from bedside.serving.app import Background, create_app
    from bedside.serving.inference_log import InferenceLog
    from bedside.serving.models import ServedModels
    from bedside.serving.registry import RegistryWatcher, current_versions, sync
    from bedside.serving.scheduler import MonitorScheduler, monitoring_intervals, scheduled_check
    from bedside.serving.server import serve as run_server

    settings = state.load_settings()
    state.platform()  # fail here, with a clear error, if the project is not usable
    if not current_versions(state.platform()):
        out.print(
            "Warning: no version is in production or shadow yet; /readyz answers 503 until one "
            "is deployed (bedside version deploy-shadow NAME@VERSION) — the server picks it up.",
            markup=False,
        )

    def factory() -> object:
        platform = Platform.from_settings(settings)
        served = ServedModels()
        sync(platform, served)
        background: list[Background] = [RegistryWatcher(platform, served, interval=refresh)]
        if monitor:
            check = scheduled_check(platform)
            if check is None:
                logging.getLogger("bedside.serve").warning(
                    "scheduled monitoring is not available in this installation; run "
                    "bedside monitor MODEL instead"
                )
            else:
                background.append(
                    MonitorScheduler(
                        intervals=lambda: monitoring_intervals(platform),
                        check=check,
                        folder=settings.home / "serving",
                        interval=monitor_interval,
                    )
                )
        log = InferenceLog.open(settings.home / "inference-log", key_ring=platform.keys)
        app = create_app(
            served,
            log,
            platform=platform,
            on_change=lambda: sync(platform, served),
            background=background,
        )
        mount_dashboard(app, platform)
        return app

    out.print(
        f"Serving on http://{host}:{port} (dashboard: /ui/, docs: /docs); inference log "
        f"{settings.home / 'inference-log'}"
    )
    run_server(factory, host=host, port=port, workers=workers)


def monitor(
    model: Annotated[str, typer.Argument(help="The registered model name.")],
    retrain: Annotated[
        Path | None,
        typer.Option(
            help="When the retraining trigger fires, prepare fresh data with this pipeline file "
            "and train a new candidate (it waits for validation and signatures; nothing is "
            "deployed)."
        ),
    ] = None,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Check the production version over time (time buckets of the pipeline's monitoring window):
    drift per feature and of the score (Evidently's tests and thresholds), performance with CIs
    where outcomes arrived, subgroup metrics, alerts (ledger, log and BEDSIDE_ALERT_WEBHOOK_URL,
    de-duplicated) and the retraining trigger. Exits 5 while an alert is active.
    """
    from bedside.cli import _session

    platform, actor = _session(user, password_stdin)
    result = platform.monitor(actor, model)
    window = result["window"]
    drift = "—" if result["drift_score"] is None else f"{result['drift_score']:.2f}"
    out.print(
        f"{result['version']}: {result['rows']:,} predictions ({result['labelled']:,} with "
        f"outcomes) in {window['buckets']} time bucket(s); newest bucket "
        f"{result['checked_rows']:,} predictions, drift_score {drift}"
        + (" — dataset drift" if result["dataset_drift"] else ""),
        markup=False,
    )
    if result["drift_score"] is not None and not result["drift_judged"]:
        out.print(
            f"  drift not acted on: the newest bucket has {result['checked_rows']:,} predictions, "
            "too few to tell drift from sampling noise (see docs/monitoring.md)",
            markup=False,
        )
    perf = result["performance"]
    if perf is not None and perf["value"] is not None:
        ci = (
            f" (95% CI {perf['ci_lower']:.3f}–{perf['ci_upper']:.3f})"
            if perf["ci_lower"] is not None
            else ""
        )
        out.print(
            f"  {perf['metric']} {perf['value']:.3f}{ci}; alert below {perf['threshold']}",
            markup=False,
        )
    out.print(f"  report: {result['report']}", markup=False)
    for alert in result["alerts"]["sent"]:
        out.print(
            f"  ALERT {alert['kind']}: {alert['metric']} {alert['value']} "
            f"(threshold {alert['threshold']})",
            markup=False,
        )
    for alert in result["alerts"]["suppressed"]:
        out.print(f"  still active, not sent again: {alert['kind']}", markup=False)
    for failed in result["alerts"]["undelivered"]:
        out.print(
            f"  webhook delivery failed for alert {failed['alert_id']} ({failed['error']}); "
            "recorded in the ledger",
            markup=False,
        )
    if result["trigger_fired"] and retrain is not None:
        _retrain(platform, actor, retrain)
    elif result["trigger_fired"]:
        out.print(
            "  retraining_trigger fired: train a new candidate (bedside prepare, bedside "
            "train, or bedside monitor --retrain PIPELINE); it must pass the same gates and "
            "signatures."
        )
    if result["active_alerts"]:
        raise typer.Exit(5)


def _retrain(platform: Any, actor: Any, pipeline: Path) -> None:
    """Prepare fresh data and train a candidate after the trigger fired (monitor --retrain)."""
    import os

    from bedside.cli import state
    from bedside.pipeline_file import load_pipeline_file
    from bedside.prepare import BlockedDataset
    from bedside.stores.tracking import Tracker

    source = load_pipeline_file(pipeline).spec.data_preparation.source
    token_env = getattr(source, "auth_token_env", None)
    repo = Path(__file__).resolve().parents[2]
    lock = repo / "uv.lock"
    out.print("  retraining_trigger fired: preparing fresh data and training a new candidate …")
    with Console(stderr=True).status("retraining") as status:
        result = platform.retrain(
            actor,
            pipeline,
            tracker=Tracker.from_settings(state.load_settings()),
            repo=repo,
            lock_file=lock if lock.exists() else None,
            token=os.environ.get(token_env) if token_env else None,
            progress=lambda step: status.update(step),
        )
    if isinstance(result, BlockedDataset):
        typer.echo(
            f"Error: the fresh dataset was blocked by {result.check}: {result.summary}. "
            f"Report: {result.report}",
            err=True,
        )
        raise typer.Exit(4)
    out.print(f"  retrained candidate {result.ref} (MLflow run {result.run_id}):", markup=False)
    _print_gates(result)
    out.print(
        f"  it waits for review: bedside validate {result.ref}, then the clinical "
        "signatures; it is never deployed on its own.",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add the data commands to the ``bedside`` app."""
    app.command("demo-data")(demo_data)
    app.command("ingest")(ingest)
    app.command("prepare")(prepare)
    app.command("train")(train)
    app.command("validate")(validate)
    app.command("review")(review)
    app.command("reproduce")(reproduce)
    app.command("serve")(serve)
    app.command("monitor")(monitor)
    gate_app = typer.Typer(help="Validation gates.", no_args_is_help=True)
    gate_app.command("check")(gate_check)
    app.add_typer(gate_app, name="gate")
