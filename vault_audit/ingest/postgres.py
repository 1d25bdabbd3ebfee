"""Read Supabase's auth tables and Vault's own tables straight from Postgres.

One ``ingest --from-postgres`` run opens one read-only, repeatable-read transaction and
reads, all from the same snapshot:

- ``auth.audit_log_entries`` after the watermark of the last run (supabase-audit),
- ``auth.sessions`` as a snapshot taken at the server's ``now()`` (supabase-sessions),
- Vault's device-session table as a snapshot at the same time (device-sessions),
- Vault's audit-event table after its watermark (vault-events).

Each becomes an Arrow table with the contract's column names and goes through
``vault_audit.ingest.load_table``, the path files take, so normalizing, quarantine and
idempotency are the same. Rows arrive as Arrow over the ADBC PostgreSQL driver, which
streams a query through ``COPY ... TO STDOUT (FORMAT binary)``.

The connection URL carries a password: it is never logged nor shown. Every message
names the server by ``redact_url``, which keeps host, port and database only, and every
message is masked of the password and of each piece of it a server could quote.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

import pyarrow as pa
import pyarrow.compute as pc

from vault_audit.errors import PostgresError, UsageError
from vault_audit.ingest import IngestResult, load_table
from vault_audit.resources import read_query

if TYPE_CHECKING:
    import duckdb

    from vault_audit.settings import Settings

log = logging.getLogger(__name__)

URL_VARIABLE = "VAULT_AUDIT_POSTGRES_URL"
POSTGRES_KINDS = ("supabase-audit", "supabase-sessions", "device-sessions", "vault-events")
SUPABASE_AUDIT_TABLE = "auth.audit_log_entries"
SUPABASE_SESSIONS_TABLE = "auth.sessions"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_PASSWORD_IN_DSN = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# Up to the last '@' of a URL quoted in a message, so a password holding '@' is masked whole.
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)\S*@", re.IGNORECASE)
# A URL's query starts at a '?' followed by key=value (or by nothing); a '?' that is not
# (as in "pa?ss@host") belongs to a password.
_QUERY_START = re.compile(r"\?(?=$|[A-Za-z_][A-Za-z0-9_]*=)")
_HOST_AND_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(?::(\d*))?")
# A password is also masked piece by piece, as it reaches a message when libpq cuts it
# into user, host and database at an unescaped '@', ':' or '/'. Shorter pieces stay,
# or every message would lose its letters.
_SECRET_SEPARATORS = re.compile(r"[@:/\s]")
_SHORTEST_SECRET = 4
# The [postgres] settings that name each of Vault's tables; Supabase Auth's have none.
_KIND_SETTINGS = {"device-sessions": "device_sessions", "vault-events": "vault_events"}


@dataclass(frozen=True)
class TableMapping:
    """Where one of Vault's tables lives and which of its columns holds each input column.

    ``columns`` maps a contract column to a column of ``table``; a column mapped to ""
    is read as null.
    """

    table: str
    columns: Mapping[str, str]
    time_column: str = ""  # the contract column of an event table's watermark

    def select_sql(self, time_columns: frozenset[str], where: str = "") -> str:
        """The select of every contract column, as text or timestamptz.

        Identifiers cannot be bound parameters; every one here is checked against
        ``_IDENTIFIER`` and quoted, so a setting cannot inject SQL.
        """
        fields = []
        for name, column in self.columns.items():
            cast = "timestamptz" if name in time_columns else "text"
            source = f"{quote_identifier(column)}::{cast}" if column else f"null::{cast}"
            fields.append(f"{source} as {quote_identifier(name)}")
        query = f"select {', '.join(fields)} from {quote_table(self.table)}"
        return f"{query} where {where}" if where else query


DEVICE_SESSION_COLUMNS = (
    "id",
    "user_id",
    "supabase_session_id",
    "label",
    "user_agent",
    "ip",
    "created_at",
    "last_seen_at",
    "revoked_at",
    "revoked_by",
)
DEVICE_SESSION_TIMES = frozenset({"created_at", "last_seen_at", "revoked_at"})
VAULT_EVENT_COLUMNS = (
    "id",
    "type",
    "occurred_at",
    "actor_id",
    "workspace_id",
    "ip",
    "user_agent",
    "target",
)
VAULT_EVENT_TIMES = frozenset({"occurred_at"})


@dataclass(frozen=True)
class PostgresOptions:
    """The ``[postgres]`` settings of vault-audit.toml, with their defaults."""

    statement_timeout: float = 60.0  # seconds, for each statement on the server
    connect_timeout: int = 10  # seconds
    # Event rows are re-read from this many seconds before the watermark, so a row
    # committed late with an earlier created_at is still read; re-read rows count as
    # duplicates.
    overlap_seconds: float = 60.0
    kinds: tuple[str, ...] = POSTGRES_KINDS
    device_sessions: TableMapping = field(
        default_factory=lambda: TableMapping(
            "public.device_sessions", {name: name for name in DEVICE_SESSION_COLUMNS}
        )
    )
    vault_events: TableMapping = field(
        default_factory=lambda: TableMapping(
            "public.audit_events",
            {name: name for name in VAULT_EVENT_COLUMNS},
            time_column="occurred_at",
        )
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresOptions:
        """Read ``settings.postgres`` (the ``[postgres]`` table), refusing unknown keys."""
        values = dict(settings.postgres or {})
        known = {
            "statement_timeout",
            "connect_timeout",
            "overlap_seconds",
            "kinds",
            "device_sessions",
            "vault_events",
        }
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"unknown setting postgres.{unknown[0]}; known: {', '.join(sorted(known))}"
            )

        defaults = cls()
        kinds = tuple(values.get("kinds", defaults.kinds))
        for kind in kinds:
            if kind not in POSTGRES_KINDS:
                raise UsageError(
                    f"postgres.kinds: {kind!r} is not read from Postgres; "
                    f"use some of {', '.join(POSTGRES_KINDS)}"
                )
        return cls(
            statement_timeout=_positive(values, "statement_timeout", defaults.statement_timeout),
            connect_timeout=int(_positive(values, "connect_timeout", defaults.connect_timeout)),
            overlap_seconds=_positive(
                values, "overlap_seconds", defaults.overlap_seconds, zero=True
            ),
            kinds=kinds,
            device_sessions=_mapping(
                values.get("device_sessions"), defaults.device_sessions, "device_sessions"
            ),
            vault_events=_mapping(
                values.get("vault_events"), defaults.vault_events, "vault_events"
            ),
        )


@dataclass(frozen=True)
class Watermark:
    """The latest (time, id) of an event table already ingested."""

    at: datetime
    id: str


@dataclass(frozen=True)
class _After:
    """Where a read of an event table starts: rows strictly after (at, id)."""

    at: str  # a timestamptz literal, or -infinity before the first read
    id: str


@dataclass(frozen=True)
class _UrlParts:
    """A ``postgresql://`` URL cut where its user-info ends: at the last '@' before the
    host, not at the first as libpq cuts it."""

    userinfo: str
    hosts: str  # host[:port], comma-separated
    database: str
    query: str


@dataclass(frozen=True)
class _Reading:
    """The table a statement reads, for its error message."""

    kind: str
    table: str
    what: str  # "cannot read TABLE on SERVER"


@dataclass
class PostgresRead:
    """What one snapshot transaction read: an Arrow table per kind, named by source."""

    server: str
    snapshot_at: datetime
    tables: dict[str, pa.Table] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_postgres_url(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The connection URL from ``--from-postgres``: a URL, ``env:NAME``, or, when the
    option has no value, the ``VAULT_AUDIT_POSTGRES_URL`` variable."""
    environ = os.environ if environ is None else environ
    if not value:
        value = f"env:{URL_VARIABLE}"
    if not value.startswith("env:"):
        return value

    name = value[len("env:") :]
    url = environ.get(name, "")
    if not name or not url.strip():
        raise UsageError(f"environment variable {name or '(empty name)'} holds no Postgres URL")
    return url.strip()


