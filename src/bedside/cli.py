"""The ``bedside`` command line: thin commands that parse, call :class:`~bedside.service.Platform`,
and render. Errors print one line (``Error: …``) and exit non-zero; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.exceptions
from rich.console import Console
from rich.table import Table

from bedside import __version__, cli_options, logs
from bedside.config import CONFIG_FILE, Settings
from bedside.domain.lifecycle import Action
from bedside.domain.models import Checkpoint, Meaning, Purpose, User
from bedside.errors import BedsideError, InvalidInput, PipelineFileError

app = typer.Typer(
    name="bedside",
    help=(
        "bedside: governed MLOps for clinical prediction models.\n\n"
        "One pipeline file takes a model from EHR data through de-identification, tracked "
        "training, validation gates, clinical e-signatures, shadow deployment, serving and "
        "monitoring, and records the evidence in a tamper-evident audit ledger.\n\n"
        "Start with 'bedside init PROJECT' then 'bedside check PIPELINE.yaml'."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
user_app = typer.Typer(
    help="Manage people: add, list, disable, enable, grant and revoke roles.", no_args_is_help=True
)
role_app = typer.Typer(
    help="Manage roles (clinical reviewer roles such as CMIO are roles of kind clinical_reviewer).",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="Verify, export and checkpoint the hash-chained audit ledger.", no_args_is_help=True
)
pipeline_app = typer.Typer(help="Register pipeline files with the project.", no_args_is_help=True)
version_app = typer.Typer(
    help="Register model versions and move them through the lifecycle.", no_args_is_help=True
)
db_app = typer.Typer(help="Maintain the governance database schema.", no_args_is_help=True)
token_app = typer.Typer(help="Create and revoke API tokens for the HTTP API.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(audit_app, name="audit")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(version_app, name="version")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")

out = Console(highlight=False, soft_wrap=True)


@dataclass
class State:
    """What the top-level options decided, shared with every command."""

    project: Path | None = None
    debug: bool = False
    settings: Settings | None = None
    # Databases this command opened; closed when it ends (a pooled PostgreSQL connection left to
    # the garbage collector is closed late, with a ResourceWarning).
    opened: list[Any] = field(default_factory=list)

    def load_settings(self) -> Settings:
        if self.settings is None:
            self.settings = Settings.load(os.environ, home=self.project)
            logs.configure(self.settings.log_level, json_lines=self.settings.log_json)
        return self.settings

    def platform(self) -> Any:
        from bedside.service import Platform

        settings = self.load_settings()
        if not settings.config_path.exists() and settings.database_url.startswith("sqlite:"):
            raise BedsideError(
                f"{settings.home} is not a bedside project (no {CONFIG_FILE}). Create one with "
                "'bedside init PATH', or point at one with --project PATH or BEDSIDE_HOME."
            )
        platform = Platform.from_settings(settings)
        self.opened.append(platform.database)
        return platform

    def close(self) -> None:
        """Close every database this command opened."""
        while self.opened:
            self.opened.pop().dispose()


state = State()

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="The project folder (default: BEDSIDE_HOME or the current folder).",
        show_default=False,
    ),
]
UserOpt = cli_options.UserOpt
PasswordStdinOpt = cli_options.PasswordStdinOpt


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"bedside {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    project: ProjectOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Governed MLOps for clinical prediction models."""
    state.project = project
    state.debug = debug
    state.settings = None


# -- helpers -----------------------------------------------------------------------------------


def _read_password(prompt: str, *, stdin: bool, confirm: bool = False) -> str:
    if stdin:
        line = sys.stdin.readline()
        if not line:
            raise InvalidInput("--password-stdin was given but standard input is empty.")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput(
            "A password is needed and no terminal is attached; pass "
            "--password-stdin and send it on standard input."
        )
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _actor(platform: Any, user: str | None, password_stdin: bool) -> User:
    """Authenticate the person running the command (API token or user name + password)."""
    token = os.environ.get("BEDSIDE_TOKEN")
    if token and not user:
        return platform.authenticate_token(token)  # type: ignore[no-any-return]
    username = user or getpass.getuser()
    password = _read_password(f"Password for {username}", stdin=password_stdin)
    return platform.authenticate(username, password)  # type: ignore[no-any-return]


