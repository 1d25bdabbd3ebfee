"""Correlation: run the verdict queries under ``queries/`` and keep their results.

``run_check`` turns the raw tables into four derived tables, replaced on every run in
one transaction: ``device_sessions`` (records merged from events and snapshots),
``classified_use_facts`` (one row per token use that got a verdict, with the facts of
its verdict; the view ``classified_uses`` adds each one's explanation when read),
``findings`` (one per device session, reason and token) and ``revocation_exposure``
(one per revocation).
The rules themselves live in SQL; this module only runs the files in order and binds
the settings as parameters.

Known limitation: ``classified_use_facts`` holds only uses that got a verdict; a use
outside the scope that none of rules 1, 2 and 6 fits leaves no row, because a large
store has millions of them and nothing to say about them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from vault_audit.backend.tokens import TokenPolicy
from vault_audit.resources import read_query
from vault_audit.settings import Settings
from vault_audit.store import next_id, scalar, transaction

log = logging.getLogger(__name__)

# (relation, query, form): "table" relations are the store's derived tables; "temp"
# ones are steps several later queries read, held for this connection only; a "script"
# runs as written: explain.sql creates the macros and the view that build each
# classified use's explanation when it is read.
_STEPS: tuple[tuple[str, str, str], ...] = (
    ("check_window", "uses/check_window.sql", "temp"),
    ("device_records", "device_sessions/merge.sql", "temp"),
    ("device_sessions", "device_sessions/spans.sql", "table"),
    ("watched_users", "authorization/watched_users.sql", "temp"),
    ("supabase_session_ends", "supabase_sessions/end_evidence.sql", "temp"),
    ("token_facts", "tokens/facts.sql", "temp"),
    ("relevant_uses", "uses/relevant.sql", "temp"),
    ("uses_in_scope", "uses/in_scope.sql", "temp"),
    ("replay_denials", "authorization/replay.sql", "temp"),
    ("logout_evidence", "uses/logout_evidence.sql", "temp"),
    ("new_clients", "uses/new_clients.sql", "temp"),
    ("classified_use_facts", "uses/classify.sql", "table"),
    ("classified_uses", "uses/explain.sql", "script"),
    ("findings", "findings/group.sql", "table"),
    ("revocation_exposure", "exposure/windows.sql", "table"),
)

_PARAMETER = re.compile(r"\$([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class CheckResult:
    """What one check run produced."""

    check_run_id: int
    classified_uses: int
    findings: int
    new_findings: int
    seconds: float


def run_check(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> CheckResult:
    """Classify token uses in ``[since, until)`` and record the run in ``check_runs``.

    Every derived table is replaced, and the run recorded, in one transaction.
    """
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc)

    with transaction(connection):
        counts = materialize(connection, settings, since=since, until=until)
        new_findings = len(new_finding_ids(connection))
        check_run_id = next_id(connection, "check_runs")
        connection.execute(
            "insert into check_runs (id, started_at, settings, findings, new_findings) "
            "values (?, ?, ?, ?, ?)",
            [
                check_run_id,
                started_at,
                json.dumps(_run_settings(settings, since, until)),
                counts["findings"],
                new_findings,
            ],
        )

    seconds = time.perf_counter() - started
    log.info(
        "check %d: %d classified uses, %d findings (%d new) in %.2f s",
        check_run_id,
        counts["classified_uses"],
        counts["findings"],
        new_findings,
        seconds,
    )
    return CheckResult(
        check_run_id=check_run_id,
        classified_uses=counts["classified_uses"],
        findings=counts["findings"],
        new_findings=new_findings,
        seconds=seconds,
    )


def materialize(
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, int]:
    """Run every step of the correlation; return the row count of each kept table.

    Runs inside the caller's transaction when there is one; ``run_check`` wraps it in
    its own.
    """
    # The backend's verifier and the simulator's ground truth read the same policy.
    policy = TokenPolicy.from_settings(settings)
    values = {
        "leeway": int(policy.leeway),
        "max_token_lifetime": int(policy.max_lifetime),
        "since": _utc(since),
        "until": _utc(until),
    }
    _drop_classified_uses_table(connection)
    counts: dict[str, int] = {}
    for relation, query, form in _STEPS:
        step_started = time.perf_counter()
        sql = read_query(query)
        if form == "script":
            connection.execute(sql)
        else:
            kind = {"table": "table", "temp": "temp table"}[form]
            connection.execute(
                f"create or replace {kind} {relation} as {sql}", _parameters_of(sql, values)
            )
        if form == "table":
            counts[relation] = int(scalar(connection, f"select count(*) from {relation}"))
        log.debug("%s: %.3f s", relation, time.perf_counter() - step_started)
    # Callers count classified uses by the name they read them by: the view's.
    counts["classified_uses"] = counts.pop("classified_use_facts")
    return counts


def _drop_classified_uses_table(connection: duckdb.DuckDBPyConnection) -> None:
    # A store checked by a version that kept explanations as a column holds
    # classified_uses as a table; it is a view now (uses/explain.sql).
    kept_as_table = scalar(
        connection,
        "select count(*) from duckdb_tables() "
        "where table_name = 'classified_uses' and schema_name = 'main' and not temporary",
    )
    if kept_as_table:
        connection.execute("drop table classified_uses")


def new_finding_ids(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The ids of current findings that no earlier check has reported."""
    rows = connection.execute(read_query("findings/unreported.sql")).fetchall()
    return {row[0] for row in rows}