def redact_url(url: str) -> str:
    """``postgresql://host:port/database``: the URL without user, password or options."""
    if "://" not in url:
        return _redact_dsn(url)
    parts = _split_url(url)
    hosts = []
    for entry in parts.hosts.split(","):
        match = _HOST_AND_PORT.fullmatch(entry)
        if not match or (match.group(2) and int(match.group(2)) > 65535):
            return "postgresql://(unparsable URL)"
        host = match.group(1).strip("[]").lower() or "localhost"
        port = int(match.group(2)) if match.group(2) else 0
        if ":" in host:
            host = f"[{host}]"
        hosts.append(f"{host}:{port}" if port else host)
    database = unquote(parts.database) or "(default database)"
    return f"postgresql://{','.join(hosts)}/{database}"


def ingest_postgres(
    connection: duckdb.DuckDBPyConnection,
    url: str,
    *,
    settings: Settings,
) -> list[IngestResult]:
    """Read every configured kind from Postgres and load it into the store.

    Returns one ``IngestResult`` per kind read. Event tables then move their
    watermark past the rows read; a run that fails before loading moves nothing.
    """
    options = PostgresOptions.from_settings(settings)
    server = redact_url(url)
    watermarks = {
        kind: read_watermark(connection, _source_name(server, table))
        for kind, table in _event_tables(options).items()
    }

    read = read_postgres(url, options, watermarks)

    results = []
    for kind, table in read.tables.items():
        snapshot_at = None if kind in _event_tables(options) else read.snapshot_at
        result = load_table(
            connection,
            kind,
            table,
            source=read.sources[kind],
            settings=settings,
            snapshot_at=snapshot_at,
        )
        results.append(result)
        if kind in _event_tables(options):
            time_column = "created_at" if kind == "supabase-audit" else "occurred_at"
            advance_watermark(connection, read.sources[kind], table, time_column)
    return results


