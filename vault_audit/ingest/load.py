"""Load one source into the store: stage, normalize, quarantine, deduplicate, insert.

Every source, whatever its format, goes the same way inside one transaction:

1. stage     the records as text fields (a temporary table; no raw token in it)
2. tokens    (access logs) each distinct token decoded and verified once
3. normalize the kind's query types the fields and names the reason a record
             cannot be used
4. land      unusable records go to `quarantine`, records whose key the store
             already holds (or that repeat within the source) count as duplicates,
             the rest are inserted, and `ingest_runs` gets one row

so accepted + duplicates + quarantined = records read, always.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from vault_audit.ingest import sources
from vault_audit.ingest.kinds import ACCESS_LOG, Kind
from vault_audit.ingest.sources import Source
from vault_audit.ingest.tokens import fingerprint_tokens
from vault_audit.ingest.verify import TokenVerifier
from vault_audit.resources import read_query
from vault_audit.store import next_id, scalar, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one source added to the store."""

    source: str
    kind: str
    records_read: int
    accepted: int
    duplicates: int
    quarantined: int
    seconds: float


def load_source(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    source: Source,
    *,
    verifier: TokenVerifier,
    snapshot_at: datetime | None = None,
    source_name: str | None = None,
    source_sha256: str | None = None,
    progress: sources.Progress | None = None,
) -> IngestResult:
    """Load ``source`` as ``kind`` in one transaction and return its counts."""
    started = time.perf_counter()
    name = source_name or str(source.path)
    create_macros(connection)

    # Staging touches only this connection's temporary tables, batch by batch (one
    # transaction over every batch would hold each batch's memory to the end); the
    # store itself changes in the one transaction below, or not at all.
    _stage(connection, kind, source, verifier, progress)
    connection.execute("delete from stage where parse_error = 'blank'")

    with transaction(connection):
        run_id = next_id(connection, "ingest_runs")
        if kind is ACCESS_LOG:
            verifier.settle(connection)

        connection.execute(
            "create or replace temp table normalized as " + read_query(kind.query),
            {"snapshot_at": snapshot_at} if kind.snapshot else {},
        )
        quarantined = _quarantine(connection, kind, run_id, name, source_sha256, source.rejects)
        accepted, duplicates = _land(connection, kind, run_id)
        if kind.snapshot:
            _record_snapshots(connection, kind, snapshot_at)

        records_read = accepted + duplicates + quarantined
        seconds = time.perf_counter() - started
        connection.execute(
            "insert into ingest_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                run_id,
                kind.name,
                name,
                source_sha256,
                records_read,
                accepted,
                duplicates,
                quarantined,
                seconds,
            ],
        )
        for table in ("stage", "normalized", "token_checks"):
            connection.execute(f"drop table if exists {table}")

    log.info(
        "%s: %s, %d read, %d accepted, %d duplicate, %d quarantined, %.2f s",
        name,
        kind.name,
        records_read,
        accepted,
        duplicates,
        quarantined,
        seconds,
    )
    return IngestResult(name, kind.name, records_read, accepted, duplicates, quarantined, seconds)


def load_arrow(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    table: pa.Table,
    *,
    name: str,
    verifier: TokenVerifier,
    snapshot_at: datetime | None = None,
    source_sha256: str | None = None,
) -> IngestResult:
    """Load rows that did not come from a file, through the same path as a file."""
    return load_source(
        connection,
        kind,
        sources.arrow_source(name, table),
        verifier=verifier,
        snapshot_at=snapshot_at,
        source_name=name,
        source_sha256=source_sha256,
    )


def _stage(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    source: Source,
    verifier: TokenVerifier,
    progress: sources.Progress | None,
) -> None:
    """Parse the source batch by batch into the temporary table `stage`.

    For an access log, each batch's tokens exist only in Arrow memory here: the
    stage receives their SHA-256, and the verifier the distinct ones.
    """
    parse = sources.parse_sql(source, kind.columns)
    if kind is ACCESS_LOG:
        parse = read_query("ingest/stage_access_log.sql").replace("{source}", parse)
        verifier.begin(connection)

    created = False
    for batch in _batches_or_empty(source, progress):
        connection.register("va_batch", batch)
        try:
            if kind is ACCESS_LOG:
                _stage_access_log_batch(connection, parse, verifier, created)
            elif created:
                connection.execute(f"insert into stage {parse}")
            else:
                connection.execute(f"create or replace temp table stage as {parse}")
            created = True
        finally:
            connection.unregister("va_batch")


def _stage_access_log_batch(
    connection: duckdb.DuckDBPyConnection, parse: str, verifier: TokenVerifier, created: bool
) -> None:
    """Stage one batch; its raw tokens never leave Arrow memory."""
    rows, token_map = fingerprint_tokens(connection.sql(parse).to_arrow_table())
    connection.register("va_parsed", rows)
    connection.register("va_token_map", token_map)
    try:
        verifier.collect(connection, token_map)
        insert = read_query("ingest/stage_access_log_insert.sql")
        if created:
            connection.execute(f"insert into stage {insert}")
        else:
            connection.execute(f"create or replace temp table stage as {insert}")
    finally:
        connection.unregister("va_parsed")
        connection.unregister("va_token_map")