def _session(user: str | None, password_stdin: bool) -> tuple[Any, User]:
    """Open the project and authenticate the person running the command."""
    platform = state.platform()
    return platform, _actor(platform, user, password_stdin)


# -- init / check / status ---------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[
        Path, typer.Argument(help="Folder for the new project (created if absent).")
    ] = Path("."),
    admin: Annotated[str, typer.Option(help="User name of the first admin.")] = "admin",
    admin_name: Annotated[
        str, typer.Option(help="The admin's printed full name.")
    ] = "Administrator",
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="A pipeline file to register right away (creates its reviewer roles and model)."
        ),
    ] = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Create a project: config, governance database, keys, artifacts folder, first admin.

    The admin's password is asked twice (or read from stdin with --password-stdin). Keep the
    project's keys/ folder safe: it holds the key that seals e-signatures.
    """
    from bedside.security import KeyRing
    from bedside.service import Platform
    from bedside.stores.database import Database

    home = path.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / CONFIG_FILE
    if not config.exists():
        config.write_text(
            "# bedside project settings. Environment variables (BEDSIDE_*) override these.\n"
            '[bedside]\n# database_url = "postgresql+psycopg://bedside@db.example.org/bedside"\n'
            'log_level = "WARNING"\n',
            encoding="utf-8",
        )
    state.project = home
    settings = state.load_settings()
    (home / "artifacts").mkdir(exist_ok=True)
    password = _read_password(f"New password for {admin}", stdin=password_stdin, confirm=True)
    database = Database(settings.database_url)
    state.opened.append(database)
    platform = Platform(
        database,
        KeyRing(settings.keys_dir),
        lockout_threshold=settings.lockout_threshold,
    )
    user = platform.initialise(
        admin_username=admin, admin_full_name=admin_name, admin_password=password
    )
    out.print(f"Created bedside project in {home}")
    out.print(f"  database: {settings.database_url}")
    out.print(f"  keys:     {settings.keys_dir} (back this up separately; never commit it)")
    out.print(f"  admin:    {user.username} ({user.full_name})")
    if pipeline is not None:
        record, model = platform.register_pipeline(
            user, content=_read_text(pipeline), source=str(pipeline)
        )
        out.print(f"  pipeline: {record.name} {record.version} → model {model.name}")
    out.print("Next: add people with 'bedside user add', then 'bedside status'.")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file.") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text.") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror}).") from None


@app.command()
def check(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file to validate.")],
) -> None:
    """Validate a pipeline file; print every problem with file, line, key, expected and found.

    Exits 0 when the file is valid, 1 otherwise. Nothing in the file is executed: expressions
    such as 'drift_score > 0.3' are parsed by a small safe grammar.
    """
    from bedside.pipeline_file import load_pipeline_file

    try:
        loaded = load_pipeline_file(pipeline)
    except PipelineFileError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(
            f"Error: {pipeline}: {len(exc.issues)} problem(s); the pipeline is not valid.", err=True
        )
        raise typer.Exit(1) from None
    spec = loaded.spec.pipeline
    from bedside.training import import_estimator

    try:
        import_estimator(loaded.spec.training.model.estimator)
    except InvalidInput as exc:
        typer.echo(f"{pipeline}: {exc.message}", err=True)
        typer.echo(f"Error: {pipeline}: 1 problem(s); the pipeline is not valid.", err=True)
        raise typer.Exit(1) from None
    out.print(
        f"{pipeline}: valid — pipeline {spec.name} {spec.version}, model {spec.model_name}, "
        f"{len(spec.stages)} stages, sha256 {loaded.content_sha256[:12]}"
    )
    missing = loaded.spec.missing_for_run()
    if missing:
        out.print(
            "It is a valid governance file; to prepare data and train, also add: "
            + ", ".join(missing)
            + " (see docs/pipeline.md and examples/sepsis/pipeline.full.yaml)."
        )


@app.command()
def status() -> None:
    """Show every model, its versions and states, what is live, and pending approvals."""
    platform = state.platform()
    models = platform.status()
    if not models:
        out.print("No models registered yet. Register a pipeline: bedside pipeline register FILE")
        return
    for entry in models:
        prod = entry.production.ref if entry.production else "none"
        shadow = entry.shadow.ref if entry.shadow else "none"
        out.print(f"[bold]{entry.model.name}[/bold]  production: {prod}  shadow: {shadow}")
        table = Table(show_header=True, header_style="bold")
        for col in ("version", "state", "trained by", "created (UTC)", "gates", "sign-off"):
            table.add_column(col)
        for row in entry.versions:
            v = row.version
            gates = (
                ", ".join(f"{g.gate}:{'pass' if g.passed else 'FAIL'}" for g in v.gate_results)
                or "-"
            )
            sign = row.review.describe(v.ref) if row.review else "-"
            if row.invalid_signatures:
                sign += f" ({len(row.invalid_signatures)} signature(s) no longer verify)"
            table.add_row(
                str(v.version),
                v.state.value,
                v.created_by,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                gates,
                sign,
            )
        if entry.versions:
            out.print(table)
        else:
            out.print("  no versions yet")
    pending = [
        row
        for entry in models
        for row in entry.versions
        if row.review and not row.review.is_satisfied
    ]
    if pending:
        out.print("[bold]Pending approvals[/bold]")
        for row in pending:
            out.print(f"  {row.review.describe(row.version.ref)}")


# -- db ----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the governance database schema to this bedside's version (take a backup first)."""
    from bedside.stores.database import Database

    settings = state.load_settings()
    database = Database(settings.database_url)
    state.opened.append(database)
    before = database.current_revision()
    after = database.upgrade()
    out.print(f"Schema: {before or 'empty'} → {after}")


