"""The ``vault-audit`` command: thin click commands over the library.

Exit codes: 0 ok; 1 the command worked and found what it was asked to fail on
(quarantined records, findings at ``--fail-on``); 2 bad usage, unreadable input or a
busy store. Errors are one line on standard error, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from vault_audit import __version__
from vault_audit.errors import VaultAuditError
from vault_audit.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Maps every expected error to one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VaultAuditError as error:
            click.echo(f"vault-audit: error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("vault-audit: interrupted", err=True)
            sys.exit(130)


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
    ctx.obj = load_settings()


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