def read_postgres(
    url: str,
    options: PostgresOptions,
    watermarks: Mapping[str, Watermark | None] | None = None,
) -> PostgresRead:
    """Read the configured kinds in one read-only snapshot; nothing is written."""
    # Known limitation: each table arrives whole in memory (a million audit rows are
    # about 270 MB of Arrow) because the store loads a source in one transaction; a
    # first import of a very large audit log needs that much memory.
    watermarks = watermarks or {}
    server = redact_url(url)
    started = time.perf_counter()

    with _connected(url, options, server) as cursor:
        read = PostgresRead(server=server, snapshot_at=_begin_snapshot(cursor, url, options))
        for kind in options.kinds:
            table_name, query = _query_of(kind, options)
            reading = _Reading(kind, table_name, f"cannot read {table_name} on {server}")
            if kind in ("supabase-audit", "vault-events"):
                after = _after(watermarks.get(kind), options.overlap_seconds)
                _bind_watermark(cursor, after, url, reading)
            table = _fetch(cursor, query, url, reading, options)
            read.tables[kind] = table
            read.sources[kind] = _source_name(server, table_name)
            log.debug("read %d rows of %s from %s", table.num_rows, table_name, server)

    read.seconds = time.perf_counter() - started
    log.info(
        "%s: read %d rows of %d tables in one snapshot at %s, %.2f s",
        server,
        sum(table.num_rows for table in read.tables.values()),
        len(read.tables),
        read.snapshot_at.isoformat(),
        read.seconds,
    )
    return read


def read_watermark(connection: duckdb.DuckDBPyConnection, source: str) -> Watermark | None:
    """The watermark of ``source`` in the store, or None before its first read."""
    rows = connection.execute(read_query("postgres/watermark.sql"), {"source": source}).fetchall()
    if not rows:
        return None
    return Watermark(at=rows[0][0], id=rows[0][1])


def advance_watermark(
    connection: duckdb.DuckDBPyConnection, source: str, table: pa.Table, time_column: str
) -> Watermark | None:
    """Move the watermark of ``source`` past the latest (time, id) in ``table``."""
    latest = latest_row(table, time_column)
    if latest is None:
        return None
    connection.execute(
        read_query("postgres/advance_watermark.sql"),
        {
            "source": source,
            "last_at": latest.at,
            "last_id": latest.id,
            "rows_read": table.num_rows,
        },
    ).fetchall()
    return latest


def latest_row(table: pa.Table, time_column: str) -> Watermark | None:
    """The greatest (time, id) of ``table``, ids compared as text, as Postgres does
    under the C collation; None when no row has a time."""
    times = table.column(time_column)
    latest_at = pc.max(times).as_py()
    if latest_at is None:
        return None
    at_latest = table.filter(pc.equal(times, pa.scalar(latest_at, type=times.type)))
    latest_id = pc.max(at_latest.column("id")).as_py() or ""
    return Watermark(at=latest_at, id=latest_id)


def quote_identifier(name: str) -> str:
    """``"name"``, after checking it is a plain SQL identifier."""
    if not _IDENTIFIER.fullmatch(name):
        raise UsageError(f"{name!r} is not a plain Postgres identifier (letters, digits, _)")
    return f'"{name}"'


def quote_table(name: str) -> str:
    """``"schema"."table"`` from ``schema.table`` (or ``"table"``)."""
    parts = name.split(".")
    if len(parts) > 2:
        raise UsageError(f"{name!r} is not a table name; write schema.table")
    return ".".join(quote_identifier(part) for part in parts)


