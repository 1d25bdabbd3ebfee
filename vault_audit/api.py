"""The notebook surface: ``vault_audit.open(path)`` and one method per question an
analyst asks of a store, each answered as a polars DataFrame.

The examples read a store of the fixture world (``fixtures/world``, ingested with its
JWKS and checked with the default policy) at ``path``; the test suite runs them.

    >>> import vault_audit
    >>> with vault_audit.open(path) as store:
    ...     anomalous = store.findings(verdict="anomalous")
    >>> sorted(set(anomalous["reason"]))[:2]
    ['authorization_replay_mismatch', 'expired_token_accepted']

A handle is read-only unless opened with ``read_only=False``, so a notebook can run
beside a scheduled ``vault-audit ingest`` or ``check``. DuckDB lets one process write
a file and refuses every other process meanwhile, readers included; so a read-only
handle holds no connection between calls. Each call connects read-only, reads, and
closes. When a writer holds the store at that moment, the call retries until the
writer closes, for up to ``busy_timeout`` seconds (a setting, 5 s by default), then
raises ``StoreBusyError`` saying so; run the cell again, or open the store with a
longer ``busy_timeout``. Two things do hold a connection open, and a writer waits
while they do: a relation from ``relation()`` (until ``close()``) and a read-write
handle (until ``close()``).

The frames are the store's own relations as of the last check: the device-session
records merged from Vault's events and snapshots, the verdict of every token use in
scope of a revocation, the findings, and the exposure window of each revocation.
Times are UTC. A device-session revocation is a fact about Vault's own table: the
exposure window says how long tokens of the Supabase session stayed usable after it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any

import altair as alt
import duckdb
import polars as pl

from vault_audit import report, store
from vault_audit.charts import timeline_chart
from vault_audit.correlate import CheckResult, load_exposure, run_check
from vault_audit.errors import StoreBusyError, UsageError
from vault_audit.ingest import IngestResult, ingest_files
from vault_audit.resources import read_query
from vault_audit.settings import Settings

__all__ = ["AuditStore", "open"]

log = logging.getLogger(__name__)

VERDICTS = ("anomalous", "needs_review", "expected_by_design")
_SAME_PROCESS = "different configuration"
_PARAMETER = re.compile(r"\$(\w+)")

_ROTATION_SCHEMA: dict[str, Any] = {
    "resource": pl.String,
    "reads": pl.Int64,
    "writes": pl.Int64,
    "tokens": pl.Int64,
    "first_at": pl.Datetime("us", "UTC"),
    "last_at": pl.Datetime("us", "UTC"),
    "verdict": pl.String,
}

# One row of the merged timeline, in the order a reader scans it.
_TIMELINE_SCHEMA: dict[str, Any] = {
    "at": pl.Datetime("us", "UTC"),
    "last_at": pl.Datetime("us", "UTC"),
    "source": pl.String,
    "verdict": pl.String,
    "what": pl.String,
    "actor": pl.String,
    "device": pl.String,
    "ip": pl.String,
    "user_agent": pl.String,
    "token_sha256": pl.String,
    "uses": pl.Int64,
}


class AuditStore:
    """A vault-audit store opened for questions; make one with ``vault_audit.open``.

    Every question returns a polars DataFrame (or, from ``relation``, a lazy DuckDB
    relation). Use it as a context manager, or call ``close()``.

        >>> import vault_audit
        >>> store = vault_audit.open(path)
        >>> store.read_only
        True
        >>> store.exposure_windows().height
        8
        >>> store.close()
    """

    def __init__(self, path: str | Path, *, read_only: bool, settings: Settings) -> None:
        self._path = Path(path)
        self._read_only = read_only
        self._settings = settings
        self._writer: duckdb.DuckDBPyConnection | None = None
        self._relations: duckdb.DuckDBPyConnection | None = None
        self._closed = False

        if read_only:
            # Fail now, not at the first question, when the file is not a store.
            with self._connection():
                pass
        else:
            self._writer = self._connect(read_only=False)
        log.info("store %s opened %s", self._path, "read-only" if read_only else "for writing")

    # The handle

    @property
    def path(self) -> Path:
        """The store file."""
        return self._path

    @property
    def read_only(self) -> bool:
        """Whether this handle only reads (the default)."""
        return self._read_only

    @property
    def settings(self) -> Settings:
        """The settings this handle connects and checks with."""
        return self._settings

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """Close every connection the handle holds; closing twice does nothing."""
        for connection in (self._relations, self._writer):
            if connection is not None:
                connection.close()
        self._relations = self._writer = None
        self._closed = True

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self._read_only else "read-write"
        state = ", closed" if self._closed else ""
        return f"<AuditStore {str(self._path)!r} {mode}{state}>"

    # Questions

    def device_sessions(self, user_id: str | None = None) -> pl.DataFrame:
        """The device-session records, merged from Vault's ``session.register`` and
        ``session.revoke`` events and its snapshots; only ``user_id``'s when given.

        ``registered_at`` is null for a record whose registration was never seen.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     records = store.device_sessions()
        >>> records.height, records.filter(records["revoked_at"].is_not_null()).height
        (21, 8)
        """
        with self._connection() as connection:
            _require_verdicts(connection)
            scope = _records_scope(user_id)
            return _frame(connection, "report/device_sessions.sql", scope.parameters())

    def device_inventory(self, user_id: str) -> pl.DataFrame:
        """The device list as ``user_id`` sees it in Vault: each record with its
        ``status`` (``current``, ``active`` or ``revoked``) and when it was last seen,
        most recently registered first.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     devices = store.device_inventory("e7b8a040-c924-44bb-b44e-a188ade0a0f0")
        >>> devices.select("label", "status").rows()
        [('Safari on iPhone', 'current'), ('Edge on Windows', 'revoked')]
        """
        with self._connection() as connection:
            _require_verdicts(connection)
            return _frame(connection, "device_sessions/inventory.sql", {"user_id": user_id})

    def token_uses(
        self, supabase_session_id: str | None = None, device_session_id: str | None = None
    ) -> pl.DataFrame:
        """Token uses (access-log rows) with their token's claims and, where one
        applied, their verdict; those of one Supabase session when given.

        A token names its Supabase session, never a device-session record: the uses of
        ``device_session_id`` are those of the Supabase session its record names. Give
        at most one of the two. ``in_scope`` says whether the use came after a
        revocation of its Supabase session's latest record.

        >>> import vault_audit
        >>> laptop = "23a5fb0f-5ac5-4383-83b0-22c57e7dab75"
        >>> with vault_audit.open(path) as store:
        ...     everything = store.token_uses()
        ...     uses = store.token_uses(device_session_id=laptop)
        >>> everything.height, uses.height, set(uses["supabase_session_id"])
        (401, 48, {'5de7270f-7c4a-4ba6-959a-2f9621471d2c'})
        """
        if supabase_session_id is not None and device_session_id is not None:
            raise UsageError("give supabase_session_id or device_session_id, not both")

        with self._connection() as connection:
            _require_verdicts(connection)
            sessions: tuple[str, ...] = ()
            if supabase_session_id is not None:
                sessions = (supabase_session_id,)
            elif device_session_id is not None:
                sessions = _sessions_of_record(connection, device_session_id)
            everything = supabase_session_id is None and device_session_id is None
            scope = report.Scope(report.Selection(), sessions=sessions)
            parameters = scope.parameters(all=everything)

            _execute(connection, "report/scoped_uses.sql", parameters)
            frame = (
                connection.table("report_uses")
                .order("used_at, request_id")
                .pl()
                .drop("verdict_rank")
                .rename({"used_at": "at"})
            )
            connection.execute("drop table if exists report_uses")
            return frame

    def classified_uses(
        self, verdict: str | None = None, reason: str | None = None
    ) -> pl.DataFrame:
        """Every token use that got a verdict, in time order, with its reason, its
        one-sentence explanation and the finding it belongs to.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     residual = store.classified_uses(reason="residual_token_validity")
        >>> residual.height, set(residual["verdict"])
        (13, {'expected_by_design'})
        """
        _check_verdict(verdict)
        with self._connection() as connection:
            _require_verdicts(connection)
            relation = connection.sql(read_query("uses/list.sql"))
            relation = _where(relation, verdict=verdict, reason=reason)
            return relation.pl().rename({"used_at": "at"})

    def findings(self, verdict: str | None = None) -> pl.DataFrame:
        """Findings, one per device-session record, reason and token: anomalous first,
        then needs review, then expected by design; ``verdict``'s only when given.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     review = store.findings(verdict="needs_review")
        >>> sorted(set(review["reason"]))
        ['new_client_after_revocation', 'token_minted_after_logout_scope_unknown']
        """
        _check_verdict(verdict)
        with self._connection() as connection:
            _require_verdicts(connection)
            relation = connection.sql(read_query("findings/list.sql"))
            return _where(relation, verdict=verdict).pl()

    def exposure_windows(self, user_id: str | None = None) -> pl.DataFrame:
        """The exposure window of each revocation, newest first: from the revocation
        to the latest expiry among the Supabase session's tokens issued by then
        (``window_end``), or ``open_ended`` while the session kept minting tokens.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     windows = store.exposure_windows()
        >>> windows["open_ended"].sum(), windows["uses_in_window"].sum()
        (6, 85)
        """
        with self._connection() as connection:
            _require_verdicts(connection)
            return load_exposure(connection, user_id=user_id)

    def timeline(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> pl.DataFrame:
        """The merged timeline of a user, of a session (a device-session id or a
        Supabase session id), of the window ``[start, end)``, or of the whole store:
        device-session events, Supabase Auth entries, Vault events, and one row per
        token with its uses summed up.

        The same rows as the HTML report's timeline, capped the same way (at most
        ``report.MAX_TABLE_ROWS``, the most severe token rows kept first); text from the
        logs has its control characters shown as escapes.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     rows = store.timeline(session_id="23a5fb0f-5ac5-4383-83b0-22c57e7dab75")
        >>> sorted(set(rows["source"]))
        ['authorization', 'device session', 'identity provider', 'secret access', 'token']
        """
        facts = self.report_facts(user_id, session_id, start=start, end=end)
        return _timeline_frame(facts.timeline)

    def timeline_chart(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> alt.LayerChart:
        """The report's timeline chart (Altair) of the same selection as ``timeline``:
        one lane per device-session record and per token, revocations as dashed rules,
        exposure windows shaded."""
        return timeline_chart(self.report_facts(user_id, session_id, start=start, end=end).chart)

    def report_facts(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> report.ReportFacts:
        """Everything the HTML report of a selection shows, as ``report.ReportFacts``:
        one read for the timeline, the chart, the summary and the secrets to rotate.
        Select at most one of a user, a session, or a window; none means everything."""
        selection = _selection(user_id, session_id, start, end)
        with self._connection() as connection:
            _require_verdicts(connection)
            facts = report.collect_report(connection, selection, settings=self._settings)
            connection.execute("drop table if exists report_uses")
            return facts

    def summary(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> str:
        """The report's summary in plain words: what happened to Vault's records, what
        was expected by design, what is anomalous or needs review, what to do next.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     text = store.summary(user_id="e7b8a040-c924-44bb-b44e-a188ade0a0f0")
        >>> "does not sign the browser out of Supabase" in text
        True
        """
        if user_id is None and session_id is None and start is None:
            raise UsageError("a summary needs a user_id, a session_id, or a start and an end")
        return report.summary_text(self.report_facts(user_id, session_id, start=start, end=end))

    def secrets_to_rotate(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> pl.DataFrame:
        """The secrets that allowed token uses after a revocation read or wrote, most
        severe verdict first, with reads, writes and the last access.

        >>> import vault_audit
        >>> user = "e7b8a040-c924-44bb-b44e-a188ade0a0f0"
        >>> with vault_audit.open(path) as store:
        ...     secrets = store.secrets_to_rotate(user_id=user)
        >>> secrets.select("reads", "writes", "verdict").row(0)
        (9, 0, 'anomalous')
        """
        facts = self.report_facts(user_id, session_id, start=start, end=end)
        return pl.DataFrame(facts.rotation, schema=_ROTATION_SCHEMA)

    # Anything else

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pl.DataFrame:
        """Run any query on the store, values bound as ``?`` or ``$name`` parameters.

        >>> import vault_audit
        >>> query = "select count(*) as uses from token_uses where decision = ?"
        >>> with vault_audit.open(path) as store:
        ...     denied = store.sql(query, ["deny"])
        >>> denied.item()
        47
        """
        with self._connection() as connection:
            return connection.sql(query, params=params or None).pl()

    def relation(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation over the store, for a large result to filter,
        aggregate or stream (``.fetch_arrow_reader()``) before it reaches memory.

        On a read-only handle the relation's connection stays open until ``close()``,
        and a writer (a scheduled check) waits for it meanwhile.

        >>> import vault_audit
        >>> with vault_audit.open(path) as store:
        ...     per_verdict = store.relation("select verdict, count(*) as uses "
        ...                                  "from classified_uses group by verdict")
        ...     per_verdict.order("verdict").fetchall()
        [('anomalous', 14), ('expected_by_design', 48), ('needs_review', 24)]
        """
        self._require_open()
        if self._writer is not None:
            return self._writer.sql(query, params=params or None)
        if self._relations is None:
            self._relations = self._connect(read_only=True)
        return self._relations.sql(query, params=params or None)

    # Writing (read-write handles only)

    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        kind: str | None = None,
        snapshot_at: dt.datetime | None = None,
        **settings: Any,
    ) -> list[IngestResult]:
        """Load input files into the store, as ``vault-audit ingest`` does; one
        ``IngestResult`` per file. ``settings`` (``jwks``, ``jwt_secret_env``, ...)
        override the handle's for this load."""
        connection = self._writing("ingest")
        chosen = _settings_with(self._settings, settings)
        listed = [paths] if isinstance(paths, (str, Path)) else list(paths)
        return ingest_files(connection, listed, kind=kind, settings=chosen, snapshot_at=snapshot_at)

    def check(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        **settings: Any,
    ) -> CheckResult:
        """Run the correlation, as ``vault-audit check`` does: every verdict, finding
        and exposure window is computed again. ``settings`` (``leeway``,
        ``max_token_lifetime``) override the handle's for this run."""
        connection = self._writing("check")
        return run_check(
            connection, _settings_with(self._settings, settings), since=since, until=until
        )

    # Connections

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The writer's connection, or a read-only one for this call only."""
        self._require_open()
        if self._writer is not None:
            yield self._writer
            return
        connection = self._connect(read_only=True)
        try:
            yield connection
        finally:
            connection.close()

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        settings = self._settings
        try:
            return store.connect(
                self._path,
                read_only=read_only,
                busy_timeout=settings.busy_timeout,
                memory_limit=settings.memory_limit,
                threads=settings.threads,
            )
        except StoreBusyError:
            holder = "holds it for writing" if read_only else "has it open"
            raise StoreBusyError(
                f"the store {self._path} is busy: another process {holder} (an ingest or a "
                f"scheduled check, say); waited {settings.busy_timeout:g} s. Try again when "
                "it finishes, or open the store with a longer busy_timeout"
            ) from None
        except duckdb.ConnectionException as error:
            if _SAME_PROCESS not in str(error):
                raise
            mode = "for reading" if read_only else "for writing"
            raise StoreBusyError(
                f"this Python process already has {self._path} open in another mode (a "
                "read-write handle, a relation of a read-only one, or a DuckDB connection), "
                f"so it cannot open it {mode} too; close that first, or ask through it"
            ) from None

    def _writing(self, what: str) -> duckdb.DuckDBPyConnection:
        self._require_open()
        if self._writer is None:
            raise UsageError(
                f"{what} writes to the store: open it with vault_audit.open(path, read_only=False)"
            )
        return self._writer

    def _require_open(self) -> None:
        if self._closed:
            raise UsageError(f"the store handle for {self._path} is closed")


