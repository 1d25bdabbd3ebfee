"""The DuckDB store: one file, typed tables, numbered migrations, one writer.

A store is a DuckDB file holding a ``vault_audit_meta`` table with the schema
version. Opening it for writing migrates it to this version's schema; opening it
read-only never changes it. DuckDB itself allows one writing process per file: a
second one waits up to ``busy_timeout`` seconds, then gets ``StoreBusyError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from vault_audit.errors import StoreBusyError, StoreError
from vault_audit.resources import resource_dir

log = logging.getLogger(__name__)

_LOCKED = "Could not set lock"
_NOT_DUCKDB = "not a valid DuckDB database file"


def migrations() -> list[tuple[int, str]]:
    """Return ``(version, sql)`` of every migration, in order."""
    found = []
    for path in sorted((resource_dir("queries") / "migrations").glob("*.sql")):
        match = re.match(r"(\d+)_", path.name)
        if match:
            found.append((int(match.group(1)), path.read_text(encoding="utf-8")))
    return found


def schema_version() -> int:
    """The schema version this vault-audit writes."""
    return migrations()[-1][0]


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    busy_timeout: float = 5.0,
    memory_limit: str | None = "2GB",
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the store at ``path``, creating and migrating it when writing.

    Raises ``StoreBusyError`` when another process keeps it locked longer than
    ``busy_timeout`` seconds, and ``StoreError`` when the file is not a store.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"no vault-audit store at {path}; run `vault-audit ingest` first")

    connection = _connect_waiting(path, read_only, busy_timeout)
    _in_utc(connection)
    if memory_limit:
        connection.execute(f"set memory_limit = '{_checked_size(memory_limit)}'")
    if threads:
        connection.execute(f"set threads = {int(threads)}")

    try:
        _check_or_migrate(connection, path, read_only)
    except BaseException:
        connection.close()
        raise
    return connection


def cursor(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to the same store, for another thread, in UTC as this one.

    A DuckDB cursor shares the database and its memory limit, but not the session's
    settings: it starts in the machine's time zone, and would render times in it.
    """
    return _in_utc(connection.cursor())


def _in_utc(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    connection.execute("set TimeZone = 'UTC'")
    return connection


@contextlib.contextmanager
def opened(path: str | Path, **options: object) -> Iterator[duckdb.DuckDBPyConnection]:
    """``connect`` as a context manager that always closes the connection."""
    connection = connect(path, **options)  # type: ignore[arg-type]
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run a block in one transaction: all of it lands, or none of it."""
    connection.execute("begin transaction")
    try:
        yield
    except BaseException:
        connection.execute("rollback")
        raise
    connection.execute("commit")


def scalar(connection: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> Any:
    """The one value a query returns, read to the end so the connection is free."""
    rows = connection.execute(sql, params).fetchall()
    return rows[0][0] if rows else None


def next_id(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    """The next integer id of ``ingest_runs`` or ``check_runs``."""
    if table not in {"ingest_runs", "check_runs"}:
        raise ValueError(table)
    return int(scalar(connection, f"select coalesce(max(id), 0) + 1 from {table}"))


# The tables (and the one view) a check derives, and a column each must have: a store
# checked by an older version lacks the newer ones until the next check rebuilds them.
DERIVED_TABLES = {
    "device_sessions": "superseded_at",
    "classified_use_facts": "rule",
    "classified_uses": "explanation",
    "findings": "finding_id",
    "revocation_exposure": "window_end",
}


def require_verdicts(connection: duckdb.DuckDBPyConnection, *, how: str) -> None:
    """Refuse a store whose verdicts are missing or were made by an older version;
    ``how`` says how to run a check (``run `vault-audit check` first``)."""
    columns = {
        (row[0], row[1])
        for row in connection.execute(
            "select table_name, column_name from duckdb_columns()"
        ).fetchall()
    }
    tables = {table for table, _ in columns}
    for table, column in DERIVED_TABLES.items():
        if table not in tables and not tables & set(DERIVED_TABLES):
            raise StoreError(f"the store holds no verdicts yet ({table} is missing); {how}")
        if table not in tables:
            raise StoreError(
                f"the store's verdicts were made by an older vault-audit (it has no {table}); {how}"
            )
        if (table, column) not in columns:
            raise StoreError(
                f"the store's verdicts were made by an older vault-audit ({table} has no "
                f"{column}); {how}"
            )


def _connect_waiting(path: Path, read_only: bool, busy_timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + max(busy_timeout, 0.0)
    delay = 0.05
    while True:
        try:
            return _connect_once(path, read_only)
        except duckdb.IOException as error:
            message = str(error)
            if _NOT_DUCKDB in message:
                raise StoreError(f"{path} is not a vault-audit store (not a DuckDB file)") from None
            if _LOCKED not in message:
                raise StoreError(f"cannot open {path}: {_first_line(message)}") from None
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"store is busy: another vault-audit process is writing to {path}; "
                    "try again when it finishes"
                ) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _connect_once(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    if path.is_file() and not _holds_duckdb(path):
        raise StoreError(f"{path} is not a vault-audit store (not a DuckDB file)")
    if read_only or path.exists():
        return duckdb.connect(str(path), read_only=read_only)

    # A new store holds token fingerprints and claims: readable by its owner only.
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)
    try:
        connection = duckdb.connect(str(path))
    finally:
        os.umask(previous)
    with contextlib.suppress(OSError):
        path.chmod(0o600)
    return connection


def _holds_duckdb(path: Path) -> bool:
    """Whether the file is empty or has a DuckDB database header. DuckDB itself opens
    a JSON Lines, CSV or Parquet file named as a database and writes nothing to it."""
    with path.open("rb") as handle:
        header = handle.read(12)
    return not header or header[8:12] == b"DUCK"


def _check_or_migrate(connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    tables = {
        row[0] for row in connection.execute("select table_name from duckdb_tables()").fetchall()
    }
    current = 0
    if "vault_audit_meta" in tables:
        value = scalar(
            connection, "select value from vault_audit_meta where key = 'schema_version'"
        )
        current = int(value) if value is not None else 0
    elif tables:
        raise StoreError(f"{path} is a DuckDB file but not a vault-audit store")

    target = schema_version()
    if current > target:
        raise StoreError(
            f"{path} was written by a newer vault-audit (schema {current}, this one reads "
            f"up to {target}); upgrade vault-audit"
        )
    if current == target:
        return
    if read_only:
        raise StoreError(f"{path} needs a schema upgrade; open it once for writing first")

    with transaction(connection):
        connection.execute(
            "create table if not exists vault_audit_meta (key varchar primary key, value varchar)"
        )
        for version, sql in migrations():
            if version > current:
                connection.execute(sql)
                log.info("store %s migrated to schema %d", path, version)
        connection.execute(
            "insert or replace into vault_audit_meta values ('schema_version', ?)", [str(target)]
        )


def _checked_size(size: str) -> str:
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*[KMGT]i?B\s*", size, flags=re.IGNORECASE):
        raise StoreError(f"memory_limit must look like 3GB or 512MiB, not {size!r}")
    return size.strip()


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