def _batches_or_empty(source: Source, progress: sources.Progress | None) -> Iterator[pa.Table]:
    """The source's batches; an empty source still yields one empty batch, so the
    stage has its columns."""
    empty = True
    for table in sources.iter_tables(source, progress):
        empty = False
        yield table
    if empty:
        yield pa.Table.from_batches([_empty_batch(source)])


def _empty_batch(source: Source) -> pa.RecordBatch:
    if source.format == "jsonl":
        names, types = ["line", "text"], [pa.int64(), pa.binary()]
    elif source.format == "csv":
        names = ["line", *source.columns]
        types = [pa.int64()] + [pa.binary()] * len(source.columns)
    else:
        names = ["line", *source.columns]
        types = [pa.int64()] + [pa.string()] * len(source.columns)
    return pa.RecordBatch.from_arrays([pa.array([], t) for t in types], names=names)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, for the run log and report footers."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_macros(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the ingest macros on this connection (temporary, so always anew)."""
    connection.execute(read_query("ingest/macros.sql"))


def _quarantine(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    run_id: int,
    name: str,
    source_sha256: str | None,
    rejects: list[tuple[int, str, str]],
) -> int:
    # A file read before (same bytes) had these lines quarantined already: they
    # count again, but are not stored twice.
    connection.execute(
        """
        create or replace temp table va_quarantined_before as
        select distinct q.line from quarantine as q
        join ingest_runs as r on r.id = q.ingest_run_id
        where r.source_sha256 = ? and r.kind = ?
        """,
        [source_sha256, kind.name],
    )
    hidden = {"line", "parse_error", "raw_text", "token_key", "token_key2", "jws_shape"}
    fields = ", ".join(
        f"'{column}', s.\"{column}\""
        for column in _staged_columns(connection)
        if column not in hidden
    )
    connection.execute(
        f"""
        insert into quarantine
        select ?, ?, ?, n.line, n.reason,
            coalesce(s.raw_text, va_mask(json_object({fields})::varchar))
        from normalized as n
        join stage as s on s.line = n.line
        where n.reason is not null
            and n.line not in (select line from va_quarantined_before)
        """,
        [run_id, kind.name, name],
    )
    if rejects:
        connection.executemany(
            """
            insert into quarantine
            select ?, ?, ?, ?, ?, va_mask(?)
            where ? not in (select line from va_quarantined_before)
            """,
            [[run_id, kind.name, name, line, reason, text, line] for line, reason, text in rejects],
        )
    return int(
        scalar(connection, "select count(*) from normalized where reason is not null")
    ) + len(rejects)


def _land(connection: duckdb.DuckDBPyConnection, kind: Kind, run_id: int) -> tuple[int, int]:
    """Insert the usable records whose key is new; return (accepted, duplicates).

    The insert reads `normalized` directly, so no third copy of the file is made.
    """
    key = ", ".join(kind.key)
    matches = " and ".join(f"t.{column} = n.{column}" for column in kind.key)
    hidden = "line, reason" + (", claims" if kind is ACCESS_LOG else "")
    usable = int(scalar(connection, "select count(*) from normalized where reason is null"))
    before = int(scalar(connection, f"select count(*) from {kind.table}"))

    if kind is ACCESS_LOG:
        _add_claims_tokens(connection)
    connection.execute(
        f"""
        insert into {kind.table} by name
        select * exclude ({hidden}), ? as ingest_run_id
        from normalized as n
        where reason is null
            and not exists (select 1 from {kind.table} as t where {matches})
        qualify row_number() over (partition by {key} order by line) = 1
        """,
        [run_id],
    )
    accepted = int(scalar(connection, f"select count(*) from {kind.table}")) - before
    return accepted, usable - accepted


def _add_claims_tokens(connection: duckdb.DuckDBPyConnection) -> None:
    """Tokens known only by their claims and fingerprint: nothing to verify."""
    connection.execute(
        """
        create or replace temp table new_tokens as
        select token_sha256, null::varchar as header_json, any_value(claims) as payload_json,
            'unverified' as signature_status, null::varchar as verified_with
        from normalized
        where reason is null and claims is not null
        group by token_sha256
        """
    )
    connection.execute(read_query("ingest/insert_tokens.sql"))
    connection.execute("drop table new_tokens")


def _record_snapshots(
    connection: duckdb.DuckDBPyConnection, kind: Kind, snapshot_at: datetime | None
) -> None:
    """Remember when each snapshot was taken, an empty one too: absence is evidence."""
    connection.execute(
        """
        insert or ignore into snapshots
        select distinct ?, snapshot_at from normalized
        where reason is null and snapshot_at is not null
        """,
        [kind.name],
    )
    if snapshot_at is not None:
        connection.execute(
            "insert or ignore into snapshots values (?, ?)", [kind.name, snapshot_at]
        )


def _staged_columns(connection: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in connection.execute("describe stage").fetchall()]