def open(path: str | Path, *, read_only: bool = True, **settings: Any) -> AuditStore:
    """Open the vault-audit store at ``path`` for questions.

    Read-only by default: nothing is held open between calls, so a scheduled check
    can write meanwhile. ``read_only=False`` creates the store when it does not exist,
    migrates an old one, allows ``ingest`` and ``check``, and holds the store until
    ``close()``. ``settings`` are those of ``vault_audit.settings.Settings``
    (``busy_timeout``, ``memory_limit``, ``threads``, ``leeway``, ...).

        >>> import vault_audit
        >>> vault_audit.open(path)  # doctest: +ELLIPSIS
        <AuditStore '...store.duckdb' read-only>
        >>> vault_audit.open(path, colour="blue")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        vault_audit.errors.UsageError: unknown setting 'colour'; known: audience, busy_timeout, ...
    """
    chosen = _settings_with(Settings(db=str(path)), settings)
    return AuditStore(path, read_only=read_only, settings=chosen)


# Helpers


def _settings_with(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    known = sorted(item.name for item in fields(Settings) if item.name != "db")
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}; known: {', '.join(known)}")
    return base.with_options(**overrides)


def _check_verdict(verdict: str | None) -> None:
    if verdict is not None and verdict not in VERDICTS:
        raise UsageError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")


