"""A small, hand-made world in a real store for the report and timeline tests.

The raw tables come from the store's own schema; the derived tables (device_sessions,
classified_use_facts, findings, revocation_exposure) are created here with the columns
the correlation step materializes, and filled with the verdicts the contract gives for
these facts, so the report is tested on its own; the view classified_uses explains
each use from its facts, as after a check.

Alice's laptop record is revoked at 12:00 by an admin. Her token issued at 11:42:10
keeps working until 12:42:10 (residual validity), a token minted at 12:30 by the still
active Supabase session is used from her browser (still active) and from a new client
whose user agent and path are hostile markup (needs review), and an expired token is
accepted at 12:20 (anomalous). Bob has a token and no revocation.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb

from vault_audit import store
from vault_audit.resources import read_query

ALICE = "6f1c2a9e-4b7d-4e0a-9c55-2d8f1b7e3a10"
BOB = "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
ADMIN = "a1d2m3i4-0000-4000-8000-00000000ad01"
ALICE_SESSION = "5e0c1d7a-2b4f-4c9e-8a1d-3f6b2c8e9d40"
BOB_SESSION = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d"
ALICE_DEVICE = "ds_laptop_01"
ALICE_PHONE = "ds_phone_02"
BOB_DEVICE = "ds_bob_01"
HOSTILE_AGENT = "<script>alert(1)</script>"
HOSTILE_PATH = '/v1/secrets/"><img src=x onerror=alert(2)>'
HOSTILE_LABEL = "Phone <svg onload=alert(3)>"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"

DERIVED_TABLES = """
create temp table device_records (
    device_session_id varchar, user_id varchar, supabase_session_id varchar,
    label varchar, user_agent varchar, ip varchar, registered_at timestamptz,
    revoked_at timestamptz, revoked_by varchar, last_seen_at timestamptz, source varchar
);
create table classified_use_facts (
    request_id varchar, used_at timestamptz, verdict varchar, reason varchar,
    severity varchar, rule integer, user_id varchar, supabase_session_id varchar,
    device_session_id varchar, revoked_at timestamptz, token_issued_at timestamptz,
    token_expires_at timestamptz, token_sha256 varchar, method varchar, path varchar,
    resource varchar, workspace_id varchar, ip varchar, user_agent varchar,
    decision varchar, in_scope boolean, sub varchar, record_user_id varchar, alg varchar,
    lifetime_seconds bigint, session_end_at timestamptz, session_end_evidence varchar,
    replay_denial varchar, replay_denial_since timestamptz, replay_role varchar,
    replay_secret_id varchar, replay_workspace_id varchar, sign_out_action varchar,
    sign_out_at timestamptz
);
create table findings (
    finding_id varchar, verdict varchar, reason varchar, severity varchar,
    user_id varchar, device_session_id varchar, supabase_session_id varchar,
    first_at timestamptz, last_at timestamptz, uses bigint, request_ids varchar[],
    explanation varchar, token_sha256 varchar
);
create table revocation_exposure (
    device_session_id varchar, supabase_session_id varchar, user_id varchar,
    revoked_at timestamptz, revoked_by varchar, window_end timestamptz,
    open_ended boolean, uses_in_window bigint, last_use_at timestamptz
);
"""

SEVERITY = {"anomalous": "high", "needs_review": "medium", "expected_by_design": "info"}


def at(clock: str, day: int = 1) -> datetime:
    """A time on 2024-05-0<day> in UTC, from ``HH:MM:SS``."""
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return datetime(2024, 5, day, hours, minutes, seconds, tzinfo=timezone.utc)


def create_derived_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the correlation step's tables, and the view that explains each classified
    use, as ``run_check`` would."""
    connection.execute(DERIVED_TABLES)
    connection.execute(read_query("uses/explain.sql"))


def build_small_world(path: Path) -> Path:
    """Write the small world into a new store at ``path`` and return the path."""
    with store.opened(path) as connection:
        create_derived_tables(connection)
        _raw_facts(connection)
        _derived_facts(connection)
    return path


