"""Load one source into the store: stage, normalize, quarantine, deduplicate, insert.

Every source, whatever its format, goes the same way inside one transaction, one
batch (about 128 MiB of input) at a time, so memory stays flat whatever the file's size.
A reader thread reads and stages the next batch while this one is landed (see
``_staged_batches``):

1. stage     the batch's records as text fields (Arrow memory; no raw token in it)
2. tokens    (access logs) each new distinct token decoded once; signatures are
             verified in rounds of 10,000 tokens as the source is read
3. normalize the kind's query types the fields and names the reason a record
             cannot be used
4. land      unusable records go to `quarantine`, records whose key the store
             already holds (or that repeat within the source) count as duplicates,
             the rest are inserted

and at the end the access log's repeated request ids are removed in one pass (its
table has no key index; see ``_drop_repeats``), the tokens are settled, a rerun's
quarantine rows already stored are dropped, and `ingest_runs` gets one row, so
accepted + duplicates + quarantined = records read, always.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from vault_audit.ingest import sources
from vault_audit.ingest.kinds import ACCESS_LOG, Kind
from vault_audit.ingest.sources import Source
from vault_audit.ingest.tokens import SPACES, SourceTokens, fingerprint_tokens
from vault_audit.ingest.verify import TokenVerifier
from vault_audit.resources import read_query
from vault_audit.store import cursor, next_id, transaction

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
    normalize = read_query(kind.query)
    params = {"snapshot_at": snapshot_at} if kind.snapshot else {}
    accepted = duplicates = quarantined = 0

    # Each batch lives in Arrow memory only while it is landed (see _select_on_batch).
    # The verifier's workers stop however the source ends.
    try:
        with transaction(connection):
            run_id = next_id(connection, "ingest_runs")
            if kind is ACCESS_LOG:
                verifier.begin(connection)

            staged = _staged_batches(connection, kind, source, verifier, progress)
            with contextlib.closing(staged):
                for stage, fields, token_map in staged:
                    if token_map is not None:
                        verifier.collect(connection, token_map)
                    normalized = _select_on_batch(connection, normalize, params, stage=fields)
                    quarantined += _quarantine_batch(
                        connection, kind, run_id, name, stage, normalized
                    )
                    landed, repeated = _land_batch(connection, kind, run_id, normalized)
                    accepted, duplicates = accepted + landed, duplicates + repeated
                    if kind.snapshot:
                        _record_snapshots(connection, kind, normalized)

            quarantined += _quarantine_rejects(connection, kind, run_id, name, source.rejects)
            if not kind.indexed:
                repeated = _drop_repeats(connection, kind, run_id)
                accepted, duplicates = accepted - repeated, duplicates + repeated
            if kind.snapshot and snapshot_at is not None:
                connection.execute(
                    "insert or ignore into snapshots values (?, ?)", [kind.name, snapshot_at]
                )
            if kind is ACCESS_LOG:
                verifier.settle(connection)

            source_sha256 = source_sha256 or sources.source_sha256(source)
            _forget_quarantined_before(connection, kind, run_id, source_sha256)

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
    finally:
        verifier.close()

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


def _stage_sql(source: Source, kind: Kind) -> str:
    """The query that stages one batch (``va_batch``) of ``source`` as text fields."""
    return sources.parse_sql(source, kind.columns)


def _staged_batches(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    source: Source,
    verifier: TokenVerifier,
    progress: sources.Progress | None,
) -> Generator[tuple[pa.Table, pa.Table, pa.Table | None], None, None]:
    """The source's batches staged (``_stage_batch``) by a reader thread, one batch
    ahead of the caller, which lands the batch before.

    Reading, parsing and fingerprinting were half of a 10.8M-row access log's ingest
    (measured: 17.5 s reading, 10.7 s parsing, about 7 s fingerprinting, of 82 s),
    done in turn with the landing. pyarrow and DuckDB let go of the GIL while they
    work, so the two overlap. The thread parses on its own connection (a cursor: the
    same database, outside the file's transaction), which sees nothing of the store:
    parsing reads only the batch. A caller that stops early must close this generator,
    which stops the thread before the cursor closes.
    """
    parse = _stage_sql(source, kind)
    reader = cursor(connection)
    try:
        create_macros(reader)
        staged = (
            _stage_batch(reader, kind, source, parse, batch, verifier.source_tokens)
            for batch in _batches_or_empty(source, progress)
        )
        yield from sources.read_ahead(staged)
    finally:
        reader.close()


def _stage_batch(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    source: Source,
    parse: str,
    batch: pa.Table,
    seen: SourceTokens,
) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    """One batch's records as text fields, blank lines left out, as given (for the
    quarantine) and trimmed (for the kind's query); for an access log, also its
    distinct tokens new to the source, for the verifier.

    The batch's tokens exist only in Arrow memory here: the staged rows carry their
    SHA-256 and form (``ingest/tokens.py``).
    """
    parsed = sources.parsed_in_arrow(source, kind.columns, batch)
    if parsed is None:
        parsed = _select_on_batch(connection, parse, va_batch=batch)
    # Filtering copies every column, so only a batch with blank lines pays for it.
    blank = pc.fill_null(pc.equal(parsed["parse_error"], "blank"), False)
    if pc.any(blank).as_py():
        parsed = parsed.filter(pc.invert(blank))
    token_map = None
    if kind is ACCESS_LOG:
        parsed, token_map = fingerprint_tokens(parsed, seen)
    return parsed, _trimmed(parsed, kind.trimmed), token_map


def _trimmed(stage: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """The staged rows with these fields trimmed of what DuckDB's trim removes; the
    quarantine still shows the fields as they were given."""
    for name in names:
        index = stage.schema.get_field_index(name)
        stage = stage.set_column(index, name, pc.utf8_trim(stage[name], SPACES))
    return stage


def _select_on_batch(
    connection: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, object] | None = None,
    *,
    va_batch: pa.Table | None = None,
    stage: pa.Table | None = None,
    normalized: pa.Table | None = None,
) -> pa.Table:
    """The result of ``sql`` over this batch's Arrow tables, which it names as the
    keyword arguments are named.

    DuckDB's replacement scan finds each table among this function's locals, and so
    adds nothing to the catalog. A view registered with ``connection.register`` inside
    the file's transaction would keep its batch alive until the commit: every batch of
    the file at once (measured: 11 GiB at 3M access-log rows).
    """
    return connection.sql(sql, params=dict(params) if params else None).to_arrow_table()


def _change_on_batch(
    connection: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[object],
    *,
    stage: pa.Table | None = None,
    normalized: pa.Table | None = None,
    new_tokens: pa.Table | None = None,
) -> int:
    """Run an insert of ``sql`` over this batch's Arrow tables (named as the keyword
    arguments are, as in ``_select_on_batch``); return the rows it inserted."""
    row = connection.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


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


def create_macros(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the ingest macros on this connection (temporary, so always anew)."""
    connection.execute(read_query("ingest/macros.sql"))