# -- pipelines and versions --------------------------------------------------------------------


@pipeline_app.command("register")
def pipeline_register(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Register a pipeline file: store its exact text, create its reviewer roles and its model."""
    platform, actor = _session(user, password_stdin)
    record, model = platform.register_pipeline(
        actor, content=_read_text(pipeline), source=str(pipeline)
    )
    out.print(
        f"Registered pipeline {record.name} {record.version} (sha256 {record.sha256[:12]}) "
        f"for model {model.name}"
    )


@version_app.command("register")
def version_register(
    model: Annotated[str, typer.Argument(help="The registered model name.")],
    run_id: Annotated[str | None, typer.Option(help="The MLflow run that trained it.")] = None,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Register a trained version of MODEL as a candidate (the trainer is you)."""
    platform, actor = _session(user, password_stdin)
    version = platform.register_version(actor, model, run_id=run_id)
    out.print(f"Registered {version.ref} (candidate)")


def _mirror_aliases(platform: Any, version: Any) -> None:
    """Point MLflow's champion/shadow aliases where the lifecycle now says (tracked models)."""
    if "mlflow_version" not in version.evidence:
        return
    from bedside.stores.tracking import Tracker

    aliases = platform.mirror_aliases(
        Tracker.from_settings(state.load_settings()), version.model_name
    )
    out.print("MLflow aliases: " + ", ".join(f"{k} → {v or 'none'}" for k, v in aliases.items()))


def _transition_command(action: Action, doc: str) -> None:
    def command(
        ref: Annotated[str, typer.Argument(help="The version, as NAME@VERSION.")],
        reason: Annotated[str, typer.Option(help="Why (recorded in the audit ledger).")] = "",
        user: UserOpt = None,
        password_stdin: PasswordStdinOpt = False,
    ) -> None:
        platform, actor = _session(user, password_stdin)
        version = platform.transition(actor, ref, action, reason=reason)
        out.print(f"{version.ref} is now {version.state.value}")
        _mirror_aliases(platform, version)

    command.__doc__ = doc
    version_app.command(action.value.replace("_", "-"))(command)


_transition_command(Action.VALIDATE, "Mark a candidate validated (every gate must have passed).")
_transition_command(Action.DEPLOY_SHADOW, "Deploy an approved version as shadow.")
_transition_command(
    Action.PROMOTE,
    "Promote a shadow version to production (after the shadow "
    "period, with a promotion signature unless auto_promote allows otherwise).",
)
_transition_command(Action.RETIRE, "Retire a version.")
_transition_command(
    Action.REJECT, "Reject a version (needs a failed gate or a rejection signature)."
)


@version_app.command("shadow-report")
def version_shadow_report(
    ref: Annotated[str, typer.Argument(help="The version in shadow, as NAME@VERSION.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Write the shadow report (agreement with production, score distributions, would-be alerts,
    performance of both where outcomes arrived) and record its verdict: the evidence a promotion
    signature binds to.
    """
    platform, actor = _session(user, password_stdin)
    result = platform.shadow_report(actor, ref)
    summary = result["summary"]
    out.print(
        f"{ref}: shadow report {'PASSED' if result['passed'] else 'FAILED'} "
        f"({summary.get('scored', 0):,} requests scored by the shadow)",
        markup=False,
    )
    for outcome in result["outcomes"]:
        observed = f" — {outcome['observed']}" if outcome.get("observed") else ""
        out.print(f"  {outcome['status']:<13} {outcome['rule']}{observed}", markup=False)
    out.print(f"  report: {result['html']}", markup=False)
    out.print(f"  data:   {result['json']} (sha256 {result['sha256'][:16]}…)", markup=False)


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="The registered model name.")],
    reason: Annotated[str, typer.Option(help="Why (required; recorded in the audit ledger).")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Return production to the version that served before the current one, in one step."""
    platform, actor = _session(user, password_stdin)
    version = platform.rollback(actor, model, reason=reason)
    out.print(f"{version.ref} is in production again")
    _mirror_aliases(platform, version)


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="The registered model name.")],
    at: Annotated[
        str | None,
        typer.Option(help="A moment, ISO 8601 (e.g. 2026-03-12T03:00:00+00:00). Default: now."),
    ] = None,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Which version was in production (and shadow) at a moment, who approved it, and every
    state change up to then — read from the audit ledger.
    """
    from datetime import UTC, datetime

    moment = None
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise InvalidInput(
                f"--at {at!r} is not an ISO 8601 time such as 2026-03-12T03:00:00+00:00."
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    platform, actor = _session(user, password_stdin)
    answer = platform.history(actor, model, at=moment)
    out.print(
        f"{model} at {answer['at']}: production {answer['production'] or 'none'}, "
        f"shadow {answer['shadow'] or 'none'}"
    )
    for approval in answer["approved_by"]:
        out.print(
            f"  approved ({approval['purpose']}) by {approval['printed_name']} "
            f"({approval['role']}) at {approval['signed_at']}"
        )
    for change in answer["changes"]:
        out.print(
            f"  {change['time']}  {change['version']} → {change['state']} by "
            f"{change['by']}" + (f" ({change['reason']})" if change["reason"] else "")
        )


# -- signatures --------------------------------------------------------------------------------


@app.command()
def sign(
    ref: Annotated[str, typer.Argument(help="The version to sign, as NAME@VERSION.")],
    meaning: Annotated[Meaning, typer.Option(help="What your signature means.")],
    purpose: Annotated[
        Purpose,
        typer.Option(
            help="clinical_review (approve the version) or promotion (approve it for production)."
        ),
    ] = Purpose.CLINICAL_REVIEW,
    role: Annotated[
        str | None, typer.Option(help="The role you sign as (if you hold several).")
    ] = None,
    comment: Annotated[str, typer.Option(help="A comment kept with the signature.")] = "",
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """E-sign a version (21 CFR Part 11): your printed name, the server time and the meaning are
    bound to the SHA-256 of the exact record you sign. You re-enter your password every time.
    """
    from bedside.domain.signatures import ACCOUNTABILITY_NOTICE

    platform = state.platform()
    username = user or getpass.getuser()
    out.print(ACCOUNTABILITY_NOTICE)
    password = _read_password(f"Password for {username} (signing)", stdin=password_stdin)
    sig = platform.sign(
        username, password, ref, meaning=meaning, purpose=purpose, role=role, comment=comment
    )
    version = platform.get_version(ref)
    out.print(
        f"Signed {ref}: {sig.printed_name} ({sig.role}), {sig.meaning.value}, "
        f"{sig.signed_at.isoformat()}, record sha256 {sig.record_sha256[:16]}…"
    )
    out.print(f"{ref} is {version.state.value}")


# -- users, roles, tokens ----------------------------------------------------------------------


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="The new user's name (never reused).")],
    full_name: Annotated[str, typer.Option(help="Printed name shown on their signatures.")],
    role: Annotated[list[str] | None, typer.Option(help="A role to grant (repeatable).")] = None,
    new_password_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the new user's initial password from this file instead of prompting."
        ),
    ] = None,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Add a user (admins only). Their initial password is prompted twice or read from a file."""
    platform, actor = _session(user, password_stdin)
    if new_password_file is not None:
        new_password = _read_text(new_password_file).rstrip("\r\n")
    else:
        new_password = _read_password(f"Initial password for {username}", stdin=False, confirm=True)
    created = platform.add_user(
        actor, username, full_name=full_name, password=new_password, roles=role or []
    )
    out.print(
        f"Added {created.username} ({created.full_name}) roles: "
        f"{', '.join(sorted(created.roles)) or 'none'}"
    )


@user_app.command("list")
def user_list(user: UserOpt = None, password_stdin: PasswordStdinOpt = False) -> None:
    """List users, their roles and whether they are active (admins only)."""
    platform, actor = _session(user, password_stdin)
    table = Table(show_header=True, header_style="bold")
    for col in ("user", "name", "roles", "active", "locked", "created (UTC)"):
        table.add_column(col)
    for u in platform.list_users(actor):
        table.add_row(
            u.username,
            u.full_name,
            ", ".join(sorted(u.roles)) or "-",
            "yes" if u.is_active else "no",
            "yes" if u.is_locked else "no",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="The user to disable.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit ledger).")] = "",
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Disable a user (users are never deleted; their signatures stay valid)."""
    platform, actor = _session(user, password_stdin)
    platform.set_user_active(actor, username, active=False, reason=reason)
    out.print(f"Disabled {username}")


@user_app.command("enable")
def user_enable(
    username: Annotated[str, typer.Argument(help="The user to re-enable (also unlocks).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit ledger).")] = "",
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Re-enable a disabled or locked user."""
    platform, actor = _session(user, password_stdin)
    platform.set_user_active(actor, username, active=True, reason=reason)
    out.print(f"Enabled {username}")