def _raw_facts(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(
        "insert into ingest_runs values (1, 'vault-events', 'logs/vault-events.jsonl', ?,"
        " 6, 6, 0, 0, 0.01, ?), (2, 'access-log', 'logs/access-log.jsonl', ?, 8, 8, 0, 0,"
        " 0.02, ?)",
        ["a" * 64, at("14:00:00"), "b" * 64, at("14:00:01")],
    )
    events = [
        (
            "ev1",
            "session.register",
            at("09:00:00"),
            ALICE,
            ALICE_DEVICE,
            ALICE,
            ALICE_SESSION,
            "Work laptop",
            "203.0.113.7",
            BROWSER,
        ),
        (
            "ev2",
            "session.register",
            at("09:05:00"),
            ALICE,
            ALICE_PHONE,
            ALICE,
            ALICE_SESSION,
            HOSTILE_LABEL,
            "198.51.100.4",
            "Vault iOS/2.1",
        ),
        (
            "ev3",
            "session.revoke",
            at("12:00:00"),
            ADMIN,
            ALICE_DEVICE,
            ALICE,
            ALICE_SESSION,
            "Work laptop",
            "192.0.2.10",
            "Mozilla/5.0 admin console",
        ),
        (
            "ev4",
            "session.register",
            at("08:00:00"),
            BOB,
            BOB_DEVICE,
            BOB,
            BOB_SESSION,
            "Bob desktop",
            "192.0.2.44",
            BROWSER,
        ),
    ]
    for event_id, kind, when, actor, device, user, session, label, ip, agent in events:
        connection.execute(
            "insert into vault_events (id, type, occurred_at, actor_id, workspace_id, ip,"
            " user_agent, device_session_id, target_user_id, supabase_session_id, label,"
            " ingest_run_id) values (?, ?, ?, ?, 'ws_1', ?, ?, ?, ?, ?, ?, 1)",
            [event_id, kind, when, actor, ip, agent, device, user, session, label],
        )
    connection.execute(
        "insert into vault_events (id, type, occurred_at, actor_id, workspace_id, ip,"
        " user_agent, secret_id, ingest_run_id) values"
        " ('ev5', 'secret.read', ?, ?, 'ws_1', '203.0.113.7', ?, 'db-password', 1),"
        " ('ev6', 'secret.update', ?, ?, 'ws_1', '203.0.113.7', ?, 'stripe-key', 1)",
        [at("12:05:31"), ALICE, BROWSER, at("12:20:00"), ALICE, BROWSER],
    )

    tokens = [
        ("1" * 64, ALICE, ALICE_SESSION, at("11:42:10"), at("12:42:10"), "valid"),
        ("2" * 64, ALICE, ALICE_SESSION, at("12:30:00"), at("13:30:00"), "valid"),
        ("3" * 64, ALICE, ALICE_SESSION, at("11:00:00"), at("12:00:00"), "valid"),
        ("4" * 64, BOB, BOB_SESSION, at("10:00:00"), at("11:00:00"), "valid"),
    ]
    for sha, sub, session, issued, expires, status in tokens:
        connection.execute(
            "insert into tokens (token_sha256, alg, kid, sub, session_id, role, aud, issued_at,"
            " expires_at, lifetime_seconds, signature_status) values"
            " (?, 'ES256', 'key-1', ?, ?, 'authenticated', 'authenticated', ?, ?, 3600, ?)",
            [sha, sub, session, issued, expires, status],
        )

    for use in _USES:
        request_id, when, method, path, decision, ip, agent, resource, sha = use[:9]
        connection.execute(
            "insert into token_uses values (?, ?, ?, ?, ?, ?, ?, ?, 'ws_1', ?, ?, 2)",
            [
                request_id,
                when,
                method,
                path,
                200 if decision == "allow" else 403,
                decision,
                ip,
                agent,
                resource,
                sha,
            ],
        )

    audit = [
        ("au1", at("08:59:00"), "login", ALICE, "alice@example.com", "account", None),
        ("au2", at("12:29:59"), "token_refreshed", ALICE, "alice@example.com", "token", None),
        ("au3", at("13:30:00"), "logout", ALICE, "alice@example.com", "account", None),
        ("au4", at("07:59:00"), "login", BOB, "bob@example.com", "account", None),
    ]
    for entry_id, when, action, actor, username, log_type, traits in audit:
        connection.execute(
            "insert into idp_audit (id, instance_id, created_at, ip_address, action, actor_id,"
            " actor_username, log_type, traits_user_id, ingest_run_id) values"
            " (?, '00000000-0000-0000-0000-000000000000', ?, '', ?, ?, ?, ?, ?, 3)",
            [entry_id, when, action, actor, username, log_type, traits],
        )


# request_id, at, method, path, decision, ip, user agent, resource, token, verdict, reason
_USES = [
    (
        "req-01",
        at("11:50:00"),
        "GET",
        "/v1/secrets/db-password",
        "allow",
        "203.0.113.7",
        BROWSER,
        "secret:db-password",
        "1" * 64,
        None,
        None,
    ),
    (
        "req-02",
        at("12:05:31"),
        "GET",
        "/v1/secrets/db-password",
        "allow",
        "203.0.113.7",
        BROWSER,
        "secret:db-password",
        "1" * 64,
        "expected_by_design",
        "residual_token_validity",
    ),
    (
        "req-03",
        at("12:10:00"),
        "DELETE",
        "/v1/secrets/db-password",
        "deny",
        "203.0.113.7",
        BROWSER,
        "secret:db-password",
        "1" * 64,
        "expected_by_design",
        "denied_by_backend",
    ),
    (
        "req-04",
        at("12:20:00"),
        "PUT",
        "/v1/secrets/stripe-key",
        "allow",
        "203.0.113.7",
        BROWSER,
        "secret:stripe-key",
        "3" * 64,
        "anomalous",
        "expired_token_accepted",
    ),
    (
        "req-05",
        at("12:35:00"),
        "GET",
        "/v1/secrets/stripe-key",
        "allow",
        "203.0.113.7",
        BROWSER,
        "secret:stripe-key",
        "2" * 64,
        "expected_by_design",
        "idp_session_still_active",
    ),
    (
        "req-06",
        at("12:50:00"),
        "GET",
        HOSTILE_PATH,
        "allow",
        "198.18.0.66",
        HOSTILE_AGENT,
        "secret:signing-key",
        "2" * 64,
        "needs_review",
        "new_client_after_revocation",
    ),
    (
        "req-07",
        at("10:30:00"),
        "GET",
        "/v1/workspaces/ws_1",
        "allow",
        "192.0.2.44",
        BROWSER,
        "workspace:ws_1",
        "4" * 64,
        None,
        None,
    ),
    (
        "req-08",
        at("10:31:00"),
        "GET",
        "/v1/secrets/db-password",
        "allow",
        "192.0.2.44",
        BROWSER,
        "secret:db-password",
        "4" * 64,
        None,
        None,
    ),
]

_EXPLANATIONS = {
    "residual_token_validity": (
        "token issued 11:42:10, before the record was revoked at 12:00:00; used at 12:05:31, "
        "36 minutes before it expires at 12:42:10; revoking a device-session record does not "
        "invalidate a JWT"
    ),
    "denied_by_backend": "the backend denied the request at 12:10:00",
    "expired_token_accepted": (
        "token expired at 12:00:00 and was accepted at 12:20:00, 20 minutes later"
    ),
    "idp_session_still_active": (
        "token issued 12:30:00, after the record was revoked at 12:00:00: the Supabase "
        "session was still active and minted it"
    ),
    "new_client_after_revocation": (
        f"used at 12:50:00 from user agent {HOSTILE_AGENT} and IP 198.18.0.66, neither seen "
        "on this Supabase session before the revocation at 12:00:00"
    ),
}


def _derived_facts(connection: duckdb.DuckDBPyConnection) -> None:
    records = [
        (
            ALICE_DEVICE,
            ALICE,
            ALICE_SESSION,
            "Work laptop",
            BROWSER,
            "203.0.113.7",
            at("09:00:00"),
            at("12:00:00"),
            ADMIN,
            at("11:59:00"),
        ),
        (
            ALICE_PHONE,
            ALICE,
            ALICE_SESSION,
            HOSTILE_LABEL,
            "Vault iOS/2.1",
            "198.51.100.4",
            at("09:05:00"),
            None,
            None,
            at("09:05:00"),
        ),
        (
            BOB_DEVICE,
            BOB,
            BOB_SESSION,
            "Bob desktop",
            BROWSER,
            "192.0.2.44",
            at("08:00:00"),
            None,
            None,
            at("10:31:00"),
        ),
    ]
    for record in records:
        connection.execute(
            "insert into device_records values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'event')",
            list(record),
        )
    # The spans of the records, as the check computes them.
    spans = read_query("device_sessions/spans.sql")
    connection.execute(f"create table device_sessions as {spans}")

    tokens = {
        sha: (issued, expires)
        for sha, issued, expires in connection.execute(
            "select token_sha256, issued_at, expires_at from tokens"
        ).fetchall()
    }
    for use in _USES:
        request_id, when, method, path, decision, ip, agent, resource, sha, verdict, reason = use
        if verdict is None:
            continue
        issued, expires = tokens[sha]
        connection.execute(
            "insert into classified_use_facts (request_id, used_at, verdict, reason, severity,"
            " user_id, supabase_session_id, device_session_id, revoked_at, token_issued_at,"
            " token_expires_at, token_sha256, method, path, resource, workspace_id, ip,"
            " user_agent, decision, in_scope, sub, record_user_id)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ws_1', ?, ?, ?, true, ?, ?)",
            [
                request_id,
                when,
                verdict,
                reason,
                SEVERITY[verdict],
                ALICE,
                ALICE_SESSION,
                ALICE_DEVICE,
                at("12:00:00"),
                issued,
                expires,
                sha,
                method,
                path,
                resource,
                ip,
                agent,
                decision,
                ALICE,
                ALICE,
            ],
        )
        connection.execute(
            "insert into findings values (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            [
                f"f-{request_id}",
                verdict,
                reason,
                SEVERITY[verdict],
                ALICE,
                ALICE_DEVICE,
                ALICE_SESSION,
                when,
                when,
                [request_id],
                _EXPLANATIONS[reason],
                sha,
            ],
        )

    connection.execute(
        "insert into revocation_exposure values (?, ?, ?, ?, ?, null, true, 4, ?)",
        [ALICE_DEVICE, ALICE_SESSION, ALICE, at("12:00:00"), ADMIN, at("12:50:00")],
    )