def _event_tables(options: PostgresOptions) -> dict[str, str]:
    tables = {"supabase-audit": SUPABASE_AUDIT_TABLE, "vault-events": options.vault_events.table}
    return {kind: table for kind, table in tables.items() if kind in options.kinds}


def _query_of(kind: str, options: PostgresOptions) -> tuple[str, str]:
    if kind == "supabase-audit":
        return SUPABASE_AUDIT_TABLE, read_query("postgres/read_supabase_audit.sql")
    if kind == "supabase-sessions":
        return SUPABASE_SESSIONS_TABLE, read_query("postgres/read_supabase_sessions.sql")
    if kind == "device-sessions":
        mapping = options.device_sessions
        return mapping.table, mapping.select_sql(DEVICE_SESSION_TIMES)

    # Vault's audit events after the watermark, compared as read_supabase_audit.sql does.
    mapping = options.vault_events
    occurred_at = (
        f"coalesce({quote_identifier(mapping.columns['occurred_at'])}::timestamptz, '-infinity')"
    )
    after_at = "current_setting('vault_audit.after_at')::timestamptz"
    after_id = "current_setting('vault_audit.after_id')"
    id_text = f'{quote_identifier(mapping.columns["id"])}::text collate "C"'
    where = (
        f"{occurred_at} >= {after_at} and ({occurred_at} > {after_at} or {id_text} > {after_id})"
    )
    return mapping.table, mapping.select_sql(VAULT_EVENT_TIMES, where)


def _after(watermark: Watermark | None, overlap_seconds: float) -> _After:
    # -infinity also takes the rows without a time, once, so they reach quarantine.
    if watermark is None:
        return _After(at="-infinity", id="")
    if overlap_seconds > 0:
        return _After(at=(watermark.at - timedelta(seconds=overlap_seconds)).isoformat(), id="")
    return _After(at=watermark.at.isoformat(), id=watermark.id)


def _source_name(server: str, table: str) -> str:
    return f"{server}/{table}"


@contextmanager
def _connected(url: str, options: PostgresOptions, server: str) -> Iterator[Any]:
    try:
        from adbc_driver_postgresql import dbapi
    except ImportError:
        raise UsageError(
            "reading from Postgres needs the postgres extra: pip install 'vault-audit[postgres]'"
        ) from None

    try:
        connection = dbapi.connect(
            _with_connect_timeout(url, options.connect_timeout), autocommit=True
        )
    except Exception as error:
        raise _postgres_error(error, url, f"cannot connect to {server}") from None

    try:
        cursor = connection.cursor()
        try:
            yield cursor
        finally:
            _quietly_end(cursor)
            cursor.close()
    finally:
        connection.close()


def _begin_snapshot(cursor: Any, url: str, options: PostgresOptions) -> datetime:
    what = f"cannot start a read-only transaction on {redact_url(url)}"
    try:
        cursor.execute(read_query("postgres/begin_snapshot.sql"))
        cursor.execute(read_query("postgres/session_settings.sql"), _session_settings(options))
        cursor.fetchall()
        cursor.execute(read_query("postgres/now.sql"))
        row = cursor.fetchone()
    except Exception as error:
        raise _postgres_error(error, url, what, options) from None
    return _utc(row[0])


def _bind_watermark(cursor: Any, after: _After, url: str, reading: _Reading) -> None:
    try:
        cursor.execute(read_query("postgres/bind_watermark.sql"), [after.at, after.id])
        cursor.fetchall()
    except Exception as error:
        raise _postgres_error(error, url, reading.what, reading=reading) from None


def _fetch(
    cursor: Any, query: str, url: str, reading: _Reading, options: PostgresOptions
) -> pa.Table:
    try:
        cursor.execute(query)
        table = cursor.fetch_arrow_table()
    except Exception as error:
        raise _postgres_error(error, url, reading.what, options, reading=reading) from None
    # The driver labels each field with its Postgres type; the store needs only names.
    return pa.Table.from_arrays(table.columns, names=table.column_names)


def _session_settings(options: PostgresOptions) -> list[str]:
    return [str(max(int(options.statement_timeout * 1000), 1))]


def _quietly_end(cursor: Any) -> None:
    # The transaction only read; ending it changes nothing on the server.
    try:
        cursor.execute("rollback")
    except Exception:  # the connection may already be gone; closing it ends the transaction
        log.debug("rollback after reading failed; closing the connection instead")


