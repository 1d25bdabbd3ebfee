"""SQLite with indexes: the same rows loaded with ``executemany``, the same correlation in
one SQL query.

``load_files`` reads the five Parquet files in Arrow batches, decodes each distinct
token's claims once in Python, and inserts every row (times as epoch seconds, since
SQLite has no timestamp type and the inputs mix second and millisecond precision). The
token itself is not stored: uses point at a ``tokens`` row of claims by number.
``correlate`` runs ``CORRELATION`` and counts the reasons.

It implements the same part of CONTRACT.md section 3 as ``pandas_correlation``: the scope
(latest device-session record of the use's Supabase session registered at or before the
use, revoked at or before it) and rules 1, 3, 4, 7, 10 and 11 in scope, rule 1 outside.
Rules 2, 5, 6, 8 and 9 are not implemented.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

SCHEMA = (
    """create table uses (
        request_id text, at real, method text, path text, status integer, decision text,
        ip text, user_agent text, workspace_id text, resource text, token_id integer)""",
    "create table tokens (id integer primary key, sub text, session_id text, iat real, exp real)",
    """create table vault_events (
        id text, type text, occurred_at real, actor_id text, workspace_id text, ip text,
        user_agent text, target text)""",
    """create table device_sessions (
        id text, user_id text, supabase_session_id text, label text, user_agent text, ip text,
        created_at real, last_seen_at real, revoked_at real, revoked_by text,
        snapshot_at real)""",
    """create table supabase_audit (
        instance_id text, id text, payload text, created_at real, ip_address text)""",
    """create table supabase_sessions (
        id text, user_id text, created_at real, updated_at real, refreshed_at real,
        not_after real, aal text, user_agent text, ip text, snapshot_at real)""",
)

INDEXES = (
    "create index uses_by_token on uses (token_id, at)",
    "create index tokens_by_session on tokens (session_id)",
    "create index events_by_type on vault_events (type)",
    "create index snapshots_by_id on device_sessions (id)",
)

# Columns holding times, converted to epoch seconds on load.
TIME_COLUMNS = {
    "at", "occurred_at", "created_at", "last_seen_at", "revoked_at", "snapshot_at",
    "updated_at", "refreshed_at", "not_after",
}  # fmt: skip

FILES = (
    ("vault-events", "vault_events"),
    ("device-sessions", "device_sessions"),
    ("supabase-audit", "supabase_audit"),
    ("supabase-sessions", "supabase_sessions"),
    ("access-log", "uses"),
)

CORRELATION = """
with session_events as (
    select
        json_extract(target, '$.device_session_id') as device_session_id,
        json_extract(target, '$.user_id') as user_id,
        json_extract(target, '$.supabase_session_id') as supabase_session_id,
        type,
        occurred_at
    from vault_events
    where type in ('session.register', 'session.revoke')
),

record_ids as (
    select device_session_id from session_events
    union
    select id from device_sessions
),

records as (
    select
        ids.device_session_id,
        coalesce(
            (select user_id from session_events as e
             where e.device_session_id = ids.device_session_id order by occurred_at limit 1),
            (select user_id from device_sessions as s where s.id = ids.device_session_id limit 1)
        ) as user_id,
        coalesce(
            (select supabase_session_id from session_events as e
             where e.device_session_id = ids.device_session_id order by occurred_at limit 1),
            (select supabase_session_id from device_sessions as s
             where s.id = ids.device_session_id limit 1)
        ) as supabase_session_id,
        (select min(t) from (
            select occurred_at as t from session_events as e
            where e.device_session_id = ids.device_session_id and e.type = 'session.register'
            union all
            select created_at from device_sessions as s where s.id = ids.device_session_id
        )) as registered_at,
        (select min(t) from (
            select occurred_at as t from session_events as e
            where e.device_session_id = ids.device_session_id and e.type = 'session.revoke'
            union all
            select revoked_at from device_sessions as s where s.id = ids.device_session_id
        )) as revoked_at
    from record_ids as ids
),

spans as (
    select
        device_session_id,
        user_id,
        supabase_session_id,
        coalesce(registered_at, revoked_at) as registered_from,
        revoked_at,
        lead(coalesce(registered_at, revoked_at)) over (
            partition by supabase_session_id
            order by coalesce(registered_at, revoked_at), device_session_id
        ) as superseded_at
    from records
    where supabase_session_id is not null and coalesce(registered_at, revoked_at) is not null
),