@user_app.command("grant")
def user_grant(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[str, typer.Argument(help="The role to grant.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Grant a role to a user (admins only)."""
    platform, actor = _session(user, password_stdin)
    updated = platform.grant_role(actor, username, role)
    out.print(f"{updated.username} now holds: {', '.join(sorted(updated.roles))}")


@user_app.command("revoke")
def user_revoke(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[str, typer.Argument(help="The role to take away.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Revoke a role from a user (admins only)."""
    platform, actor = _session(user, password_stdin)
    updated = platform.revoke_role(actor, username, role)
    out.print(f"{updated.username} now holds: {', '.join(sorted(updated.roles)) or 'none'}")


@role_app.command("add")
def role_add(
    name: Annotated[str, typer.Argument(help="The role name, e.g. CMIO.")],
    kind: Annotated[str, typer.Option(help="The kind of role; its permissions come from it.")],
    description: Annotated[str, typer.Option(help="What the role is for.")] = "",
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Add a role of a built-in kind (admins only)."""
    platform, actor = _session(user, password_stdin)
    role = platform.add_role(actor, name, kind=kind, description=description)
    out.print(f"Added role {role.name} (kind {role.kind})")


@role_app.command("list")
def role_list() -> None:
    """List roles and their kinds."""
    from bedside.domain.permissions import permissions_for

    platform = state.platform()
    table = Table(show_header=True, header_style="bold")
    for col in ("role", "kind", "permissions"):
        table.add_column(col)
    for role in platform.list_roles():
        perms = ", ".join(sorted(p.value for p in permissions_for([role.kind])))
        table.add_row(role.name, role.kind, perms)
    out.print(table)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'ci-pipeline'.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Create an API token for yourself. It is shown once; only its hash is stored."""
    platform, actor = _session(user, password_stdin)
    token, record = platform.create_token(actor, name=name)
    out.print(
        f"Token {record.prefix}… for {actor.username} ({name}). Store it now; it is not "
        "shown again:"
    )
    out.print(token)


@token_app.command("revoke")
def token_revoke(
    token_stdin: Annotated[
        bool,
        typer.Option(
            "--token-stdin",
            help="Read the token to revoke from the line after your password on standard input.",
        ),
    ] = False,
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Revoke an API token (yours, or anyone's if you are an admin), e.g. when it may be lost."""
    platform, actor = _session(user, password_stdin)
    token = _read_password("Token to revoke", stdin=token_stdin or password_stdin)
    platform.revoke_token(actor, token)
    out.print("Token revoked.")


# -- audit -------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(help="An extra checkpoint SEQ:HASH kept outside the database (repeatable)."),
    ] = None,
) -> None:
    """Verify the ledger's hash chain and checkpoints; report the first broken link.

    Exits 0 when intact, 3 when tampering is detected.
    """
    extra = []
    for item in checkpoint or []:
        seq, sep, digest = item.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise InvalidInput(
                f"--checkpoint {item!r} is not SEQ:HASH (a number, ':', and the "
                "64-hex-digit hash printed by 'bedside audit checkpoint')."
            )
        extra.append(
            Checkpoint(
                seq=int(seq),
                hash=digest.lower(),
                recorded_at="command line",
                recorded_by="command line",
            )
        )
    result = state.platform().verify_audit(extra_checkpoints=extra)
    if result.ok:
        out.print(result.describe())
        return
    typer.echo(f"Error: {result.describe()}", err=True)
    raise typer.Exit(3)


@audit_app.command("export")
def audit_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write the export into.")],
    user: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Export the whole ledger as JSON Lines and CSV for inspectors (auditors, admins)."""
    platform, actor = _session(user, password_stdin)
    paths = platform.export_audit(actor, folder)
    out.print(f"Wrote {paths['jsonl']} and {paths['csv']}")


@audit_app.command("checkpoint")
def audit_checkpoint(user: UserOpt = None, password_stdin: PasswordStdinOpt = False) -> None:
    """Record the ledger head as a checkpoint; print SEQ:HASH to keep somewhere safe.

    Truncating the ledger's tail can only be detected against a checkpoint: record one regularly
    and keep its SEQ:HASH outside the database (a ticket, an e-mail, paper).
    """
    platform, actor = _session(user, password_stdin)
    cp = platform.checkpoint_audit(actor)
    out.print(f"{cp.seq}:{cp.hash}")


# -- entry point -------------------------------------------------------------------------------


def invoke(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv``; return the exit code (errors print one line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("BEDSIDE_DEBUG", "") in ("1", "true")
    command = typer.main.get_command(app)
    try:
        return _run(command, args, debug)
    finally:
        state.close()


def _run(command: Any, args: list[str], debug: bool) -> int:
    try:
        # With standalone_mode off, click returns the code of a typer.Exit instead of raising.
        returned = command.main(args=args, prog_name="bedside", standalone_mode=False)
        if isinstance(returned, int):
            return returned
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted.", err=True)
        return 130
    except typer.exceptions.TyperException as exc:
        # Usage errors (missing argument, unknown option): click's own message and usage line.
        show = getattr(exc, "show", None)
        if show is None:  # pragma: no cover - every usage error of typer's click has show()
            raise
        show()
        return int(getattr(exc, "exit_code", 2))
    except BedsideError as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc.message}", err=True)
        return 1
    except Exception as exc:
        if debug:
            raise
        # Not a user mistake: a bug or an environment failure. Its text may quote data, so only
        # its type is printed; --debug shows everything.
        typer.echo(
            f"Error: unexpected {type(exc).__name__}; run again with --debug for the "
            "traceback and report it.",
            err=True,
        )
        return 2
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(invoke())


def _register_data_commands() -> None:
    from bedside import cli_data, cli_documents

    cli_data.register(app)
    cli_documents.register(app)


_register_data_commands()
