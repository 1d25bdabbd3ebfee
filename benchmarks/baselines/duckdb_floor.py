"""The floor: what any DuckDB user pays to load the five Parquet files and put each token
use beside the revocations of its Supabase session.

Two steps, each timed on its own by ``benchmarks/scale.py``:

- ``load_files``: ``create table ... as select * from read_parquet(?)`` for every file.
  The access log keeps the token's payload segment instead of the compact token, so no
  usable bearer token (header, payload and signature) is written to the scratch store;
  the payload is all the join needs.
- ``bare_range_join``: decode ``session_id`` from each distinct payload in SQL and join
  every use to the ``session.revoke`` events of its Supabase session at or before the
  use. No record merging, no latest-record rule, no verdicts: a lower bound, not an
  answer.
- ``store_range_join``: the same bare join on vault-audit's own store, where claims
  were decoded at ingest: each use, its token's Supabase session, and the
  ``session.revoke`` events of that session at or before the use. This is the join
  ``vault-audit check`` is set beside on the same store.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

KINDS = ("vault-events", "device-sessions", "supabase-audit", "supabase-sessions", "access-log")

BARE_RANGE_JOIN = """
with payloads as (
    select distinct token_payload from access_log
),

claims as (
    select
        token_payload,
        json_extract_string(
            decode(from_base64(rpad(
                translate(token_payload, '-_', '+/'),
                cast(ceil(length(token_payload) / 4) * 4 as integer),
                '='
            ))),
            '$.session_id'
        ) as session_id
    from payloads
),

revocations as (
    select
        json_extract_string(target, '$.supabase_session_id') as session_id,
        cast(occurred_at as timestamptz) as revoked_at
    from vault_events
    where type = 'session.revoke'
)

select count(*)
from access_log as uses
join claims on claims.token_payload = uses.token_payload
join revocations
  on revocations.session_id = claims.session_id
 and revocations.revoked_at <= cast(uses."at" as timestamptz)
"""


# Over vault-audit's tables (queries/migrations): a count, so nothing is written.
STORE_RANGE_JOIN = """
select count(*)
from token_uses as uses
join tokens on tokens.token_sha256 = uses.token_sha256
join vault_events as revocations
  on revocations.type = 'session.revoke'
 and revocations.supabase_session_id = tokens.session_id
 and revocations.occurred_at <= uses.used_at
"""


def table_name(kind: str) -> str:
    return kind.replace("-", "_")


def load_files(data_dir: Path, database: Path) -> dict[str, int]:
    """Load the five Parquet files into ``database``; return rows per table."""
    connection = duckdb.connect(str(database))
    rows = {}
    for kind in KINDS:
        path = str(data_dir / f"{kind}.parquet")
        name = table_name(kind)
        if kind == "access-log":
            sql = (
                f"create table {name} as select * exclude (token), "
                "split_part(token, '.', 2) as token_payload from read_parquet(?)"
            )
        else:
            sql = f"create table {name} as select * from read_parquet(?)"
        connection.execute(sql, [path])
        counted = connection.execute(f"select count(*) from {name}").fetchone()
        rows[name] = int(counted[0]) if counted else 0
    connection.close()
    return rows


def bare_range_join(database: Path) -> int:
    """Rows of the bare join of uses to earlier revocations of their Supabase session."""
    connection = duckdb.connect(str(database))
    row = connection.execute(BARE_RANGE_JOIN).fetchone()
    connection.close()
    return int(row[0]) if row else 0


def store_range_join(database: Path) -> int:
    """Rows of the bare join of uses to earlier revocations, on a vault-audit store."""
    connection = duckdb.connect(str(database), read_only=True)
    row = connection.execute(STORE_RANGE_JOIN).fetchone()
    connection.close()
    return int(row[0]) if row else 0