scoped as (
    select
        uses.request_id, uses.at, uses.decision, tokens.sub, tokens.iat, tokens.exp,
        spans.user_id as record_user_id, spans.revoked_at
    from spans
    join tokens on tokens.session_id = spans.supabase_session_id
    join uses
      on uses.token_id = tokens.id
     and uses.at >= spans.registered_from
     and uses.at >= spans.revoked_at
     and (spans.superseded_at is null or uses.at < spans.superseded_at)
    where spans.revoked_at is not null
),

in_scope as (
    select
        case
            when decision = 'allow' and at >= exp + :leeway then 'expired_token_accepted'
            when exp - iat > :max_token_lifetime then 'lifetime_exceeds_policy'
            when sub <> record_user_id then 'subject_mismatch'
            when decision = 'deny' then 'denied_by_backend'
            when iat <= revoked_at then 'residual_token_validity'
            when iat > revoked_at then 'idp_session_still_active'
            else 'token_issue_time_unknown'
        end as reason
    from scoped
),

outside as (
    select 'expired_token_accepted' as reason
    from uses
    join tokens on tokens.id = uses.token_id
    where uses.decision = 'allow'
      and uses.at >= tokens.exp + :leeway
      and uses.request_id not in (select request_id from scoped)
)

select reason, count(*), sum(scoped) from (
    select reason, 1 as scoped from in_scope
    union all
    select reason, 0 from outside
)
group by reason
order by reason
"""


def decode_claims(token: Any) -> dict[str, Any]:
    """The JWT payload as a dict, without verifying anything; {} when it is not one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AttributeError, IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def epoch_seconds(text: Any) -> float | None:
    """RFC 3339 text (or epoch seconds) as epoch seconds; None when missing."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    return datetime.fromisoformat(text).timestamp()


def load_files(data_dir: Path, database: Path, *, batch_rows: int = 50_000) -> dict[str, Any]:
    """Create the tables, insert every row of the five files, then create the indexes."""
    phases: dict[str, float] = {}
    connection = sqlite3.connect(database)
    connection.execute("pragma journal_mode = off")
    connection.execute("pragma synchronous = off")
    for statement in SCHEMA:
        connection.execute(statement)

    mark = time.perf_counter()
    token_ids: dict[str, int] = {}
    rows = {}
    for kind, table in FILES:
        rows[table] = _insert_file(connection, data_dir / f"{kind}.parquet", table, token_ids,
                                   batch_rows)  # fmt: skip
    _insert_tokens(connection, token_ids)
    connection.commit()
    phases["insert"] = time.perf_counter() - mark

    mark = time.perf_counter()
    for statement in INDEXES:
        connection.execute(statement)
    connection.execute("analyze")
    connection.commit()
    connection.close()
    phases["index"] = time.perf_counter() - mark
    return {"rows": rows, "tokens": len(token_ids), "phases": phases}


def _insert_file(
    connection: sqlite3.Connection,
    path: Path,
    table: str,
    token_ids: dict[str, int],
    batch_rows: int,
) -> int:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    columns = [name for name in names if name != "token"]
    if table == "uses":
        columns.append("token_id")
    statement = (
        f"insert into {table} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})"
    )
    inserted = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        values = batch.to_pydict()
        for name in names:
            if name in TIME_COLUMNS:
                values[name] = [epoch_seconds(text) for text in values[name]]
        if table == "uses":
            tokens = values.pop("token")
            values["token_id"] = [token_ids.setdefault(token, len(token_ids)) for token in tokens]
        connection.executemany(statement, zip(*(values[name] for name in columns), strict=True))
        inserted += batch.num_rows
    return inserted


def _insert_tokens(connection: sqlite3.Connection, token_ids: dict[str, int]) -> None:
    rows = []
    for token, number in token_ids.items():
        claims = decode_claims(token)
        rows.append(
            (number, claims.get("sub"), claims.get("session_id"), _number(claims.get("iat")),
             _number(claims.get("exp")))
        )  # fmt: skip
    connection.executemany("insert into tokens values (?, ?, ?, ?, ?)", rows)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def correlate(database: Path, *, leeway: int = 0, max_token_lifetime: int = 3600) -> dict:
    """Run the correlation query; return the uses in scope and the counts per reason."""
    connection = sqlite3.connect(database)
    rows = connection.execute(
        CORRELATION, {"leeway": leeway, "max_token_lifetime": max_token_lifetime}
    ).fetchall()
    connection.close()
    return {
        "in_scope": sum(int(in_scope) for _, _, in_scope in rows),
        "reasons": {reason: int(count) for reason, count, _ in rows},
    }
