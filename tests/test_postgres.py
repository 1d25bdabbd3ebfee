"""`ingest --from-postgres` against a real PostgreSQL server.

The server comes from VAULT_AUDIT_TEST_POSTGRES_URL, else from the file that
scripts/services/postgres.sh writes (/tmp/vault-audit-pg/url). Without either, the tests
that need a server are skipped, except in CI (the CI variable set), where .ci/run starts
the server and a missing one is a failure. Each test gets a database of its own, with
Supabase's auth tables in their real column types and Vault's two tables.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
from adbc_driver_postgresql import dbapi

from tests.inputs import SECRET, claims, write_records
from vault_audit import store
from vault_audit.errors import PostgresError, UsageError
from vault_audit.ingest import ingest_files
from vault_audit.ingest.postgres import (
    PostgresOptions,
    ingest_postgres,
    read_postgres,
    redact_url,
    resolve_postgres_url,
)
from vault_audit.settings import Settings
from vault_audit.simulate import simulate_world

URL_FILE = Path("/tmp/vault-audit-pg/url")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "postgres.md"

SCHEMA = """
create schema auth;
create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
create table auth.audit_log_entries (
    instance_id uuid,
    id uuid not null primary key,
    payload json,
    created_at timestamptz,
    ip_address varchar(64) not null default ''
);
create table auth.sessions (
    id uuid not null primary key,
    user_id uuid not null,
    created_at timestamptz,
    updated_at timestamptz,
    factor_id uuid,
    aal auth.aal_level,
    not_after timestamptz,
    refreshed_at timestamp without time zone,
    user_agent text,
    ip inet,
    tag text
);
create table public.device_sessions (
    id text primary key,
    user_id text not null,
    supabase_session_id text,
    label text,
    user_agent text,
    ip text,
    created_at timestamptz,
    last_seen_at timestamptz,
    revoked_at timestamptz,
    revoked_by text
);
create table public.audit_events (
    id text primary key,
    type text not null,
    occurred_at timestamptz not null,
    actor_id text,
    workspace_id text,
    ip text,
    user_agent text,
    target jsonb
)
"""

INSTANCE = "00000000-0000-0000-0000-000000000000"
ALICE = "6f1c2a9e-4b7d-4e0a-9c55-2d8f1b7e3a10"
BOB = "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
ALICE_SESSION = "5e0c1d7a-2b4f-4c9e-8a1d-3f6b2c8e9d40"
BOB_SESSION = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d"
WORKSPACE = "ws-1"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"
OFFICE_IP = "198.51.100.7"
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)


# --- the server and a database per test ----------------------------------------------------


def find_server_url(environ: Mapping[str, str], url_file: Path) -> str:
    """The test server's URL; a skip where none can exist here, a failure in CI."""
    url = environ.get("VAULT_AUDIT_TEST_POSTGRES_URL", "").strip()
    if not url and url_file.is_file():
        url = url_file.read_text(encoding="utf-8").strip()
    if url:
        return url
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(
            f"CI is set but there is no PostgreSQL server: scripts/services/postgres.sh "
            f"(run by .ci/run) should have written {url_file}; see its output, or set "
            "VAULT_AUDIT_TEST_POSTGRES_URL",
            pytrace=False,
        )
    pytest.skip(
        "no PostgreSQL server can exist here: set VAULT_AUDIT_TEST_POSTGRES_URL or run "
        "scripts/services/postgres.sh"
    )


@pytest.fixture(scope="session")
def server_url() -> str:
    url = find_server_url(os.environ, URL_FILE)
    try:
        execute(url, "select 1")
    except Exception as error:
        pytest.fail(f"the test server at {redact_url(url)} does not answer: {error}")
    return url


@pytest.fixture
def database(server_url: str) -> Iterator[str]:
    """A fresh database with the four tables, empty; yields its URL."""
    name = f"va_test_{uuid.uuid4().hex[:12]}"
    execute(server_url, f"create database {name}")
    url = with_database(server_url, name)
    try:
        execute(url, *statements(SCHEMA))
        yield url
    finally:
        execute(server_url, f"drop database if exists {name} with (force)")


@pytest.fixture
def role(server_url: str, database: str) -> Iterator[tuple[str, str]]:
    """A login role (name, password) of its own in the test's database, dropped afterwards."""
    name = f"va_role_{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    yield name, password
    if execute(server_url, "select 1 from pg_roles where rolname = $1", params=[name]):
        execute(database, f"drop owned by {name}", f"drop role {name}")


