"""Settings: a command-line option wins, then a ``VAULT_AUDIT_*`` variable, then
``vault-audit.toml`` in the working folder, then the default.

Secrets (the JWT secret, a Postgres password) are never settings: only the *name*
of the environment variable that holds one is.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vault_audit.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "vault-audit.toml"
ENV_PREFIX = "VAULT_AUDIT_"


@dataclass(frozen=True)
class Settings:
    """Every setting a command may read, with its default."""

    db: str = "vault-audit.duckdb"
    leeway: int = 0
    max_token_lifetime: int = 3600
    audience: str | None = None
    issuer: str | None = None
    jwks: str | None = None
    jwt_secret_env: str | None = None
    # DuckDB's own limit. An ingest's process peaks at about this plus 1.5 GiB (Python,
    # Arrow batches, token fingerprints). Measured on a 53.5M-row log: 3.3 to 3.4 GiB at
    # 2GB, 4.3 to 4.4 GiB at 3GB, in times within the runs' spread (869 to 1,035 s
    # against 936 to 1,005 s): the larger buffer pool only cached more.
    memory_limit: str = "2GB"
    threads: int | None = None
    busy_timeout: float = 5.0
    postgres: dict[str, Any] = field(default_factory=dict)

    def with_options(self, **options: Any) -> Settings:
        """Return these settings with every option that was given (not None)."""
        given = {name: value for name, value in options.items() if value is not None}
        return replace(self, **given)


_INTEGERS = {"leeway", "max_token_lifetime", "threads"}
_FLOATS = {"busy_timeout"}


def load_settings(cwd: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read ``vault-audit.toml`` and the environment; options are applied later."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}

    path = (cwd or Path.cwd()) / CONFIG_FILE
    if path.is_file():
        values.update(_read_config_file(path))

    for item in fields(Settings):
        raw = environ.get(ENV_PREFIX + item.name.upper())
        if raw is not None and item.name != "postgres":
            values[item.name] = raw

    return Settings(**{name: _coerce(name, value) for name, value in values.items()})


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None

    for secret_like in ("jwt_secret", "password"):
        if secret_like in document:
            raise UsageError(
                f"{path}: secrets are read only from the environment; "
                "name the variable with jwt_secret_env instead"
            )
    known = {item.name for item in fields(Settings)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise UsageError(f"{path}: unknown setting {unknown[0]!r}")
    return document


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _INTEGERS:
            return int(value)
        if name in _FLOATS:
            return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"setting {name} must be a number, not {value!r}") from None
    return value