def mark_reported(
    connection: duckdb.DuckDBPyConnection, check_run_id: int, finding_ids: list[str]
) -> int:
    """Remember that check ``check_run_id`` reported these findings; return how many
    were reported for the first time."""
    if not finding_ids:
        return 0
    before = int(scalar(connection, "select count(*) from reported_findings"))
    reported = pa.table({"finding_id": pa.array(finding_ids, pa.string())})
    connection.register("va_reported", reported)
    try:
        # One bulk insert: a row-at-a-time executemany cost 12 ms per finding.
        connection.execute(
            """
            insert into reported_findings (finding_id, first_check_run_id, first_reported_at)
            select distinct finding_id, ?, now() from va_reported
            on conflict do nothing
            """,
            [check_run_id],
        )
    finally:
        connection.unregister("va_reported")
    after = int(scalar(connection, "select count(*) from reported_findings"))
    return after - before


def load_findings(connection: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The findings of the last run, anomalous first."""
    return _frame(connection, "findings/list.sql")


def load_classified_uses(connection: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The classified uses of the last run in time order, each with its finding_id."""
    return _frame(connection, "uses/list.sql")


def load_exposure(
    connection: duckdb.DuckDBPyConnection, *, user_id: str | None = None
) -> pl.DataFrame:
    """Revocations with their exposure windows from the last run; ``user_id``'s only
    when given."""
    return _frame(connection, "exposure/list.sql", {"user_id": user_id})


def device_session_inventory(connection: duckdb.DuckDBPyConnection, user_id: str) -> pl.DataFrame:
    """The device-session records of ``user_id`` as the user sees them.

    Refreshes ``device_sessions`` from the raw tables first, so the connection must be
    writable.
    """
    with transaction(connection):
        refresh_device_sessions(connection)
    return _frame(connection, "device_sessions/inventory.sql", {"user_id": user_id})


def refresh_device_sessions(connection: duckdb.DuckDBPyConnection) -> None:
    """Rebuild ``device_sessions``, the merged records with their spans, from the raw
    tables; inside the caller's transaction."""
    merge, spans = read_query("device_sessions/merge.sql"), read_query("device_sessions/spans.sql")
    connection.execute(f"create or replace temp table device_records as {merge}")
    connection.execute(f"create or replace table device_sessions as {spans}")


def _frame(
    connection: duckdb.DuckDBPyConnection, query: str, values: dict[str, Any] | None = None
) -> pl.DataFrame:
    sql = read_query(query)
    return connection.sql(sql, params=_parameters_of(sql, values or {}) or None).pl()


def _parameters_of(sql: str, values: dict[str, Any]) -> dict[str, Any]:
    # DuckDB refuses named parameters a statement does not use.
    return {name: values[name] for name in set(_PARAMETER.findall(sql))}


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _run_settings(
    settings: Settings, since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    window = {name: _utc(moment) for name, moment in (("since", since), ("until", until))}
    return {
        "leeway": settings.leeway,
        "max_token_lifetime": settings.max_token_lifetime,
        **{name: moment.isoformat() if moment else None for name, moment in window.items()},
    }
