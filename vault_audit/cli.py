"""The ``vault-audit`` command: thin click commands over the library.

Exit codes: 0 ok; 1 the command worked and found what it was asked to fail on
(quarantined records, findings at ``--fail-on``); 2 bad usage, unreadable input or a
busy store. Errors are one line on standard error, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import duckdb

from vault_audit import __version__
from vault_audit.errors import VaultAuditError
from vault_audit.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _in_one_line(error: click.UsageError) -> None:
    """Gives click's usage error the tool's one-line form for when click shows it. Only
    the display changes: with ``standalone_mode=False`` the caller still gets the same
    exception to handle."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        return  # the group run bare shows its help, which is not an error line
    message = " ".join(error.format_message().splitlines())
    ctx = error.ctx
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        help_name = max(ctx.command.get_help_option_names(ctx), key=len)
        message = f"{message} (see '{ctx.command_path} {help_name}')"

    def show(file: IO[Any] | None = None) -> None:
        click.echo(f"vault-audit: error: {message}", file=file, err=file is None)

    error.show = show  # type: ignore[method-assign]


class _Group(click.Group):
    """Maps every expected error to one line on stderr and exit status 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # a bad group option
            _in_one_line(error)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:  # an unknown command, a command's bad usage
            _in_one_line(error)
            raise
        except VaultAuditError as error:
            click.echo(f"vault-audit: error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("vault-audit: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except duckdb.OutOfMemoryException as error:
            # DuckDB spills what it can to disk; what it cannot (an operator without an
            # out-of-core path) fails here. Not seen since token_uses lost its key
            # index, which had to fit in memory: a single 53.5M-row log now ingests and
            # checks at the default 2GB (benchmarks/README.md).
            click.echo(
                "vault-audit: error: DuckDB ran out of memory under its memory_limit "
                f"({_first_line(error)}); the transaction it was in was rolled back. Raise "
                "VAULT_AUDIT_MEMORY_LIMIT, or give the input in smaller files",
                err=True,
            )
            sys.exit(2)
        except Exception as error:  # an unexpected failure still reads as one line
            logging.getLogger(__name__).debug("unexpected error", exc_info=True)
            click.echo(
                f"vault-audit: unexpected error: {type(error).__name__}: {_first_line(error)}",
                err=True,
            )
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vault-audit")
@click.option("-v", "--verbose", is_flag=True, help="Log one line per unit of work to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Audit Vault device-session revocations against Supabase token use."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="vault-audit: %(message)s",
        stream=sys.stderr,
    )
    if sys.unraisablehook is sys.__unraisablehook__:  # leave a host's own hook alone
        sys.unraisablehook = _log_unraisable
    # Every file this process makes holds audit data: the store, and the write-ahead
    # log DuckDB creates beside it at the first write (which store.connect cannot
    # reach), temporary files, outputs. Owner-only, like the store.
    os.umask(0o077)
    ctx.obj = load_settings()


def _log_unraisable(unraisable: Any) -> None:
    """An exception a library could not raise (pyarrow's reject handler, say) goes to
    the debug log, not to the terminal as a traceback; its error surfaces anyway."""
    logging.getLogger(__name__).debug(
        "ignored in %r: %s", unraisable.object, type(unraisable.exc_value).__name__
    )


def db_option(command: F) -> F:
    """``--db PATH``; else ``VAULT_AUDIT_DB``, ``vault-audit.toml``, the default."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=None,
        help="Store file (default vault-audit.duckdb, or VAULT_AUDIT_DB).",
    )(command)


def policy_options(command: F) -> F:
    """``--leeway`` and ``--max-token-lifetime``, shared by the commands that judge."""
    command = click.option(
        "--max-token-lifetime",
        type=click.IntRange(min=0),
        default=None,
        help="Longest token lifetime policy allows, in seconds (default 3600).",
    )(command)
    return click.option(
        "--leeway",
        type=click.IntRange(min=0),
        default=None,
        help="Seconds of clock skew allowed past exp (default 0).",
    )(command)


def settings_from(ctx: click.Context, **options: Any) -> Settings:
    """The settings of this run: the options given, over environment and file."""
    settings: Settings = ctx.find_root().obj or load_settings()
    return settings.with_options(**options)