def _postgres_error(
    error: Exception,
    url: str,
    what: str,
    options: PostgresOptions | None = None,
    *,
    reading: _Reading | None = None,
) -> PostgresError:
    """One line a user can act on, with no password and no driver noise.

    The error is classified on its own text; what is quoted of it is masked first, so
    the fixed words of a reason stay whole even when a piece of the password is in them.
    """
    lowered = str(error).lower()
    message = _redact_text(str(error), url)
    state = getattr(error, "sqlstate", None) or ""

    if "password authentication failed" in lowered or state == "28P01":
        reason = "the password was refused (password authentication failed)"
    elif reading and state in ("42P01", "3F000", "42703", "42501"):
        reason = _table_refusal(state, _server_detail(message), reading)
    elif "connection refused" in lowered:
        reason = "connection refused; is the server running and listening on that port?"
    elif "timeout expired" in lowered:
        reason = "no answer before the connect timeout"
    elif state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        reason = "the database does not exist"
    elif (
        state == "28000"
        or "no pg_hba.conf entry" in lowered
        or "role" in lowered
        and ("does not exist" in lowered)
    ):
        reason = "the server refused this login (no such role, or pg_hba.conf rejects it)"
    elif state in ("42P01", "3F000"):
        reason = f"the table does not exist ({_server_detail(message)})"
    elif state == "42703":
        reason = f"a column does not exist ({_server_detail(message)})"
    elif state == "42501":
        reason = f"permission denied ({_server_detail(message)}); see docs/postgres.md"
    elif state == "57014":
        seconds = options.statement_timeout if options else PostgresOptions().statement_timeout
        reason = (
            f"the statement ran longer than the {seconds:g} s statement timeout "
            "(postgres.statement_timeout)"
        )
    else:
        reason = _server_detail(message)

    text = f"{_redact_text(what, url)}: {reason}"
    return PostgresError(" ".join(text.split()))


def _table_refusal(state: str, detail: str, reading: _Reading) -> str:
    """Why a table could not be read, with the fix that fits it: Supabase Auth's
    tables have fixed names and columns, Vault's are named in vault-audit.toml."""
    table, kind = reading.table, reading.kind
    leave_out = f"or leave {kind} out of postgres.kinds"
    setting = _KIND_SETTINGS.get(kind)

    if state == "42501":
        schema = re.search(r"permission denied for schema (\S+)", detail)
        if schema:
            grant = f"grant USAGE on schema {schema.group(1)} to this role"
        else:
            grant = f"grant SELECT on {table} to this role"
        return f"permission denied ({detail}); {grant} (see docs/postgres.md)"
    if state == "42703":
        if setting is None:
            return (
                f"a column does not exist ({detail}); the columns of Supabase Auth's {table} "
                "cannot be mapped: vault-audit reads the columns listed in docs/postgres.md, "
                f"and an older Supabase Auth may lack some; upgrade it, {leave_out}"
            )
        return (
            f"a column does not exist ({detail}); map the columns of {table} under "
            f"[postgres.{setting}.columns] in vault-audit.toml"
        )
    if setting is None:
        return (
            f"the table does not exist ({detail}); {table} is Supabase Auth's own table and "
            "its name cannot be configured: the URL must point at the Supabase project's "
            f"database, where this role needs USAGE on schema auth and SELECT on {table} "
            f"(see docs/postgres.md), {leave_out}"
        )
    return (
        f"the table does not exist ({detail}); name Vault's table as "
        f"postgres.{setting}.table in vault-audit.toml, {leave_out}"
    )


def _server_detail(message: str) -> str:
    """The server's own sentence out of a driver message, on one line."""
    match = re.search(r"(?:ERROR|FATAL):\s+(.*)", message)
    detail = match.group(1) if match else message
    detail = detail.strip().splitlines()[0] if detail.strip() else ""
    # Driver prefixes such as "IO: [libpq] Failed to connect: connection to ... failed:".
    detail = re.sub(r"^[A-Z_]+:\s+", "", detail)
    detail = re.sub(r"^\[libpq\]\s*", "", detail)
    detail = re.sub(r"^Failed to connect:\s*", "", detail)
    detail = re.sub(r"^connection to server .*? failed:\s*", "", detail)
    return detail.strip() or "the server gave no reason"


def _redact_text(text: str, url: str) -> str:
    """``text`` with the URL's password and its pieces masked, and any other URL or DSN
    password in it too."""
    for secret in _secrets_of(url) if url else []:
        text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _PASSWORD_IN_DSN.sub(r"\1***", text)
    return " ".join(text.split())