def add_many_uses(path: Path, count: int, *, tokens: int = 50) -> None:
    """Add ``count`` classified uses of Alice's session after the revocation."""
    start = at("12:01:00")
    with store.opened(path) as connection:
        connection.execute(
            "insert into tokens (token_sha256, sub, session_id, issued_at, expires_at,"
            " lifetime_seconds, signature_status)"
            " select lpad(format('{:x}', 4096 + i), 64, 'c'), ?, ?, ?, ?, 3600, 'valid'"
            " from range(?) t(i)",
            [ALICE, ALICE_SESSION, at("11:55:00"), at("12:55:00"), tokens],
        )
        connection.execute(
            "insert into token_uses select format('bulk-{}', i), ? + to_seconds(i // 50),"
            " 'GET', format('/v1/secrets/s{}', i % 37), 200, 'allow', '203.0.113.7', ?,"
            " 'ws_1', format('secret:s{}', i % 37), lpad(format('{:x}', 4096 + i % ?), 64, 'c'),"
            " 2 from range(?) t(i)",
            [start, BROWSER, tokens, count],
        )
        connection.execute(
            "insert into classified_use_facts (request_id, used_at, verdict, reason, severity,"
            " rule, user_id, supabase_session_id, device_session_id, revoked_at,"
            " token_issued_at, token_expires_at, token_sha256, method, path, resource,"
            " workspace_id, ip, user_agent, decision, in_scope, sub, record_user_id)"
            " select u.request_id, u.used_at, 'expected_by_design', 'residual_token_validity',"
            " 'info', 10, ?, ?, ?, ?, t.issued_at, t.expires_at, u.token_sha256, u.method,"
            " u.path, u.resource, 'ws_1', u.ip, u.user_agent, u.decision, true, t.sub, ?"
            " from token_uses u join tokens t using (token_sha256)"
            " where u.request_id like 'bulk-%'",
            [ALICE, ALICE_SESSION, ALICE_DEVICE, at("12:00:00"), ALICE],
        )