def pass_settings(command: F) -> F:
    """Hand the command ``settings`` built from its own options."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        names = {"db", "leeway", "max_token_lifetime", "jwks", "jwt_secret_env"}
        given = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        return command(*args, settings=settings_from(ctx, **given), **kwargs)

    return wrapper  # type: ignore[return-value]


# Commands are registered below, one section per command, in the order a user meets them.


# --- ingest -------------------------------------------------------------------------------


@main.command()
@db_option
@click.option(
    "--kind",
    type=click.Choice(
        ["vault-events", "access-log", "supabase-audit", "supabase-sessions", "device-sessions"]
    ),
    default=None,
    help="Input kind; detected from the columns when left out.",
)
@click.option("--snapshot-at", default=None, help="Time a snapshot file was taken (RFC 3339).")
@click.option(
    "--jwks",
    type=click.Path(dir_okay=False),
    default=None,
    help="JWKS file of the public keys that sign the tokens.",
)
@click.option(
    "--jwt-secret-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the HS256 JWT secret.",
)
@click.option(
    "--from-postgres",
    "from_postgres",
    is_flag=False,
    flag_value="env:VAULT_AUDIT_POSTGRES_URL",
    default=None,
    metavar="URL",
    help="Read Supabase's and Vault's tables from Postgres instead of FILES: a URL, "
    "env:VAR, or alone VAULT_AUDIT_POSTGRES_URL (see docs/postgres.md).",
)
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@pass_settings
def ingest(
    settings: Settings,
    kind: str | None,
    snapshot_at: str | None,
    files: tuple[str, ...],
    from_postgres: str | None = None,
) -> None:
    """Load input FILES into the store (exit 1 when records were quarantined)."""
    from vault_audit import store
    from vault_audit.ingest import ingest_files, parse_snapshot_time

    if from_postgres is not None and (files or kind or snapshot_at):
        raise click.UsageError(
            "--from-postgres reads its own tables: give no FILE, --kind or --snapshot-at"
        )
    if not files and from_postgres is None:
        raise click.UsageError("give at least one FILE")
    when = parse_snapshot_time(snapshot_at) if snapshot_at else None

    def report(result: Any) -> None:
        click.echo(
            f"{result.source}: {result.kind}, {result.records_read} read, "
            f"{result.accepted} accepted, {result.duplicates} duplicate, "
            f"{result.quarantined} quarantined ({result.seconds:.1f} s)"
        )

    with store.opened(
        settings.db,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        if from_postgres is not None:
            from vault_audit.ingest.postgres import ingest_postgres, resolve_postgres_url

            url = resolve_postgres_url(from_postgres)
            results = ingest_postgres(connection, url, settings=settings)
            for result in results:
                report(result)
        else:
            with _file_progress() as on_progress:
                results = ingest_files(
                    connection,
                    files,
                    kind=kind,
                    settings=settings,
                    snapshot_at=when,
                    on_result=report,
                    on_progress=on_progress,
                )
    if any(result.quarantined for result in results):
        sys.exit(1)


@contextlib.contextmanager
def _file_progress() -> Iterator[Callable[[Path, int, int], None] | None]:
    """A progress bar per file on a terminal; nothing when stderr is a pipe or a log."""
    if not sys.stderr.isatty():
        yield None
        return

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[Path, Any] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:

        def advance(path: Path, done: int, total: int) -> None:
            if path not in tasks:
                tasks[path] = progress.add_task(path.name, total=total)
            progress.update(tasks[path], completed=done)

        yield advance


# --- check, exposure, sessions ------------------------------------------------------------


def _existing_store(settings: Settings) -> None:
    """Judging needs a store that ingest created; a missing one is an input error."""
    from pathlib import Path

    from vault_audit.errors import StoreError

    if not Path(settings.db).is_file():
        raise StoreError(f"no vault-audit store at {settings.db}; run `vault-audit ingest` first")


def _moment_option(value: str | None, name: str) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        # RFC 3339 allows a lowercase t and z.
        moment = dt.datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an RFC 3339 time or a date", param_hint=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _emit(text: str | None) -> None:
    if text is not None:
        click.echo(text, nl=False)


@main.command()
@db_option
@policy_options
@click.option(
    "--detail",
    type=click.Choice(["findings", "uses"]),
    default="findings",
    help="One record per finding (default) or per classified token use.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "parquet", "ocsf"]),
    default="table",
    help="Output format; json is one array of records; parquet needs --output.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=str),
    default=None,
    help="Write to FILE instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["anomalous", "needs_review", "never"]),
    default="anomalous",
    help="Exit 1 when a reported finding reaches this verdict (default anomalous).",
)
@click.option("--new-only", is_flag=True, help="Report only findings no earlier check reported.")
@click.option("--since", default=None, help="Judge token uses at or after this time.")
@click.option("--until", default=None, help="Judge token uses before this time.")
@click.option(
    "--suppress",
    "suppress_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="TOML file of [[suppress]] entries (user, device_session, reason, justification, "
    "expires).",
)
@pass_settings
def check(
    settings: Settings,
    detail: str,
    fmt: str,
    output: str | None,
    fail_on: str,
    new_only: bool,
    since: str | None,
    until: str | None,
    suppress_file: str | None,
) -> None:
    """Classify token uses after device-session revocations and report the findings.

    Exit 0 when no reported finding reaches --fail-on, 1 when one does, 2 for bad usage
    or an unreadable store.
    """
    import datetime as dt
    from pathlib import Path

    import polars as pl

    from vault_audit import correlate, findings_output, store
    from vault_audit.errors import UsageError

    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    if fmt == "ocsf" and detail != "findings":
        raise UsageError("--format ocsf writes findings; use it with --detail findings")
    start, end = _moment_option(since, "--since"), _moment_option(until, "--until")
    if start and end and start >= end:
        raise UsageError("--since must be before --until")
    suppressions: list[findings_output.Suppression] = []
    if suppress_file:
        suppressions, warnings = findings_output.load_suppressions(
            Path(suppress_file), today=dt.datetime.now(dt.timezone.utc).date()
        )
        for warning in warnings:
            click.echo(f"vault-audit: warning: {warning}", err=True)
    _existing_store(settings)

    with store.opened(
        settings.db,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        result = correlate.run_check(connection, settings, since=start, until=end)
        findings, suppressed = findings_output.without_suppressed(
            correlate.load_findings(connection), suppressions
        )
        if new_only:
            fresh = correlate.new_finding_ids(connection)
            findings = findings.filter(pl.col("finding_id").is_in(list(fresh)))

        if detail == "uses":
            uses = correlate.load_classified_uses(connection).filter(
                pl.col("finding_id").is_in(findings["finding_id"].to_list())
            )
            shaped = findings_output.shape(uses, findings_output.USE_FIELDS)
        else:
            shaped = findings_output.shape(findings, findings_output.FINDING_FIELDS)
        text = findings_output.write_output(
            shaped,
            fmt,
            output=Path(output) if output else None,
            kind=detail,
            title="vault-audit findings" if detail == "findings" else "vault-audit token uses",
        )
        correlate.mark_reported(connection, result.check_run_id, findings["finding_id"].to_list())

    _emit(text)
    if suppressed:
        click.echo(f"vault-audit: {suppressed} suppressed", err=True)
    failing = {"anomalous": {"anomalous"}, "needs_review": {"anomalous", "needs_review"}}
    if findings["verdict"].is_in(list(failing.get(fail_on, set()))).any():
        sys.exit(1)


@main.command()
@db_option
@policy_options
@click.option("--user", "user_id", default=None, help="Only this user's revocations.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@pass_settings
def exposure(settings: Settings, user_id: str | None, fmt: str) -> None:
    """One row per revocation: when, by whom, how long its tokens stay valid, and the
    token uses inside that window."""
    from vault_audit import correlate, findings_output, store

    _existing_store(settings)
    with store.opened(
        settings.db,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        with store.transaction(connection):
            correlate.materialize(connection, settings)
        rows = correlate.load_exposure(connection, user_id=user_id)
    shaped = findings_output.shape(rows, findings_output.EXPOSURE_FIELDS)
    _emit(
        findings_output.write_output(
            shaped, fmt, output=None, kind="exposure", title="exposure windows of revocations"
        )
    )


@main.command()
@db_option
@click.option("--user", "user_id", required=True, help="The user whose device sessions to list.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@pass_settings
def sessions(settings: Settings, user_id: str, fmt: str) -> None:
    """A user's device-session records as the user sees them: current, active or
    revoked, and when each was last seen."""
    from vault_audit import correlate, findings_output, store

    _existing_store(settings)
    with store.opened(
        settings.db,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        rows = correlate.device_session_inventory(connection, user_id)
    shaped = findings_output.shape(rows, findings_output.SESSION_FIELDS)
    _emit(
        findings_output.write_output(
            shaped, fmt, output=None, kind="sessions", title=f"device sessions of {user_id}"
        )
    )


# --- report, timeline, demo ---------------------------------------------------------------


def _selection_options(command: F) -> F:
    """``--user``, ``--session``, ``--from`` and ``--to``: what a report is about."""
    for option in reversed(
        [
            click.option("--user", "user_id", default=None, help="Report on this user."),
            click.option(
                "--session",
                "session_id",
                default=None,
                help="Report on this device-session id or Supabase session id.",
            ),
            click.option("--from", "start", default=None, help="Window start (RFC 3339)."),
            click.option("--to", "end", default=None, help="Window end (RFC 3339)."),
        ]
    ):
        command = option(command)
    return command


@main.command()
@db_option
@_selection_options
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=str),
    help="HTML file to write.",
)
@pass_settings
def report(
    settings: Settings,
    user_id: str | None,
    session_id: str | None,
    start: str | None,
    end: str | None,
    output: str,
) -> None:
    """Write one self-contained HTML investigation report for a user (--user), a
    session (--session) or a time window (--from and --to)."""
    from vault_audit.report import Selection, write_report

    selection = Selection.from_options(user_id=user_id, session_id=session_id, start=start, end=end)
    _existing_store(settings)
    result = write_report(settings, selection, output)
    click.echo(
        f"wrote {result.path} ({result.bytes / 1024:,.0f} KiB, {result.uses:,} token uses, "
        f"{result.seconds:.1f} s)"
    )
    if result.stale:
        click.echo(
            "vault-audit: warning: files were ingested after the last check; run "
            "`vault-audit check` to judge them",
            err=True,
        )


@main.command()
@db_option
@click.option("--user", "user_id", default=None, help="Show this user's timeline.")
@click.option(
    "--session",
    "session_id",
    default=None,
    help="Show the timeline of this device-session id or Supabase session id.",
)
@pass_settings
def timeline(settings: Settings, user_id: str | None, session_id: str | None) -> None:
    """Print the merged timeline of a user or a session: device-session events,
    identity-provider entries, Vault events and token uses, in time order."""
    import shutil

    from vault_audit import store
    from vault_audit.report import Selection, collect_report
    from vault_audit.timeline import render_timeline

    selection = Selection.from_options(user_id=user_id, session_id=session_id)
    _existing_store(settings)
    with store.opened(
        settings.db,
        read_only=True,
        busy_timeout=settings.busy_timeout,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
    ) as connection:
        facts = collect_report(connection, selection, settings=settings)

    color = sys.stdout.isatty()
    width = shutil.get_terminal_size((100, 24)).columns if color else 100
    click.echo(render_timeline(facts, width=width, color=color), nl=False, color=color)


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="vault-audit-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder for the simulated logs, the store and the report.",
)
@click.option("--users", default=12, show_default=True, type=click.IntRange(min=2, max=200))
@click.option("--seed", default=0, show_default=True, type=int)
def demo(out_dir: str, users: int, seed: int) -> None:
    """Simulate a small world, ingest it, check it and write the report of its most
    anomalous user."""
    from vault_audit.demo import run_demo

    result = run_demo(out_dir, users=users, seed=seed)
    for line in result.lines():
        click.echo(line)


# --- simulate ------------------------------------------------------------------------------


def _parse_rates(
    context: click.Context, parameter: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    """``ANOMALY=RATE`` pairs, each anomaly one of ``DEFAULT_RATES`` and 0 <= RATE <= 1."""
    from vault_audit.simulation.plan import DEFAULT_RATES

    known = ", ".join(f"{name} ({rate:g})" for name, rate in DEFAULT_RATES.items())
    if "list" in values:
        click.echo(f"anomalies and their default rates: {known}")
        context.exit(0)
    rates: dict[str, float] = {}
    for value in values:
        name, equals, number = value.partition("=")
        if not equals or name.strip() not in DEFAULT_RATES:
            raise click.BadParameter(f"{value!r} is not ANOMALY=RATE with ANOMALY one of {known}")
        try:
            rate = float(number)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise click.BadParameter(f"the rate of {name} must be a number from 0 to 1")
        rates[name.strip()] = rate
    return rates


@main.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder for the simulated input files, ground truth and key.",
)
@click.option("--users", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--days", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True
)
@click.option(
    "--algorithm", type=click.Choice(["ES256", "HS256"]), default="ES256", show_default=True
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="ANOMALY=RATE",
    callback=_parse_rates,
    help="Set one injected anomaly's rate, from 0 (never) to 1; repeatable. "
    "`--rate list` prints the anomalies and their default rates.",
)
def simulate(
    out_dir: str,
    users: int,
    days: int,
    seed: int,
    fmt: str,
    algorithm: str,
    rates: dict[str, float],
) -> None:
    """Write a seeded simulated world: the five input kinds, ground_truth and the key.

    ES256 worlds write jwks.json (ingest with --jwks); HS256 worlds print the export line
    of the simulated secret (ingest with --jwt-secret-env VAULT_AUDIT_SIM_SECRET).
    """
    from vault_audit.errors import UsageError
    from vault_audit.simulate import simulate_world

    try:
        summary = simulate_world(
            out_dir, users=users, days=days, seed=seed, fmt=fmt, algorithm=algorithm,
            rates=rates,
        )  # fmt: skip
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot simulate into {out_dir}: {error}") from None

    for kind, path in summary.files.items():
        rows = summary.rows.get(kind)
        click.echo(f"{kind:<18} {path}" + (f" ({rows:,} rows)" if rows is not None else ""))
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary.reasons.items())
    click.echo(f"verdicts: {reasons or 'none'}")
    if summary.jwks_path is not None:
        click.echo(f"ingest with: vault-audit ingest --jwks {summary.jwks_path} FILE...")
    elif summary.jwt_secret_env and summary.jwt_secret:
        # A simulated secret, made for this world only.
        click.echo(f"export {summary.jwt_secret_env}={summary.jwt_secret}")
        variable = summary.jwt_secret_env
        click.echo(f"ingest with: vault-audit ingest --jwt-secret-env {variable} FILE...")