def _split_url(url: str) -> _UrlParts:
    # Known limitation: a database name holding '@' is read as the end of the user-info,
    # because a password may hold '/' too; such a server is shown by what follows the '@'
    # (the password is still masked). Write the '@' of a database name as %40.
    rest = url.partition("://")[2]
    query = _QUERY_START.search(rest)
    before_query = rest[: query.start()] if query else rest
    userinfo, _, location = before_query.rpartition("@")
    hosts, _, database = location.partition("/")
    return _UrlParts(userinfo, hosts, database, rest[query.end() :] if query else "")


def _secrets_of(url: str) -> list[str]:
    """What a message must not show of ``url``: its password and its user-info whole,
    encoded and decoded, and every piece of the password of 4 characters or more;
    longest first, so a whole is masked before its pieces.

    The user name alone is not masked: it is no secret, and masking a user named
    "postgres" would mask every server's name.
    """
    userinfos: set[str] = set()
    if "://" in url:
        parts = _split_url(url)
        # The user-info as this module reads it, and as libpq reads it (up to the first
        # '@' before any '/'), since libpq's reading is what the server's messages quote.
        libpq = re.match(r"([^@/]*)@", url.partition("://")[2])
        userinfos = {parts.userinfo, libpq.group(1) if libpq else ""}
        userinfos = {info for info in userinfos if ":" in info}
        passwords = {info.partition(":")[2] for info in userinfos}
        passwords.update(value for key, value in parse_qsl(parts.query) if key == "password")
    else:
        passwords = {
            value[1:-1].replace("\\'", "'") if value.startswith("'") else value
            for _, value in _PASSWORD_IN_DSN.findall(url)
        }

    forms: set[str] = set()
    for whole in userinfos | passwords:
        for form in (whole, unquote(whole)):
            forms.update((form, quote(form, safe="")))
            if whole in passwords:
                forms.update(_SECRET_SEPARATORS.split(form))
    return sorted((form for form in forms if len(form) >= _SHORTEST_SECRET), key=len, reverse=True)


def _redact_dsn(dsn: str) -> str:
    pairs: dict[str, str] = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn))
    host = pairs.get("host", pairs.get("hostaddr", "localhost")).strip("'")
    port = pairs.get("port", "").strip("'")
    database = pairs.get("dbname", "").strip("'") or "(default database)"
    return f"postgresql://{host}{':' + port if port else ''}/{database}"


def _with_connect_timeout(url: str, seconds: int) -> str:
    """The URL with libpq's connect_timeout, unless it sets its own. The setting is
    appended as text: re-encoding the URL would change a password that is not escaped."""
    if "://" not in url:
        return url if "connect_timeout" in url else f"{url} connect_timeout={seconds}"
    query = _split_url(url).query
    if any(key == "connect_timeout" for key, _ in parse_qsl(query, keep_blank_values=True)):
        return url
    if query:
        return f"{url}&connect_timeout={seconds}"
    return f"{url.rstrip('?')}?connect_timeout={seconds}"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _positive(values: Mapping[str, Any], name: str, default: float, zero: bool = False) -> float:
    raw = values.get(name, default)
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise UsageError(
            f"setting postgres.{name} must be a number of seconds, not {raw!r}"
        ) from None
    if number < 0 or (number == 0 and not zero):
        raise UsageError(f"setting postgres.{name} must be more than 0, not {raw!r}")
    return number


def _mapping(raw: Any, default: TableMapping, name: str) -> TableMapping:
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        raise UsageError(f"setting postgres.{name} must be a table with table and columns")
    unknown = sorted(set(raw) - {"table", "columns"})
    if unknown:
        raise UsageError(f"unknown setting postgres.{name}.{unknown[0]}")

    columns = dict(default.columns)
    given = raw.get("columns") or {}
    if not isinstance(given, Mapping):
        raise UsageError(f"setting postgres.{name}.columns must map input columns to columns")
    for column, source in given.items():
        if column not in columns:
            raise UsageError(
                f"postgres.{name}.columns: {column!r} is not a column of this input; "
                f"use some of {', '.join(columns)}"
            )
        if source is False or source == "":
            if column in ("id", default.time_column):
                raise UsageError(f"postgres.{name}.columns: {column!r} cannot be left out")
            columns[column] = ""
            continue
        quote_identifier(str(source))
        columns[column] = str(source)

    table = str(raw.get("table", default.table))
    quote_table(table)
    return TableMapping(table=table, columns=columns, time_column=default.time_column)