def _require_verdicts(connection: duckdb.DuckDBPyConnection) -> None:
    store.require_verdicts(
        connection,
        how="run `vault-audit check`, or check() on a handle opened with read_only=False",
    )


def _selection(
    user_id: str | None,
    session_id: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> report.Selection:
    chosen = [
        name
        for name, given in (
            ("user_id", user_id is not None),
            ("session_id", session_id is not None),
            ("start and end", start is not None or end is not None),
        )
        if given
    ]
    if len(chosen) > 1:
        raise UsageError(f"choose one of user_id, session_id, or start and end, not {chosen}")
    if (start is None) != (end is None):
        raise UsageError("a time window needs both start and end")
    if start is not None and end is not None:
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise UsageError("end must be later than start")
    return report.Selection(user_id=user_id, session_id=session_id, start=start, end=end)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise UsageError(f"give times with a time zone (UTC, say), not {moment.isoformat()}")
    return moment.astimezone(dt.timezone.utc)


def _records_scope(user_id: str | None) -> report.Scope:
    if user_id is None:
        return report.Scope(report.Selection())
    return report.Scope(report.Selection(user_id=user_id), users=(user_id,))


def _sessions_of_record(
    connection: duckdb.DuckDBPyConnection, device_session_id: str
) -> tuple[str, ...]:
    """The Supabase sessions a device-session record names (one, or none when the
    store has no such record)."""
    rows = connection.execute(
        read_query("report/scope_sessions.sql"),
        {"user_id": None, "session_id": device_session_id},
    ).fetchall()
    return tuple(sorted({session for record, session, _ in rows if record == device_session_id}))


def _execute(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: Mapping[str, Any]
) -> None:
    text = read_query(query)
    connection.execute(text, _named_in(text, parameters))


def _frame(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: Mapping[str, Any]
) -> pl.DataFrame:
    text = read_query(query)
    return connection.sql(text, params=_named_in(text, parameters)).pl()


def _named_in(text: str, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    # DuckDB refuses named parameters a statement does not use.
    named = set(_PARAMETER.findall(text))
    return {name: value for name, value in parameters.items() if name in named} or None


def _where(relation: duckdb.DuckDBPyRelation, **equal: str | None) -> duckdb.DuckDBPyRelation:
    """``relation`` with only the rows whose columns equal the values given; the
    values are bound as constants, never written into SQL text."""
    for column, value in equal.items():
        if value is not None:
            relation = relation.filter(
                duckdb.ColumnExpression(column) == duckdb.ConstantExpression(value)
            )
    return relation


def _timeline_frame(rows: list[report.TimelineRow]) -> pl.DataFrame:
    records = [
        {
            "at": row.at,
            "last_at": row.last_at,
            "source": row.source,
            "verdict": row.verdict,
            "what": row.what,
            "actor": row.actor,
            "device": row.device,
            "ip": row.ip,
            "user_agent": row.user_agent,
            "token_sha256": row.token.row["token_sha256"] if row.token else None,
            "uses": int(row.token.row["uses"]) if row.token else None,
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=_TIMELINE_SCHEMA)