def _forget_quarantined_before(
    connection: duckdb.DuckDBPyConnection, kind: Kind, run_id: int, source_sha256: str | None
) -> None:
    """Lines of a file read before (the same bytes) that were quarantined then count
    again, but are not stored twice: this run's rows for them go. The file's hash is
    known only once it has been read, so this comes after the quarantine."""
    connection.execute(
        """
        delete from quarantine
        where ingest_run_id = $run and line in (
            select q.line from quarantine as q
            join ingest_runs as r on r.id = q.ingest_run_id
            where r.source_sha256 = $sha and r.kind = $kind
        )
        """,
        {"run": run_id, "sha": source_sha256, "kind": kind.name},
    )


def _quarantine_batch(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    run_id: int,
    name: str,
    stage: pa.Table,
    normalized: pa.Table,
) -> int:
    """Quarantine the batch's unusable records; return how many there were."""
    unusable = normalized.num_rows - normalized["reason"].null_count
    if not unusable:
        return 0
    hidden = {"line", "parse_error", "raw_text", "token_key", "token_key2", "jws_shape"}
    fields = ", ".join(
        f"'{column}', s.\"{column}\"" for column in stage.column_names if column not in hidden
    )
    _change_on_batch(
        connection,
        f"""
        insert into quarantine
        select ?, ?, ?, n.line, n.reason,
            coalesce(s.raw_text, va_mask(json_object({fields})::varchar))
        from normalized as n
        join stage as s on s.line = n.line
        where n.reason is not null
        """,
        [run_id, kind.name, name],
        stage=stage,
        normalized=normalized,
    )
    return unusable


def _quarantine_rejects(
    connection: duckdb.DuckDBPyConnection,
    kind: Kind,
    run_id: int,
    name: str,
    rejects: list[tuple[int, str, str]],
) -> int:
    """Quarantine the rows the reader itself could not split into fields."""
    if rejects:
        connection.executemany(
            """
            insert into quarantine
            select ?, ?, ?, ?, ?, va_mask(?)
            """,
            [[run_id, kind.name, name, line, reason, text] for line, reason, text in rejects],
        )
    return len(rejects)