def execute(url: str, *sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run statements in autocommit as the test server's administrator; return the
    rows of the last."""
    rows: list[tuple[Any, ...]] = []
    with dbapi.connect(url, autocommit=True) as connection, connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";\n") if part.strip()]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def insert(url: str, table: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Insert JSON records into ``table``, each key into the column of its name."""
    if records:
        execute(
            url,
            f"insert into {table} select * from json_populate_recordset(null::{table}, $1::json)",
            params=[json.dumps(list(records))],
        )


def settings_for(tmp_path: Path, **postgres: Any) -> Settings:
    return Settings(db=str(tmp_path / "store.duckdb"), jwt_secret_env=None, postgres=postgres)


def at(hours: float) -> str:
    return (DAY + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


# --- a small world, written by hand ---------------------------------------------------------
# Alice's laptop record is registered at 11:00 and revoked at 12:00; her token issued
# at 11:42:10 is used at 12:05:31 (residual validity) and a token the still active
# Supabase session minted at 12:30 is used at 12:40 (session still active). Bob's
# record is never revoked.


def audit_entry(action: str, actor: str, hours: float, **extra: Any) -> dict[str, Any]:
    payload = {
        "actor_id": actor,
        "actor_username": f"{actor[:4]}@example.com",
        "actor_via_sso": False,
        "action": action,
        "log_type": "token" if action.startswith("token") else "account",
        **extra,
    }
    return {
        "instance_id": INSTANCE,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{action}{actor}{hours}")),
        "payload": payload,
        "created_at": at(hours),
        "ip_address": OFFICE_IP if action == "login" else "",
    }


def hand_world() -> dict[str, list[dict[str, Any]]]:
    snapshot = at(13)
    return {
        "supabase-audit": [
            audit_entry("login", ALICE, 10.98, traits={"provider": "email"}),
            audit_entry("login", BOB, 11.5, traits={"provider": "email"}),
            audit_entry("token_refreshed", ALICE, 12.5),
            audit_entry("token_revoked", ALICE, 12.5),
        ],
        "supabase-sessions": [
            {
                "id": session,
                "user_id": user,
                "created_at": at(created),
                "updated_at": at(12.5),
                "refreshed_at": at(12.5),
                "not_after": None,
                "aal": "aal1",
                "user_agent": BROWSER,
                "ip": OFFICE_IP,
                "snapshot_at": snapshot,
            }
            for session, user, created in ((ALICE_SESSION, ALICE, 10.98), (BOB_SESSION, BOB, 11.5))
        ],
        "device-sessions": [
            {
                "id": "ds_alice_laptop",
                "user_id": ALICE,
                "supabase_session_id": ALICE_SESSION,
                "label": "Laptop",
                "user_agent": BROWSER,
                "ip": OFFICE_IP,
                "created_at": at(11),
                "last_seen_at": at(12),
                "revoked_at": at(12),
                "revoked_by": ALICE,
                "snapshot_at": snapshot,
            },
            {
                "id": "ds_bob_desktop",
                "user_id": BOB,
                "supabase_session_id": BOB_SESSION,
                "label": "Desktop",
                "user_agent": BROWSER,
                "ip": OFFICE_IP,
                "created_at": at(11.5),
                "last_seen_at": at(12.6),
                "revoked_at": None,
                "revoked_by": None,
                "snapshot_at": snapshot,
            },
        ],
        "vault-events": [
            vault_event("ev-1", "session.register", 11, ALICE, "ds_alice_laptop", ALICE_SESSION),
            vault_event("ev-2", "session.register", 11.5, BOB, "ds_bob_desktop", BOB_SESSION),
            vault_event("ev-3", "session.revoke", 12, ALICE, "ds_alice_laptop", ALICE_SESSION),
        ],
        "access-log": [
            access(
                "req-1", 12 + 5 / 60 + 31 / 3600, ALICE, ALICE_SESSION, iat=11 + 42 / 60 + 10 / 3600
            ),
            access("req-2", 12 + 40 / 60, ALICE, ALICE_SESSION, iat=12.5),
            access("req-3", 12 + 10 / 60, BOB, BOB_SESSION, iat=11.75),
        ],
    }


def vault_event(
    event_id: str, type_: str, hours: float, user: str, device: str, session: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": type_,
        "occurred_at": at(hours),
        "actor_id": user,
        "workspace_id": WORKSPACE,
        "ip": OFFICE_IP,
        "user_agent": BROWSER,
        "target": {
            "device_session_id": device,
            "user_id": user,
            "supabase_session_id": session,
            "label": "Laptop" if user == ALICE else "Desktop",
        },
    }


def access(request_id: str, hours: float, user: str, session: str, *, iat: float) -> dict[str, Any]:
    import jwt

    issued = int((DAY + timedelta(hours=iat)).timestamp())
    token = jwt.encode(
        claims(sub=user, session_id=session, iat=issued, exp=issued + 3600), SECRET, "HS256"
    )
    return {
        "request_id": request_id,
        "at": at(hours),
        "method": "GET",
        "path": "/v1/secrets/sec-1",
        "status": 200,
        "decision": "allow",
        "ip": OFFICE_IP,
        "user_agent": BROWSER,
        "workspace_id": WORKSPACE,
        "resource": "secret:sec-1",
        "token": token,
    }


def load_world(url: str, world: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Put a world's Supabase and Vault records where those systems keep them."""
    insert(url, "auth.audit_log_entries", world["supabase-audit"])
    insert(url, "auth.sessions", latest_snapshot(world["supabase-sessions"]))
    insert(url, "public.device_sessions", latest_snapshot(world["device-sessions"]))
    insert(url, "public.audit_events", world["vault-events"])


def latest_snapshot(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of the last snapshot: what the table holds now."""
    if not records:
        return []
    last = max(str(record["snapshot_at"]) for record in records)
    return [record for record in records if str(record["snapshot_at"]) == last]


# --- the same path as files ------------------------------------------------------------------


RAW_TABLES = {
    "idp_audit": "id",
    "vault_events": "id",
    "idp_session_snapshots": "id, snapshot_at",
    "device_session_snapshots": "id, snapshot_at",
    "token_uses": "request_id",
    "tokens": "token_sha256",
    "snapshots": "kind, snapshot_at",
}


def raw_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every raw table but its ingest_run_id, in key order; JSON parsed, since Postgres
    keeps json text as written and jsonb reorders keys."""
    with store.opened(path, read_only=True) as connection:
        rows = {}
        for table, order in RAW_TABLES.items():
            columns = connection.execute(
                "select column_name, data_type from duckdb_columns() where table_name = ? "
                "and column_name <> 'ingest_run_id' order by column_index",
                [table],
            ).fetchall()
            select = ", ".join(f'"{name}"' for name, _ in columns)
            is_json = [data_type == "JSON" for _, data_type in columns]
            rows[table] = [
                tuple(
                    json.loads(value) if parse and value is not None else value
                    for value, parse in zip(row, is_json, strict=True)
                )
                for row in connection.execute(
                    f"select {select} from {table} order by {order}"
                ).fetchall()
            ]
        return rows


def verdicts(path: Path, settings: Settings) -> list[tuple[Any, ...]]:
    from vault_audit.correlate import run_check

    with store.opened(path) as connection:
        run_check(connection, settings)
        return connection.execute(
            "select request_id, verdict, reason from classified_uses "
            "where verdict is not null order by request_id"
        ).fetchall()


def ingest_both_ways(
    tmp_path: Path, url: str, world: Mapping[str, Sequence[Mapping[str, Any]]], settings: Settings
) -> tuple[Path, Path]:
    """One store from Postgres (access log from its file), one from the same records as
    files, with the snapshots taken at the time the Postgres read took them."""
    files = tmp_path / "files"
    files.mkdir()
    paths = {
        kind: write_records(files / f"{kind}.jsonl", list(records))
        for kind, records in world.items()
        if records
    }
    for kind in ("supabase-sessions", "device-sessions"):
        paths[kind] = write_records(files / f"{kind}.jsonl", latest_snapshot(world[kind]))

    from_postgres = tmp_path / "from-postgres.duckdb"
    with store.opened(from_postgres) as connection:
        results = ingest_postgres(connection, url, settings=settings)
        ingest_files(connection, [paths["access-log"]], kind="access-log", settings=settings)
        snapshot_at = connection.execute("select max(snapshot_at) from snapshots").fetchall()[0][0]
    assert all(result.quarantined == 0 for result in results)

    from_files = tmp_path / "from-files.duckdb"
    with store.opened(from_files) as connection:
        for kind, path in paths.items():
            snapshot = snapshot_at if kind in ("supabase-sessions", "device-sessions") else None
            ingest_files(connection, [path], kind=kind, settings=settings, snapshot_at=snapshot)
    return from_postgres, from_files


def test_rows_read_from_postgres_land_exactly_as_the_same_rows_from_files(
    database: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, overlap_seconds=0)
    world = hand_world()
    load_world(database, world)

    from_postgres, from_files = ingest_both_ways(tmp_path, database, world, settings)

    expected = raw_rows(from_files)
    assert len(expected["idp_audit"]) == 4
    assert len(expected["device_session_snapshots"]) == 2
    assert raw_rows(from_postgres) == expected
    assert (
        verdicts(from_postgres, settings)
        == verdicts(from_files, settings)
        == [
            ("req-1", "expected_by_design", "residual_token_validity"),
            ("req-2", "expected_by_design", "idp_session_still_active"),
        ]
    )


def test_a_simulated_world_read_from_postgres_gets_the_verdicts_of_its_files(
    database: str, tmp_path: Path
) -> None:
    out = tmp_path / "world"
    # A quiet world keeps the test fast; the verdict rules still fire in it.
    summary = simulate_world(out, users=4, days=1, seed=7, algorithm="HS256", requests_per_hour=8.0)
    world = {
        kind: [
            json.loads(line) for line in (out / f"{kind}.jsonl").read_text().splitlines() if line
        ]
        for kind in (
            "supabase-audit",
            "supabase-sessions",
            "device-sessions",
            "vault-events",
            "access-log",
        )
    }
    settings = Settings(
        db=str(tmp_path / "unused.duckdb"),
        jwt_secret_env=summary.jwt_secret_env,
        postgres={"overlap_seconds": 0},
    )
    load_world(database, world)

    from_postgres, from_files = ingest_both_ways(tmp_path, database, world, settings)

    assert raw_rows(from_postgres) == raw_rows(from_files)
    found = verdicts(from_postgres, settings)
    assert found == verdicts(from_files, settings)
    assert found, "the simulated world should hold token uses in scope"


def test_a_second_ingest_reads_and_adds_only_the_new_rows(database: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, overlap_seconds=0)
    world = hand_world()
    load_world(database, world)
    with store.opened(settings.db) as connection:
        first = {
            result.kind: result
            for result in ingest_postgres(connection, database, settings=settings)
        }

        insert(
            database,
            "auth.audit_log_entries",
            [audit_entry("logout", ALICE, 14), audit_entry("login", BOB, 14)],
        )
        insert(
            database,
            "public.audit_events",
            [vault_event("ev-4", "session.revoke", 14, BOB, "ds_bob_desktop", BOB_SESSION)],
        )
        second = {
            result.kind: result
            for result in ingest_postgres(connection, database, settings=settings)
        }

        audit_rows = connection.execute("select count(*) from idp_audit").fetchall()[0][0]
        event_rows = connection.execute("select count(*) from vault_events").fetchall()[0][0]

    assert (first["supabase-audit"].accepted, first["vault-events"].accepted) == (4, 3)
    assert (second["supabase-audit"].records_read, second["supabase-audit"].accepted) == (2, 2)
    assert (second["vault-events"].records_read, second["vault-events"].accepted) == (1, 1)
    assert (audit_rows, event_rows) == (6, 4)


def test_rows_within_the_overlap_are_read_again_and_count_as_duplicates(
    database: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, overlap_seconds=3600)
    world = hand_world()
    load_world(database, world)
    with store.opened(settings.db) as connection:
        ingest_postgres(connection, database, settings=settings)
        insert(database, "auth.audit_log_entries", [audit_entry("logout", ALICE, 13)])
        second = next(
            result
            for result in ingest_postgres(connection, database, settings=settings)
            if result.kind == "supabase-audit"
        )

    # The watermark is 12:30; an hour before it takes the two 12:30 rows and 11:30's.
    assert (second.records_read, second.accepted, second.duplicates) == (4, 1, 3)


def test_each_ingest_takes_a_new_snapshot_at_the_servers_now(database: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    load_world(database, hand_world())

    with store.opened(settings.db) as connection:
        before = execute(database, "select now()")[0][0]
        ingest_postgres(connection, database, settings=settings)
        ingest_postgres(connection, database, settings=settings)
        after = execute(database, "select now()")[0][0]
        snapshots = connection.execute(
            "select kind, snapshot_at, (select count(*) from idp_session_snapshots i "
            "where i.snapshot_at = s.snapshot_at) from snapshots s order by snapshot_at, kind"
        ).fetchall()

    assert len(snapshots) == 4
    assert {kind for kind, _, _ in snapshots} == {"supabase-sessions", "device-sessions"}
    assert all(before <= when <= after for _, when, _ in snapshots)
    assert [count for kind, _, count in snapshots if kind == "supabase-sessions"] == [2, 2]


def test_the_sessions_snapshot_reads_supabases_column_types_as_the_contract_wants(
    database: str, tmp_path: Path
) -> None:
    insert(
        database,
        "auth.sessions",
        [
            {
                "id": ALICE_SESSION,
                "user_id": ALICE,
                "created_at": "2026-03-01T11:00:00+02:00",
                "updated_at": at(12),
                "refreshed_at": "2026-03-01 12:30:00",  # timestamp without time zone, in UTC
                "aal": "aal2",
                "ip": "2001:db8::1",
                "user_agent": BROWSER,
                "tag": "web",
            }
        ],
    )
    options = PostgresOptions.from_settings(settings_for(tmp_path, kinds=["supabase-sessions"]))

    table = read_postgres(database, options).tables["supabase-sessions"]

    row = table.to_pylist()[0]
    assert row["id"] == ALICE_SESSION and row["aal"] == "aal2" and row["ip"] == "2001:db8::1"
    assert row["created_at"] == datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    assert row["refreshed_at"] == datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    assert row["not_after"] is None


def test_an_unusable_audit_row_is_quarantined_and_the_rest_loads(
    database: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, kinds=["supabase-audit"])
    good = audit_entry("login", ALICE, 11)
    bad = {**audit_entry("logout", ALICE, 12), "payload": ["not", "an", "object"]}
    insert(database, "auth.audit_log_entries", [good, bad])

    with store.opened(settings.db) as connection:
        (result,) = ingest_postgres(connection, database, settings=settings)
        reasons = connection.execute("select source, reason from quarantine").fetchall()

    assert (result.records_read, result.accepted, result.quarantined) == (2, 1, 1)
    assert reasons == [(result.source, "payload is not a JSON object")]
    assert result.source.endswith("/auth.audit_log_entries")


def test_vault_tables_are_read_through_the_configured_names_and_columns(
    database: str, tmp_path: Path
) -> None:
    execute(
        database,
        "create schema vault",
        "create table vault.browser_sessions (session_key text, owner uuid, "
        "supabase_session uuid, name text, started timestamp, revoked timestamptz)",
        "insert into vault.browser_sessions values ('ds-9', $1::uuid, $2::uuid, 'Phone', "
        "'2026-03-01 08:00:00', '2026-03-01T10:00:00Z')",
        params=[ALICE, ALICE_SESSION],
    )
    settings = settings_for(
        tmp_path,
        kinds=["device-sessions"],
        device_sessions={
            "table": "vault.browser_sessions",
            "columns": {
                "id": "session_key",
                "user_id": "owner",
                "supabase_session_id": "supabase_session",
                "label": "name",
                "created_at": "started",
                "revoked_at": "revoked",
                "user_agent": "",
                "ip": "",
                "last_seen_at": "",
                "revoked_by": "",
            },
        },
    )

    with store.opened(settings.db) as connection:
        (result,) = ingest_postgres(connection, database, settings=settings)
        rows = connection.execute(
            "select id, user_id, supabase_session_id, label, created_at, revoked_at, user_agent "
            "from device_session_snapshots"
        ).fetchall()

    assert result.accepted == 1
    assert rows == [
        (
            "ds-9",
            ALICE,
            ALICE_SESSION,
            "Phone",
            datetime(2026, 3, 1, 8, tzinfo=timezone.utc),
            datetime(2026, 3, 1, 10, tzinfo=timezone.utc),
            None,
        )
    ]


# --- refusals, each one line without the password --------------------------------------------


def read_error(url: str, tmp_path: Path, **postgres: Any) -> str:
    options = PostgresOptions.from_settings(settings_for(tmp_path, **postgres))
    with pytest.raises(PostgresError) as caught:
        read_postgres(url, options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_refused_connection_is_one_line_that_hides_the_password(
    server_url: str, tmp_path: Path
) -> None:
    url = f"postgresql://reader:S3cret-Pw@127.0.0.1:{free_port()}/vault"

    message = read_error(url, tmp_path)

    assert "connection refused" in message
    assert "S3cret-Pw" not in message
    assert message.startswith(
        f"cannot connect to postgresql://127.0.0.1:{urlsplit(url).port}/vault"
    )


def test_a_wrong_password_is_one_line_that_hides_it(server_url: str, tmp_path: Path) -> None:
    url = with_login(server_url, "postgres", "wrong-Pa55word")

    message = read_error(url, tmp_path)

    assert "password was refused" in message
    assert "wrong-Pa55word" not in message


@pytest.mark.parametrize(
    ("table", "kind", "setting"),
    [
        ("public.audit_events", "vault-events", "postgres.vault_events.table"),
        ("public.device_sessions", "device-sessions", "postgres.device_sessions.table"),
    ],
)
def test_a_missing_vault_table_is_named_with_the_setting_that_fixes_it(
    database: str, tmp_path: Path, table: str, kind: str, setting: str
) -> None:
    execute(database, f"drop table {table}")

    message = read_error(database, tmp_path)

    assert f"cannot read {table}" in message and "does not exist" in message
    assert f"name Vault's table as {setting} in vault-audit.toml" in message
    assert f"leave {kind} out of postgres.kinds" in message
    assert "Supabase" not in message


@pytest.mark.parametrize(
    ("drop", "table", "kind"),
    [
        ("drop table auth.audit_log_entries", "auth.audit_log_entries", "supabase-audit"),
        ("drop table auth.sessions", "auth.sessions", "supabase-sessions"),
        ("drop schema auth cascade", "auth.audit_log_entries", "supabase-audit"),
    ],
)
def test_a_missing_supabase_table_says_to_point_at_the_supabase_database(
    database: str, tmp_path: Path, drop: str, table: str, kind: str
) -> None:
    execute(database, drop)

    message = read_error(database, tmp_path)

    assert f"cannot read {table}" in message and "does not exist" in message
    assert "its name cannot be configured" in message
    assert "the URL must point at the Supabase project's database" in message
    assert f"USAGE on schema auth and SELECT on {table}" in message
    assert f"leave {kind} out of postgres.kinds" in message
    assert "[postgres]" not in message and "name Vault's" not in message


def test_a_missing_supabase_column_is_not_said_to_be_mappable(
    database: str, tmp_path: Path
) -> None:
    execute(database, "alter table auth.sessions drop column refreshed_at")

    message = read_error(database, tmp_path, kinds=["supabase-sessions"])

    assert "cannot read auth.sessions" in message and "refreshed_at" in message
    assert "cannot be mapped" in message and "docs/postgres.md" in message
    assert "[postgres" not in message


def test_a_missing_vault_column_names_the_columns_setting(database: str, tmp_path: Path) -> None:
    execute(database, "alter table public.device_sessions drop column label")

    message = read_error(database, tmp_path, kinds=["device-sessions"])

    assert "cannot read public.device_sessions" in message and "label" in message
    assert "map the columns of public.device_sessions under" in message
    assert "[postgres.device_sessions.columns]" in message


def test_a_missing_privilege_says_to_grant_select(
    database: str, role: tuple[str, str], tmp_path: Path
) -> None:
    name, password = role
    execute(
        database,
        f"create role {name} login password '{password}'",
        f"grant usage on schema auth to {name}",
        f"grant select on auth.audit_log_entries to {name}",
    )

    message = read_error(with_login(database, name, password), tmp_path)

    assert "cannot read auth.sessions" in message
    assert "permission denied" in message and "grant SELECT" in message
    assert password not in message


def test_a_missing_usage_on_schema_auth_says_to_grant_usage(
    database: str, role: tuple[str, str], tmp_path: Path
) -> None:
    name, password = role
    execute(database, f"create role {name} login password '{password}'")

    message = read_error(with_login(database, name, password), tmp_path)

    assert "cannot read auth.audit_log_entries" in message
    assert "permission denied for schema auth" in message
    assert "grant USAGE on schema auth to this role" in message


def test_a_slow_read_stops_at_the_statement_timeout(database: str, tmp_path: Path) -> None:
    execute(
        database,
        "drop table public.device_sessions",
        "create view public.device_sessions as select d.* from (select null::text as id, "
        "null::text as user_id, null::text as supabase_session_id, null::text as label, "
        "null::text as user_agent, null::text as ip, null::timestamptz as created_at, "
        "null::timestamptz as last_seen_at, null::timestamptz as revoked_at, "
        "null::text as revoked_by) d, pg_sleep(5)",
    )

    message = read_error(database, tmp_path, statement_timeout=0.2)

    assert "cannot read public.device_sessions" in message
    assert "0.2 s statement timeout" in message


def test_nothing_is_written_even_when_a_table_would_write(database: str, tmp_path: Path) -> None:
    # A view whose read writes: the read-only transaction must refuse it.
    execute(
        database,
        "create table public.trap (n int)",
        "create function public.write_trap() returns int language sql volatile as "
        "'insert into public.trap values (1) returning n'",
        "drop table public.audit_events",
        "create view public.audit_events as select 'ev-1'::text as id, "
        "'secret.read'::text as type, now() as occurred_at, null::text as actor_id, "
        "null::text as workspace_id, null::text as ip, null::text as user_agent, "
        "null::jsonb as target from (select public.write_trap()) w",
    )

    message = read_error(database, tmp_path)

    assert "read-only transaction" in message
    assert execute(database, "select count(*) from public.trap")[0][0] == 0


def test_the_least_privilege_role_in_the_docs_reads_everything_and_nothing_else(
    database: str, role: tuple[str, str], tmp_path: Path
) -> None:
    name, password = role
    sql = re.search(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert sql, "docs/postgres.md should hold the role's SQL"
    script = sql.group(1).replace("vault_audit_reader", name).replace("CHANGE-ME", password)
    execute(database, *statements(script))
    load_world(database, hand_world())
    reader = with_login(database, name, password)
    settings = settings_for(tmp_path)

    execute(database, "create table public.secrets (id text, value text)")

    with store.opened(settings.db) as connection:
        results = ingest_postgres(connection, reader, settings=settings)

    assert [result.accepted for result in results] == [4, 2, 2, 3]
    assert execute(reader, "select current_setting('default_transaction_read_only')") == [("on",)]
    assert execute(reader, "select current_setting('statement_timeout')") == [("1min",)]
    with pytest.raises(Exception, match="permission denied for table secrets"):
        execute(reader, "select count(*) from public.secrets")


# --- the URL and its redaction ----------------------------------------------------------------


def test_a_missing_server_is_a_skip_here_and_a_failure_in_ci(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-url"

    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL server can exist here"):
        find_server_url({}, nowhere)
    with pytest.raises(pytest.skip.Exception):
        find_server_url({"CI": "false"}, nowhere)
    with pytest.raises(pytest.fail.Exception, match="CI is set but there is no PostgreSQL"):
        find_server_url({"CI": "true"}, nowhere)
    assert (
        find_server_url(
            {"CI": "true", "VAULT_AUDIT_TEST_POSTGRES_URL": "postgresql://h/d"}, nowhere
        )
        == "postgresql://h/d"
    )


def test_the_url_comes_from_a_named_variable_or_vault_audit_postgres_url() -> None:
    environ = {"PG_MAIN": "postgresql://a:b@h/db", "VAULT_AUDIT_POSTGRES_URL": "postgresql://h2/x"}

    assert resolve_postgres_url("env:PG_MAIN", environ) == "postgresql://a:b@h/db"
    assert resolve_postgres_url(None, environ) == "postgresql://h2/x"
    assert resolve_postgres_url("postgresql://h3/y", environ) == "postgresql://h3/y"
    with pytest.raises(UsageError, match="PG_OTHER"):
        resolve_postgres_url("env:PG_OTHER", environ)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://reader:pa%40ss@db.example.co:5432/postgres?sslmode=require",
            "postgresql://db.example.co:5432/postgres",
        ),
        ("postgres://reader:secret@[2001:db8::2]/vault", "postgresql://[2001:db8::2]/vault"),
        (
            "host=db.example.co port=6543 dbname=postgres user=r password='x y'",
            "postgresql://db.example.co:6543/postgres",
        ),
        ("postgresql://reader:pa@ss99word@db.example.co/vault", "postgresql://db.example.co/vault"),
        (
            "postgresql://reader:p:w@x/y@db.example.co:5432/vault",
            "postgresql://db.example.co:5432/vault",
        ),
        (
            "postgresql://reader:hunter2@corp:5432/prod@db.example.co/vault",
            "postgresql://db.example.co/vault",
        ),
        ("postgresql://reader:pa?ss@db.example.co/vault", "postgresql://db.example.co/vault"),
        (
            "postgresql://reader:pw@db.example.co/vault?application_name=me@work",
            "postgresql://db.example.co/vault",
        ),
        ("postgresql://r:pw@db1:5432,DB2:5433/vault", "postgresql://db1:5432,db2:5433/vault"),
    ],
)
def test_a_url_is_shown_without_its_user_or_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


NASTY_PASSWORDS = [
    "pa@ss99word",
    "p:w@x/y",
    "hunter2@corp:5432/prod",
    "Zq:w8@x9/y7kL:mm",
    "pa%40ss%2Fw0rd%3A99",  # percent-encoded: pa@ss/w0rd:99
    "p%zz-secret",  # an invalid escape, which libpq quotes back
]


def password_pieces(password: str) -> list[str]:
    """The password and every form and piece of it a message must not show."""
    forms = {password, unquote(password)}
    pieces = {piece for form in forms for piece in re.split(r"[@:/]", form)}
    return sorted(piece for piece in forms | pieces if len(piece) >= 4)


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_no_piece_of_a_password_with_unescaped_separators_is_shown_or_logged(
    password: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"postgresql://reader:{password}@127.0.0.1:{port}/vault"
    caplog.set_level("DEBUG")

    message = read_error(url, tmp_path, connect_timeout=2)

    assert message.startswith(f"cannot connect to postgresql://127.0.0.1:{port}/vault: ")
    shown = (message + caplog.text).lower()
    assert [piece for piece in password_pieces(password) if piece.lower() in shown] == []
    assert "reader:" not in shown


def test_a_password_in_a_connection_string_is_never_shown(tmp_path: Path) -> None:
    password = "pa@ss word:99/x"
    dsn = f"host=127.0.0.1 port={free_port()} dbname=vault user=r password='{password}'"

    message = read_error(dsn, tmp_path)

    assert "connection refused" in message
    assert [piece for piece in ("ss word", "word", password) if piece in message] == []


def test_a_piece_of_the_password_is_not_masked_out_of_the_words_of_the_reason(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql://reader:server:running:listening@127.0.0.1:{port}/vault"

    message = read_error(url, tmp_path, connect_timeout=2)

    assert message.startswith(f"cannot connect to postgresql://127.0.0.1:{port}/vault: ")
    assert "is the server running and listening on that port?" in message


def test_the_ingest_command_hides_a_password_with_an_unescaped_at_sign(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vault_audit.cli import main

    result = CliRunner().invoke(
        main,
        [
            "ingest",
            "--db",
            str(tmp_path / "cli.duckdb"),
            "--from-postgres",
            "postgresql://reader:pa@ss99word@127.0.0.1:1/db",
        ],
    )

    assert result.exit_code == 2
    assert result.output.startswith(
        "vault-audit: error: cannot connect to postgresql://127.0.0.1:1/db"
    )
    assert "ss99word" not in result.output and "pa@ss" not in result.output


def test_an_unknown_postgres_setting_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="postgres.statment_timeout"):
        PostgresOptions.from_settings(settings_for(tmp_path, statment_timeout=5))
    with pytest.raises(UsageError, match="plain Postgres identifier"):
        PostgresOptions.from_settings(
            settings_for(tmp_path, vault_events={"table": "public.audit_events; drop table x"})
        )


# --- the command ------------------------------------------------------------------------------


def test_the_ingest_command_reads_from_postgres_and_never_prints_the_password(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from vault_audit.cli import main

    load_world(database, hand_world())
    monkeypatch.setenv("SOURCE_PG", database)
    monkeypatch.chdir(tmp_path)
    password = urlsplit(database).password or ""

    result = CliRunner().invoke(
        main, ["ingest", "--db", str(tmp_path / "cli.duckdb"), "--from-postgres", "env:SOURCE_PG"]
    )
    refused = CliRunner().invoke(
        main,
        [
            "ingest",
            "--db",
            str(tmp_path / "cli.duckdb"),
            "--from-postgres",
            with_login(database, "postgres", password + "x"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "auth.audit_log_entries" in result.output and "4 accepted" in result.output
    assert refused.exit_code == 2
    assert "password was refused" in refused.output
    assert password not in result.output + refused.output


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_empty_tables_still_record_their_snapshots(database: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    with store.opened(settings.db) as connection:
        results = ingest_postgres(connection, database, settings=settings)
        snapshots = connection.execute("select kind from snapshots order by kind").fetchall()
        watermarks = connection.execute("select count(*) from postgres_watermarks").fetchall()

    assert [result.records_read for result in results] == [0, 0, 0, 0]
    assert snapshots == [("device-sessions",), ("supabase-sessions",)]
    assert watermarks == [(0,)]