def _land_batch(
    connection: duckdb.DuckDBPyConnection, kind: Kind, run_id: int, normalized: pa.Table
) -> tuple[int, int]:
    """Insert the batch's usable records whose key is new to it; return (inserted,
    repeats).

    A key repeated within the batch keeps its first line here. One the store already
    holds, from an earlier batch or an earlier run, is left to the table's primary key
    or, for a table without one, to ``_drop_repeats`` at the end of the source.

    The window that keeps the first line runs only when Arrow finds a repeated key in
    the batch: measured, it was half of an access log's insert time (1M rows: 1.86 s,
    0.81 s without it). It cannot be left to ``_drop_repeats``: a parallel insert does
    not hand out row ids in line order within one statement.
    """
    usable = normalized["reason"].null_count
    if not usable:
        return 0, 0
    key = ", ".join(kind.key)
    hidden = "line, reason" + (", claims" if kind is ACCESS_LOG else "")
    if kind is ACCESS_LOG:
        _add_claims_tokens(connection, normalized)
    first_of_key = f"qualify row_number() over (partition by {key} order by line) = 1"
    if not _repeats_a_key(kind, normalized, usable):
        first_of_key = ""
    accepted = _change_on_batch(
        connection,
        f"""
        insert into {kind.table} by name
        select * exclude ({hidden}), ? as ingest_run_id
        from normalized
        where reason is null
        {first_of_key}
        {"on conflict do nothing" if kind.indexed else ""}
        """,
        [run_id],
        normalized=normalized,
    )
    return accepted, usable - accepted


def _repeats_a_key(kind: Kind, normalized: pa.Table, usable: int) -> bool:
    """Whether two usable records of the batch share a key."""
    if len(kind.key) > 1:
        return True
    # The key column alone: filtering the table would copy all of its columns. unique
    # counts a null key once, as count_distinct(mode="all") does, in half its time
    # (measured: 0.03 to 0.04 s against 0.07 to 0.16 s for 260,000 keys).
    keys = normalized.column(kind.key[0]).filter(pc.is_null(normalized["reason"]))
    return len(pc.unique(keys)) < usable


# How _drop_repeats hashes a key: DuckDB's 64-bit hash (a test makes it collide).
_KEY_HASH = "hash({})"


def _drop_repeats(connection: duckdb.DuckDBPyConnection, kind: Kind, run_id: int) -> int:
    """Remove the rows this source inserted whose key the store already held or that
    an earlier batch of the source inserted; return how many.

    The first row of a key stays: an earlier run's, or else the source's first (a
    source's batches are inserted one after another, so row ids follow their order;
    within a batch ``_land_batch`` already kept the first line). Hash
    operators find the repeated keys, and only their rows are touched; DuckDB spills
    them to disk under its memory limit, so a store of any size takes another file,
    where a primary-key index had to fit in memory.

    The search runs on 64-bit hashes of the keys, a quarter of the memory of the
    keys themselves (53.5M of them in the largest log measured). A hash shared by two
    different keys only makes both candidates: the delete compares the keys.
    """
    (key,) = kind.key
    hashed = _KEY_HASH.format(key)
    run = {"run": run_id}
    connection.execute(
        f"""
        create or replace temp table va_repeated as
        select {hashed} as key_hash from {kind.table} where ingest_run_id = $run
        group by key_hash having count(*) > 1
        """,
        run,
    )
    # Against the rest of the store, only when it holds anything: the hash table is
    # built on this source's keys, and the store's are read past it once.
    held = connection.execute(
        f"select exists (from {kind.table} where ingest_run_id <> $run)", run
    ).fetchone()
    if held and held[0]:
        connection.execute(
            f"""
            insert into va_repeated
            select {hashed} from {kind.table}
            where ingest_run_id <> $run and {hashed} in (
                select {hashed} from {kind.table} where ingest_run_id = $run
            )
            """,
            run,
        )
    row = connection.execute(
        f"""
        delete from {kind.table} where rowid in (
            select rowid from (
                select rowid, row_number() over (
                    partition by {key} order by ingest_run_id = $run, rowid
                ) as copy
                from {kind.table}
                where {hashed} in (select key_hash from va_repeated)
            )
            where copy > 1
        )
        """,
        run,
    ).fetchone()
    connection.execute("drop table va_repeated")
    return int(row[0]) if row else 0


def _add_claims_tokens(connection: duckdb.DuckDBPyConnection, normalized: pa.Table) -> None:
    """Tokens known only by their claims and fingerprint: nothing to verify."""
    if normalized["claims"].null_count == normalized.num_rows:
        return
    new_tokens = _select_on_batch(
        connection,
        """
        select token_sha256, null::varchar as header_json, any_value(claims) as payload_json,
            'unverified' as signature_status, null::varchar as verified_with
        from normalized
        where reason is null and claims is not null
        group by token_sha256
        """,
        normalized=normalized,
    )
    _change_on_batch(connection, read_query("ingest/insert_tokens.sql"), [], new_tokens=new_tokens)


def _record_snapshots(
    connection: duckdb.DuckDBPyConnection, kind: Kind, normalized: pa.Table
) -> None:
    """Remember when each snapshot was taken, an empty one too: absence is evidence."""
    _change_on_batch(
        connection,
        """
        insert or ignore into snapshots
        select distinct ?, snapshot_at from normalized
        where reason is null and snapshot_at is not null
        """,
        [kind.name],
        normalized=normalized,
    )
