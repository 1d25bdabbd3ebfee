"""Ingestion: every kind, every format, every quarantine reason, no raw token kept."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import jwt
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from tests.inputs import NOW, SECRET, claims, hs256, write_records
from vault_audit import correlate, store
from vault_audit.cli import main
from vault_audit.errors import InputError
from vault_audit.ingest import ingest_files, sources
from vault_audit.ingest.kinds import detect_kind
from vault_audit.settings import Settings

FORMATS = ["jsonl", "csv", "parquet", "jsonl.gz", "csv.gz"]
UTC = timezone.utc


def event(event_id: str, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": event_id,
        "type": "session.revoke",
        "occurred_at": "2026-01-01T12:00:00Z",
        "actor_id": "user-1",
        "workspace_id": "ws-1",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "target": {
            "device_session_id": "dev-1",
            "user_id": "user-1",
            "supabase_session_id": "sess-1",
            "label": "laptop",
        },
    }
    record.update(overrides)
    return record


def use(request_id: str, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "request_id": request_id,
        "at": "2026-01-01T12:05:00Z",
        "method": "GET",
        "path": "/api/v1/secrets/s-1",
        "status": 200,
        "decision": "allow",
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "workspace_id": "ws-1",
        "resource": "secret:s-1",
        "token": hs256(),
    }
    record.update(overrides)
    return record


def audit(entry_id: str, action: str = "logout", **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "instance_id": "00000000-0000-0000-0000-000000000000",
        "id": entry_id,
        "payload": {
            "actor_id": "user-1",
            "actor_username": "a@example.com",
            "actor_via_sso": False,
            "action": action,
            "log_type": "account",
        },
        "created_at": "2026-01-01T12:10:00+00:00",
        "ip_address": "",
    }
    record.update(overrides)
    return record


def idp_session(session_id: str, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": session_id,
        "user_id": "user-1",
        "created_at": "2026-01-01T08:00:00Z",
        "updated_at": "2026-01-01T11:00:00Z",
        "refreshed_at": "2026-01-01 11:00:00",
        "not_after": None,
        "aal": "aal1",
        "user_agent": "Mozilla/5.0",
        "ip": "203.0.113.7",
        "snapshot_at": "2026-01-01T13:00:00Z",
    }
    record.update(overrides)
    return record


def device_session(device_id: str, **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": device_id,
        "user_id": "user-1",
        "supabase_session_id": "sess-1",
        "label": "laptop",
        "user_agent": "Mozilla/5.0",
        "ip": "203.0.113.7",
        "created_at": "2026-01-01T08:00:00Z",
        "last_seen_at": "2026-01-01T11:59:00Z",
        "revoked_at": "2026-01-01T12:00:00Z",
        "revoked_by": "user-1",
        "snapshot_at": "2026-01-01T13:00:00Z",
    }
    record.update(overrides)
    return record


@pytest.fixture
def db(tmp_path: Path):
    connection = store.connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


def ingest(db, *paths: Path, settings: Settings | None = None, **options):
    results = ingest_files(db, paths, settings=settings or Settings(), **options)
    for result in results:
        assert result.accepted + result.duplicates + result.quarantined == result.records_read
    return results


def rows(db, sql: str) -> list[tuple]:
    return db.execute(sql).fetchall()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("kind", "records", "table"),
    [
        (
            "vault-events",
            [event("e1"), event("e2", type="secret.read", target={"secret_id": "s"})],
            "vault_events",
        ),
        ("access-log", [use("r1"), use("r2")], "token_uses"),
        ("supabase-audit", [audit("a1"), audit("a2", "login")], "idp_audit"),
        ("supabase-sessions", [idp_session("s1"), idp_session("s2")], "idp_session_snapshots"),
        (
            "device-sessions",
            [device_session("d1"), device_session("d2")],
            "device_session_snapshots",
        ),
    ],
)
def test_every_kind_loads_in_every_format(db, tmp_path, fmt, kind, records, table):
    path = write_records(tmp_path / f"input.{fmt}", records)

    [result] = ingest(db, path)

    assert (result.kind, result.accepted, result.quarantined) == (kind, 2, 0)
    assert rows(db, f"select count(*) from {table}") == [(2,)]


def test_kind_is_detected_and_an_ambiguous_file_is_refused(db, tmp_path):
    both = write_records(tmp_path / "odd.jsonl", [{"request_id": "r", "payload": {}}])

    with pytest.raises(InputError, match="could be access-log or supabase-audit; pass --kind"):
        ingest(db, both)


@pytest.mark.parametrize(
    ("columns", "kind"),
    [
        (("id", "user_id", "label", "revoked_at", "revoked_by", "last_seen_at"), "device-sessions"),
        (("id", "user_id", "supabase_session_id", "created_at"), "device-sessions"),
        (("id", "user_id", "created_at", "updated_at", "not_after", "aal"), "supabase-sessions"),
        (("id", "user_id", "refreshed_at"), "supabase-sessions"),
    ],
)
def test_a_snapshot_kind_is_told_by_the_columns_only_it_has(columns, kind):
    assert detect_kind(columns, "snapshot.csv").name == kind


def test_a_snapshot_with_only_the_shared_columns_is_refused_as_ambiguous():
    with pytest.raises(
        InputError, match="could be supabase-sessions or device-sessions; pass --kind"
    ):
        detect_kind(("id", "user_id", "created_at", "snapshot_at"), "snapshot.csv")


def test_rule_3_holds_a_fractional_lifetime_to_the_policy_exactly(db, tmp_path):
    # NumericDate claims may have fractions; Supabase writes whole seconds.
    register = event("e1", type="session.register", occurred_at="2026-01-01T11:00:00Z")
    events = write_records(tmp_path / "events.jsonl", [register, event("e2")])
    issued = NOW - 1800 + 0.5
    uses = [
        use("over", at="2026-01-01T12:10:00Z", token=hs256(iat=issued, exp=issued + 3600.4)),
        use("at", at="2026-01-01T12:10:00Z", token=hs256(iat=issued, exp=issued + 3600)),
    ]
    ingest(db, events, write_records(tmp_path / "access.jsonl", uses))

    correlate.run_check(db, Settings())

    assert rows(db, "select request_id, reason from classified_uses order by 1") == [
        ("at", "residual_token_validity"),
        ("over", "lifetime_exceeds_policy"),
    ]


def test_vault_audits_own_verdicts_are_not_taken_for_an_access_log(db, tmp_path):
    truth = {"request_id": "r1", "verdict": "anomalous", "reason": "subject_mismatch"}
    path = write_records(tmp_path / "ground_truth.jsonl", [truth])

    with pytest.raises(InputError, match="cannot tell the kind of .*ground_truth.jsonl"):
        ingest(db, path)
    [result] = ingest(db, path, kind="access-log")
    assert (result.records_read, result.quarantined) == (1, 1)


def test_a_kind_named_against_what_the_columns_show_is_refused(db, tmp_path):
    events = write_records(tmp_path / "events.jsonl", [event("e1")])
    audit_log = write_records(tmp_path / "audit.jsonl", [audit("a1")])
    snapshot_at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    with pytest.raises(InputError, match="its columns are those of vault-events; check --kind"):
        ingest(db, events, kind="device-sessions", snapshot_at=snapshot_at)
    with pytest.raises(InputError, match="its columns are those of supabase-audit"):
        ingest(db, audit_log, kind="supabase-sessions", snapshot_at=snapshot_at)
    assert rows(db, "select count(*) from ingest_runs") == [(0,)]


@pytest.mark.parametrize("name", ["events.csv", "events.jsonl", "events.csv.gz"])
def test_a_byte_order_mark_before_the_first_column_is_not_part_of_its_name(db, tmp_path, name):
    plain = write_records(tmp_path / name, [event("e1")])
    marked = tmp_path / f"marked-{name}"
    opener = gzip.open if name.endswith(".gz") else open
    with opener(plain, "rb") as source, opener(marked, "wb") as target:
        target.write(b"\xef\xbb\xbf" + source.read())

    [result] = ingest(db, marked)

    assert (result.kind, result.accepted) == ("vault-events", 1)


@pytest.mark.parametrize("name", ["sessions.jsonl", "sessions.jsonl.gz"])
def test_an_empty_json_lines_snapshot_is_a_snapshot_of_nothing(db, tmp_path, name):
    path = tmp_path / name
    with (gzip.open if name.endswith(".gz") else open)(path, "wb"):
        pass
    taken = datetime(2026, 1, 1, tzinfo=timezone.utc)

    [result] = ingest(db, path, kind="supabase-sessions", snapshot_at=taken)

    assert (result.records_read, result.quarantined) == (0, 0)
    assert rows(db, "select kind, snapshot_at from snapshots") == [("supabase-sessions", taken)]


def test_rfc_3339_times_with_a_lowercase_t_and_z_are_times(db, tmp_path):
    lower = event("e1", occurred_at="2026-01-01t12:00:00z")
    path = write_records(tmp_path / "events.jsonl", [lower, event("e2")])

    [result] = ingest(db, path)

    assert (result.accepted, result.quarantined) == (2, 0)
    assert rows(db, "select distinct occurred_at from vault_events") == [
        (datetime(2026, 1, 1, 12, tzinfo=timezone.utc),)
    ]


def test_a_file_of_the_wrong_kind_is_refused(db, tmp_path):
    path = write_records(tmp_path / "events.jsonl", [event("e1")])

    with pytest.raises(InputError, match="is not access-log: it has no request_id column"):
        ingest(db, path, kind="access-log")


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2026-01-01T12:00:00Z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01T14:00:00+02:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2026-01-01T07:00:00.250-05:00", datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-01 12:00:00+00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        (1767268800, datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("1767268800", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ],
)
def test_times_with_any_offset_or_epoch_seconds_are_stored_in_utc(db, tmp_path, written, stored):
    path = write_records(tmp_path / "events.jsonl", [event("e1", occurred_at=written)])

    ingest(db, path)

    [(occurred_at,)] = rows(db, "select occurred_at from vault_events")
    assert occurred_at == stored


def test_each_unusable_record_is_quarantined_with_its_reason_and_line(db, tmp_path):
    path = tmp_path / "access.jsonl"
    good = json.dumps(use("ok"))
    lines = [
        good,
        "{not json at all",
        json.dumps({key: value for key, value in use("x").items() if key != "request_id"}),
        json.dumps(use("r-time", at="yesterday-ish")),
        json.dumps(use("r-token", token="not-a-jwt")),
        json.dumps(use("r-decision", decision="maybe")),
        json.dumps(use("r-payload", token="eyJhbGciOiJIUzI1NiJ9.WzEsMl0.c2ln")),
        json.dumps(use("r-status", status="two hundred")),
        json.dumps(use("r-none", token=None)),
        "[1, 2, 3]",
    ]
    path.write_text("\n".join(lines) + "\n")

    [result] = ingest(db, path)

    assert (result.records_read, result.accepted, result.quarantined) == (10, 1, 9)
    assert rows(db, "select line, reason from quarantine order by line") == [
        (2, "bad JSON"),
        (3, "missing key field: request_id"),
        (4, "unparsable time in at"),
        (5, "token is not a JWT"),
        (6, "unknown decision value"),
        (7, "token payload is not a JSON object"),
        (8, "status is not an integer"),
        (9, "missing token: give token, authorization, or claims with token_sha256"),
        (10, "not a JSON object"),
    ]


def test_line_numbers_stay_true_after_a_line_that_is_not_utf8(db, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        json.dumps(event("e1")).encode()
        + b"\n"
        + b'{"id": "\xff\xfe"}\n'
        + json.dumps(event("e2", occurred_at="soon")).encode()
        + b"\n"
    )

    [result] = ingest(db, path)

    assert (result.records_read, result.accepted, result.quarantined) == (3, 1, 2)
    assert rows(db, "select line, reason from quarantine order by line") == [
        (2, "invalid UTF-8"),
        (3, "unparsable time in occurred_at"),
    ]


def test_blank_lines_are_not_records(db, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event("e1")) + "\n\n   \n" + json.dumps(event("e2")) + "\n")

    [result] = ingest(db, path)

    assert (result.records_read, result.accepted) == (2, 2)


def test_duplicates_within_a_file_across_files_and_on_a_rerun_add_nothing(db, tmp_path):
    first = write_records(tmp_path / "a.jsonl", [use("r1"), use("r2"), use("r1")])
    overlap = write_records(tmp_path / "b.csv", [use("r2"), use("r3")])

    results = ingest(db, first, overlap)
    rerun = ingest(db, first)

    assert [(r.accepted, r.duplicates) for r in results] == [(2, 1), (1, 1)]
    assert [(r.accepted, r.duplicates) for r in rerun] == [(0, 3)]
    assert rows(db, "select count(*) from token_uses") == [(3,)]
    assert rows(db, "select count(*) from tokens") == [(1,)]


def test_a_key_repeated_across_batches_keeps_its_first_line_and_the_store_its_row(
    db, tmp_path, monkeypatch
):
    # Batches of four rows: request ids repeat across batches, within one, and against
    # what an earlier file stored. token_uses has no key index; the loader removes them.
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", 4)
    earlier = write_records(tmp_path / "a.jsonl", [use("r0", path="/first-file")])
    records = [use(f"r{index}", path=f"/line-{index + 1}") for index in range(12)]
    records[6]["request_id"] = "r1"  # line 7, batch 2: repeats line 2
    records[11]["request_id"] = "r1"  # line 12, batch 3: repeats it again
    records[10]["request_id"] = "r9"  # line 11, batch 3: repeats line 10 in its batch
    records.append(use("r2", path="/line-13"))
    later = write_records(tmp_path / "b.jsonl", records)

    [first] = ingest(db, earlier)
    [result] = ingest(db, later)

    # Line 1 (r0) repeats the earlier file; lines 7, 11, 12 and 13 repeat this one.
    assert (first.accepted, result.accepted, result.duplicates) == (1, 8, 5)
    stored = dict(rows(db, "select request_id, path from token_uses"))
    assert len(stored) == rows(db, "select count(*) from token_uses")[0][0] == 9
    assert stored["r0"] == "/first-file", "the store's earlier row stays"
    assert (stored["r1"], stored["r9"], stored["r2"]) == ("/line-2", "/line-10", "/line-3")


@pytest.mark.parametrize("batches", ["one batch", "batches of one row group"])
def test_a_key_repeated_in_large_batches_keeps_its_first_line(db, tmp_path, monkeypatch, batches):
    # Large batches, which DuckDB inserts on all its threads: each request id is on line
    # i and line i + 125,000, in the same batch of 250,000 rows or, in batches of
    # 122,880, in a later one; the first line must be the one kept. A parallel insert
    # does not number rows in line order within one statement.
    if batches != "one batch":
        monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    path = tmp_path / "uses.parquet"
    claims_json = """'{"sub": "user-1", "session_id": "sess-1", "iat": 1767268800}'"""
    duckdb.execute(
        f"""copy (
            select 'r' || (i % 125000) as request_id, '2026-01-01T12:05:00Z' as at,
                   case when i < 125000 then '/first' else '/second' end as path,
                   'allow' as decision, sha256('token') as token_sha256,
                   {claims_json} as claims
            from range(250000) t(i) order by i
        ) to '{path}'"""
    )

    [result] = ingest(db, path)

    assert (result.accepted, result.duplicates) == (125_000, 125_000)
    assert rows(db, "select path, count(*) from token_uses group by path") == [("/first", 125_000)]


def test_keys_whose_hashes_collide_are_not_taken_for_repeats(db, tmp_path, monkeypatch):
    from vault_audit.ingest import load

    # Every request id of one length shares a "hash": only true repeats may go.
    monkeypatch.setattr(load, "_KEY_HASH", "length({})")
    earlier = write_records(tmp_path / "a.jsonl", [use("r1"), use("r2")])
    later = write_records(tmp_path / "b.jsonl", [use("r3"), use("r2"), use("r4"), use("r3")])

    results = ingest(db, earlier, later)

    assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (2, 2)]
    assert rows(db, "select request_id from token_uses order by 1") == [
        ("r1",),
        ("r2",),
        ("r3",),
        ("r4",),
    ]


def test_token_uses_has_no_key_index_to_outgrow_memory(db):
    # DuckDB holds a primary key's index in memory: at a 3 GB limit a store of about
    # 35M uses could take no further file.
    constraints = "select constraint_type from duckdb_constraints() where table_name = 'token_uses'"
    assert "PRIMARY KEY" not in {row[0] for row in rows(db, constraints)}
    assert rows(db, "select count(*) from duckdb_indexes() where table_name = 'token_uses'") == [
        (0,)
    ]


def test_a_store_of_schema_2_keeps_its_uses_without_the_key_index(tmp_path):
    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute("create table vault_audit_meta (key varchar primary key, value varchar)")
    for version, sql in store.migrations():
        if version <= 2:
            old.execute(sql)
    old.execute("insert into vault_audit_meta values ('schema_version', '2')")
    old.execute(
        "insert into token_uses (request_id, used_at, decision, token_sha256, ingest_run_id) "
        "values ('r1', '2026-01-01 12:05:00+00', 'allow', 'aa', 1)"
    )
    old.close()

    with store.opened(path) as connection:
        [result] = ingest(connection, write_records(tmp_path / "a.jsonl", [use("r1"), use("r2")]))
        kept = rows(connection, "select request_id, token_sha256 from token_uses order by 1")

    assert (result.accepted, result.duplicates) == (1, 1)
    assert kept[0] == ("r1", "aa")
    assert len(kept) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_run_log_keeps_the_sha256_of_the_file_as_it_is_on_disk(db, tmp_path, fmt):
    path = write_records(tmp_path / f"access.{fmt}", [use("r1"), use("r2")])

    ingest(db, path)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows(db, "select source_sha256 from ingest_runs") == [(digest,)]


def test_a_rerun_counts_quarantined_records_again_but_stores_them_once(db, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event("e1")) + "\n{broken\n")

    ingest(db, path)
    [again] = ingest(db, path)

    assert (again.duplicates, again.quarantined) == (1, 1)
    assert rows(db, "select count(*) from quarantine") == [(1,)]


def test_the_three_token_forms_give_the_same_fingerprint(db, tmp_path):
    token = hs256()
    digest = __import__("hashlib").sha256(token.encode()).hexdigest()
    path = write_records(
        tmp_path / "access.jsonl",
        [
            use("r-token", token=token),
            use("r-bearer", token=None, authorization=f"Bearer {token}"),
            use("r-claims", token=None, claims=claims(), token_sha256=digest.upper()),
        ],
    )

    [result] = ingest(db, path)

    assert result.accepted == 3
    assert rows(db, "select distinct token_sha256 from token_uses") == [(digest,)]
    assert rows(db, "select sub, session_id, lifetime_seconds from tokens") == [
        ("user-1", "sess-1", 3600)
    ]


def test_an_authorization_header_that_is_not_bearer_is_quarantined(db, tmp_path):
    path = write_records(tmp_path / "a.jsonl", [use("r", token=None, authorization="Basic abc")])

    ingest(db, path)

    assert rows(db, "select reason from quarantine") == [("authorization is not a Bearer token",)]


def test_a_key_without_sub_or_session_id_is_still_a_token_use(db, tmp_path):
    anon = jwt.encode(
        {"role": "anon", "iss": "supabase", "iat": NOW, "exp": NOW + 10**8},
        SECRET,
        algorithm="HS256",
    )
    path = write_records(tmp_path / "a.jsonl", [use("r", token=anon)])

    [result] = ingest(db, path)

    assert result.accepted == 1
    assert rows(db, "select sub, session_id, role from tokens") == [(None, None, "anon")]


def test_hs256_signatures_are_checked_with_the_secret_from_the_environment(
    db, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    forged = jwt.encode(claims(sub="user-2"), "another-secret-of-plenty-length!!", "HS256")
    path = write_records(tmp_path / "a.jsonl", [use("good"), use("forged", token=forged)])

    ingest(db, path, settings=Settings(jwt_secret_env="TEST_JWT_SECRET"))

    assert rows(db, "select sub, signature_status from tokens order by sub") == [
        ("user-1", "valid"),
        ("user-2", "invalid"),
    ]


def test_without_a_key_signatures_stay_unverified_but_alg_none_is_invalid(db, tmp_path):
    unsigned = jwt.encode(claims(sub="user-9"), None, algorithm="none")
    path = write_records(tmp_path / "a.jsonl", [use("r1"), use("r2", token=unsigned)])

    ingest(db, path)

    assert rows(db, "select sub, signature_status from tokens order by sub") == [
        ("user-1", "unverified"),
        ("user-9", "invalid"),
    ]


def _es256_keys(kid: str) -> tuple[ec.EllipticCurvePrivateKey, dict]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return private, public


def test_jwks_keys_are_chosen_by_kid_and_a_wrong_key_is_invalid(db, tmp_path):
    signing, public = _es256_keys("k1")
    other, _ = _es256_keys("k1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}))
    good = jwt.encode(claims(sub="good"), signing, "ES256", headers={"kid": "k1"})
    wrong = jwt.encode(claims(sub="wrong"), other, "ES256", headers={"kid": "k1"})
    unknown = jwt.encode(claims(sub="unknown"), signing, "ES256", headers={"kid": "k9"})
    path = write_records(
        tmp_path / "a.jsonl",
        [use("1", token=good), use("2", token=wrong), use("3", token=unknown)],
    )

    ingest(db, path, settings=Settings(jwks=str(jwks)))

    assert rows(db, "select sub, signature_status from tokens order by sub") == [
        ("good", "valid"),
        ("unknown", "unverified"),
        ("wrong", "invalid"),
    ]


def test_a_token_is_verified_once_per_store_and_again_only_for_new_keys(db, tmp_path, monkeypatch):
    from vault_audit.ingest import TokenVerifier

    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    settings = Settings(jwt_secret_env="TEST_JWT_SECRET")
    first = write_records(tmp_path / "a.jsonl", [use(f"r{i}") for i in range(50)])
    second = write_records(tmp_path / "b.jsonl", [use(f"s{i}") for i in range(50)])
    unkeyed = write_records(tmp_path / "c.jsonl", [use("c1", token=hs256(sub="late"))])

    ingest(db, unkeyed)
    verifier = TokenVerifier.from_settings(settings)
    ingest(db, first, second, unkeyed, settings=settings, verifier=verifier)

    assert verifier.verified == 2
    assert rows(db, "select sub, signature_status from tokens order by sub") == [
        ("late", "valid"),
        ("user-1", "valid"),
    ]


def test_no_raw_token_reaches_the_store_file(tmp_path):
    tokens = [hs256(sub=f"user-{i}") for i in range(5)]
    records = [use(f"r{i}", token=token) for i, token in enumerate(tokens)]
    records.append(use("bearer", token=None, authorization=f"Bearer {tokens[0]}"))
    path = tmp_path / "a.jsonl"
    write_records(path, records)
    with path.open("a") as handle:
        handle.write("{broken line with " + tokens[1] + "\n")
        handle.write(json.dumps(use("late", at="never", token=tokens[2])) + "\n")
    database = tmp_path / "store.duckdb"

    result = CliRunner().invoke(main, ["ingest", "--db", str(database), str(path)])

    assert result.exit_code == 1, result.output
    data = database.read_bytes()
    for token in tokens:
        for part in (token, token.split(".")[2]):
            assert part.encode() not in data
    assert b"[redacted token]" in data


def test_a_snapshot_without_a_time_is_refused(db, tmp_path):
    record = idp_session("s1")
    del record["snapshot_at"]
    path = write_records(tmp_path / "sessions.jsonl", [record])

    with pytest.raises(InputError, match="snapshot without a time"):
        ingest(db, path)


def test_an_empty_snapshot_is_remembered(db, tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text("id,user_id,created_at,updated_at,refreshed_at,not_after,aal,user_agent,ip\n")

    ingest(db, path, kind="supabase-sessions", snapshot_at=datetime(2026, 1, 1, 13, tzinfo=UTC))

    assert rows(db, "select kind, snapshot_at from snapshots") == [
        ("supabase-sessions", datetime(2026, 1, 1, 13, tzinfo=UTC))
    ]


def test_snapshot_rows_are_keyed_by_id_and_snapshot_time(db, tmp_path):
    path = write_records(
        tmp_path / "devices.jsonl",
        [
            device_session("d1"),
            device_session("d1", snapshot_at="2026-01-01T14:00:00Z"),
            device_session("d1"),
        ],
    )

    [result] = ingest(db, path)

    assert (result.accepted, result.duplicates) == (2, 1)


def test_vault_event_targets_are_flattened(db, tmp_path):
    path = write_records(
        tmp_path / "events.jsonl",
        [
            event("e1"),
            event(
                "e2",
                type="grant.create",
                target={"user_id": "u2", "secret_id": "s1", "permission": "read"},
            ),
        ],
    )

    ingest(db, path)

    assert rows(
        db,
        "select id, device_session_id, target_user_id, secret_id, permission "
        "from vault_events order by id",
    ) == [
        ("e1", "dev-1", "user-1", None, None),
        ("e2", None, "u2", "s1", "read"),
    ]


def test_supabase_audit_payload_fields_are_flattened(db, tmp_path):
    deleted = audit("a1", "user_deleted")
    deleted["payload"]["traits"] = {"user_id": "user-7", "user_email": "x@example.com"}
    path = write_records(tmp_path / "audit.csv", [deleted])

    ingest(db, path)

    assert rows(db, "select action, actor_id, traits_user_id from idp_audit") == [
        ("user_deleted", "user-1", "user-7")
    ]


class TestTheCommand:
    def test_prints_one_line_per_file_and_exits_0_when_all_loaded(self, tmp_path):
        path = write_records(tmp_path / "events.jsonl", [event("e1")])

        result = CliRunner().invoke(main, ["ingest", "--db", str(tmp_path / "s.duckdb"), str(path)])

        assert result.exit_code == 0
        assert "1 read, 1 accepted, 0 duplicate, 0 quarantined" in result.output

    def test_exits_2_with_one_line_for_a_missing_file(self, tmp_path):
        result = CliRunner().invoke(
            main, ["ingest", "--db", str(tmp_path / "s.duckdb"), str(tmp_path / "nope.jsonl")]
        )

        assert result.exit_code == 2
        assert result.output.strip().count("\n") == 0
        assert "no such file" in result.output

    def test_exits_2_for_a_file_that_is_not_the_format_it_claims(self, tmp_path):
        path = tmp_path / "fake.parquet"
        path.write_text("id,type\n")

        result = CliRunner().invoke(main, ["ingest", "--db", str(tmp_path / "s.db"), str(path)])

        assert result.exit_code == 2
        assert "not a Parquet file" in result.output

    def test_a_store_file_that_is_not_a_store_is_refused(self, tmp_path):
        other = tmp_path / "other.duckdb"
        duckdb.connect(str(other)).execute("create table t (a int)").close()
        path = write_records(tmp_path / "events.jsonl", [event("e1")])

        result = CliRunner().invoke(main, ["ingest", "--db", str(other), str(path)])

        assert result.exit_code == 2
        assert "not a vault-audit store" in result.output

    @pytest.mark.parametrize("name", ["events.jsonl", "events.csv", "events.parquet"])
    def test_a_log_named_as_the_store_is_refused_and_left_as_it_was(self, tmp_path, name):
        log = write_records(tmp_path / name, [event("e1")])
        before = log.read_bytes()

        for args in (["ingest", "--db", str(log), str(log)], ["check", "--db", str(log)]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 2, result.output
            assert "is not a vault-audit store (not a DuckDB file)" in result.output
        assert log.read_bytes() == before


def test_a_large_file_lands_in_whole_row_groups(db, tmp_path, monkeypatch):
    # Every batch that left a partial row group would make the first checkpoint after
    # the ingest rewrite the table to merge them: seconds on the first check at 10M uses.
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    path = tmp_path / "uses.parquet"
    claims_json = """'{"sub": "user-' || (i % 50) || '", "session_id": "sess-' || (i % 50)
        || '", "iat": 1767268800, "exp": 1767272400}'"""
    duckdb.execute(
        f"""copy (
            select 'r' || i as request_id, '2026-01-01T12:05:00Z' as at, 'GET' as method,
                   '/v1/secrets/s' as path, 'allow' as decision,
                   sha256('token ' || (i % 50)) as token_sha256, {claims_json} as claims
            from range(300000) t(i)
        ) to '{path}'"""
    )

    [result] = ingest(db, path)

    assert result.accepted == 300_000
    row_groups = "select count(distinct row_group_id) from pragma_storage_info('token_uses')"
    assert rows(db, row_groups) == [(3,)], "300,000 rows in three row groups of 122,880"


def test_a_parquet_file_is_read_across_its_row_groups_with_true_row_numbers(db, tmp_path):
    records = [use(f"r{index}") for index in range(7)]
    records[5]["decision"] = "maybe"
    path = write_records(tmp_path / "access.parquet", records)
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 4

    [result] = ingest(db, path)

    assert (result.records_read, result.accepted, result.quarantined) == (7, 6, 1)
    assert rows(db, "select line, reason from quarantine") == [(6, "unknown decision value")]
    assert rows(db, "select count(distinct request_id) from token_uses") == [(6,)]


def test_signatures_are_checked_in_rounds_each_token_once(db, tmp_path, monkeypatch):
    from vault_audit.ingest import TokenVerifier, verify

    monkeypatch.setattr(verify, "_VERIFY_ROUND", 2)
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", 4)
    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    forged = jwt.encode(claims(sub="forged"), "another-secret-" + "y" * 32, algorithm="HS256")
    tokens = [hs256(sub=f"user-{index}") for index in range(5)] + [forged]
    # Every token recurs, in batches after the round that checked it.
    records = [use(f"r{index}", token=tokens[index % 6]) for index in range(60)]
    path = write_records(tmp_path / "a.parquet", records)
    pq.write_table(pq.read_table(path), path, row_group_size=4)

    verifier = TokenVerifier.from_settings(Settings(jwt_secret_env="TEST_JWT_SECRET"))
    waiting: list[int] = []
    collect = verifier.collect

    def collect_and_count(connection, token_map):
        collect(connection, token_map)
        waiting.append(len(verifier._raw))

    monkeypatch.setattr(verifier, "collect", collect_and_count)
    ingest(db, path, verifier=verifier)

    assert len(waiting) == 15, "one batch of four rows each"
    assert max(waiting) < 2, "no more compact tokens wait than one round holds"
    assert verifier.verified == 6
    assert rows(db, "select signature_status, count(*) from tokens group by all order by 1") == [
        ("invalid", 1),
        ("valid", 5),
    ]


def test_running_out_of_memory_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    import vault_audit.ingest as ingest_package

    def out_of_memory(*args, **kwargs):
        raise duckdb.OutOfMemoryException(
            "Out of Memory Error: could not allocate block of size 256.0 KiB (2.7 GiB/2.7 GiB used)"
        )

    monkeypatch.setattr(ingest_package, "ingest_files", out_of_memory)
    path = write_records(tmp_path / "a.jsonl", [use("r1")])

    result = CliRunner().invoke(main, ["ingest", "--db", str(tmp_path / "s.duckdb"), str(path)])

    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("vault-audit: error: DuckDB ran out of memory under its memory_limit")
    assert "VAULT_AUDIT_MEMORY_LIMIT" in line and "Traceback" not in result.output


def _one_worker_rounds_of_two(monkeypatch) -> list[str]:
    """Signatures checked by one worker in rounds of two tokens, batches of four rows;
    seven HS256 tokens under TEST_JWT_SECRET and a forged one, last."""
    from vault_audit.ingest import verify

    monkeypatch.setattr(verify, "_VERIFY_ROUND", 2)
    monkeypatch.setattr(verify, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(verify.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", 4)
    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    forged = jwt.encode(claims(sub="forged"), "another-secret-" + "y" * 32, algorithm="HS256")
    return [hs256(sub=f"user-{index}") for index in range(7)] + [forged]


def test_workers_check_rounds_while_the_source_is_read_each_token_once(db, tmp_path, monkeypatch):
    from vault_audit.ingest import TokenVerifier, verify

    monkeypatch.setattr(verify, "_IN_FLIGHT", 3)
    tokens = _one_worker_rounds_of_two(monkeypatch)
    # Each token comes back after batches without it, maybe while it is being checked.
    records = [use(f"r{index}", token=tokens[(index * 3) % 8]) for index in range(64)]
    path = write_records(tmp_path / "a.parquet", records)
    pq.write_table(pq.read_table(path), path, row_group_size=4)

    pools = []
    pool = verify.ProcessPoolExecutor
    monkeypatch.setattr(verify, "ProcessPoolExecutor", lambda **kw: pools.append(1) or pool(**kw))
    verifier = TokenVerifier.from_settings(Settings(jwt_secret_env="TEST_JWT_SECRET"))
    [result] = ingest(db, path, verifier=verifier)

    assert result.accepted == 64
    assert pools == [1], "one pool of workers for the source"
    assert verifier.verified == 8
    assert verifier._pool is None, "the workers stop with the source"
    assert rows(db, "select signature_status, count(*) from tokens group by all order by 1") == [
        ("invalid", 1),
        ("valid", 7),
    ]


def test_access_log_fields_are_trimmed_of_spaces_as_duckdb_trims(db, tmp_path):
    pad = " \u00a0\u3000"
    records = [
        use(
            f"{pad}r1{pad}",
            at=f"{pad}2026-01-01T12:05:00Z ",
            method=" get ",
            status=" 200\u2009",
            decision=f"{pad}Allow{pad}",
            ip=f" {pad}",
            workspace_id=" ws-1 ",
            resource="\u3000secret:s-1",
        ),
        use("r2", decision="\tallow"),
        use(f" {pad} "),
        use("r4", status=" ", at=" 1767269100 "),
    ]
    path = write_records(tmp_path / "a.jsonl", records)

    [result] = ingest(db, path)

    assert (result.accepted, result.quarantined) == (2, 2)
    assert rows(
        db,
        "select request_id, used_at, method, status, decision, ip, workspace_id, resource "
        "from token_uses order by request_id",
    ) == [
        (
            "r1",
            datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
            "GET",
            200,
            "allow",
            None,
            "ws-1",
            "secret:s-1",
        ),
        (
            "r4",
            datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
            "GET",
            None,
            "allow",
            "203.0.113.7",
            "ws-1",
            "secret:s-1",
        ),
    ]
    quarantined = rows(db, "select line, reason, record from quarantine order by line")
    assert [(line, reason) for line, reason, _ in quarantined] == [
        (2, "unknown decision value"),
        (3, "missing key field: request_id"),
    ]
    assert '"decision":"\\tallow"' in quarantined[0][2], "the quarantine shows the field as given"


def _tables(count: int, log: list[str], *, fail_at: int | None = None):
    """A stream of one-row tables that logs what it does."""
    import pyarrow as pa

    try:
        for number in range(count):
            log.append(f"read {number}")
            if number == fail_at:
                raise InputError(f"table {number} cannot be read")
            yield pa.table({"line": [number]})
    finally:
        log.append("closed")


def test_the_next_table_is_read_while_the_caller_works_on_this_one():
    import threading

    log: list[str] = []
    second_asked = threading.Event()

    def tables():
        for table in _tables(3, log):
            yield table
            second_asked.set()  # runs only when the table after this one is asked for

    stream = sources.read_ahead(tables())
    first = next(stream)
    # The caller still holds the first table; the reader has gone on to the next.
    assert second_asked.wait(timeout=10), "the next table was not read ahead"
    assert first["line"].to_pylist() == [0]
    assert [table["line"][0].as_py() for table in stream] == [1, 2]
    assert log == ["read 0", "read 1", "read 2", "closed"]


def test_an_error_of_the_reader_reaches_the_caller_after_the_tables_before_it():
    log: list[str] = []
    stream = sources.read_ahead(_tables(5, log, fail_at=2))
    assert [table["line"][0].as_py() for table in itertools.islice(stream, 2)] == [0, 1]
    with pytest.raises(InputError, match="table 2 cannot be read"):
        next(stream)
    assert log[-1] == "closed"


def test_a_caller_that_stops_early_stops_the_reader_and_closes_the_stream():
    import threading

    log: list[str] = []
    stream = sources.read_ahead(_tables(1_000, log))
    next(stream)
    stream.close()
    assert log[-1] == "closed"
    assert len(log) < 10, "the reader went on reading after the caller stopped"
    assert not [thread for thread in threading.enumerate() if thread.name == "vault-audit-reader"]


def test_a_landing_that_fails_mid_file_stops_the_reader_and_stores_nothing(
    db, tmp_path, monkeypatch
):
    import threading

    from vault_audit.ingest import load

    records = [use(f"r{index}") for index in range(7)]
    path = write_records(tmp_path / "access.parquet", records)
    pq.write_table(pq.read_table(path), path, row_group_size=2)
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", 1)
    landed = load._land_batch

    def land_then_fail(connection, kind, run_id, normalized):
        if rows(connection, "select count(*) from token_uses") != [(0,)]:
            raise RuntimeError("the disk went away")
        return landed(connection, kind, run_id, normalized)

    monkeypatch.setattr(load, "_land_batch", land_then_fail)

    try:
        ingest(db, path)
    except RuntimeError as error:
        # Seen at once, while the error still holds the ingest's frames.
        readers = [
            thread for thread in threading.enumerate() if thread.name == "vault-audit-reader"
        ]
        assert str(error) == "the disk went away"
    else:
        pytest.fail("the ingest went on past a failed landing")

    assert not readers, "the reader thread outlived the ingest"
    assert rows(db, "select count(*) from token_uses") == [(0,)]
    assert rows(db, "select count(*) from ingest_runs") == [(0,)]


def test_the_reader_threads_connection_renders_times_in_utc_as_the_store_does(tmp_path):
    # A DuckDB cursor starts in the machine's time zone, not its connection's.
    script = f"""
from vault_audit import store
connection = store.connect({str(tmp_path / "store.duckdb")!r})
reader = store.cursor(connection)
print(reader.execute("select cast(timestamptz '2026-01-01 12:00:00+00' as varchar)").fetchone()[0])
"""
    import os
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TZ": "Asia/Kolkata"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == "2026-01-01 12:00:00+00"


def test_a_parquet_batch_is_parsed_in_arrow_exactly_as_the_parse_query_parses_it(tmp_path):
    import pyarrow as pa

    from vault_audit.ingest.kinds import ACCESS_LOG

    table = pa.table(
        {
            "Request_ID": pa.array(["r1", " r2 ", None, "ünïcode"], pa.large_string()),
            "at": ["2026-01-01T12:00:00Z", "", None, "x"],
            "status": pa.array([200, -1, None, 2**31 - 1], pa.int32()),
            "decision": ["allow", "deny", None, "ALLOW"],
            "token": [hs256(), None, "not a token", ""],
            "workspace_id": pa.array([1, None, 3, -(2**62)], pa.int64()),
        }
    )
    path = tmp_path / "uses.parquet"
    pq.write_table(table, path)
    source = sources.inspect_file(path)
    [batch] = list(sources.iter_tables(source))

    in_arrow = sources.parsed_in_arrow(source, ACCESS_LOG.columns, batch)
    va_batch = batch  # noqa: F841  (the query's table, found by DuckDB)
    by_query = duckdb.sql(sources.parse_sql(source, ACCESS_LOG.columns)).to_arrow_table()

    assert in_arrow is not None
    assert in_arrow.column_names == by_query.column_names
    assert in_arrow.to_pylist() == by_query.to_pylist()


@pytest.mark.parametrize(
    "column", [("status", "float64"), ("at", "timestamp"), ("token", "binary")]
)
def test_a_column_arrow_would_write_otherwise_leaves_the_parse_to_the_query(tmp_path, column):
    import pyarrow as pa

    from vault_audit.ingest.kinds import ACCESS_LOG

    name, kind = column
    values = {
        "float64": pa.array([200.0], pa.float64()),
        "timestamp": pa.array([datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("us", "UTC")),
        "binary": pa.array([b"abc"], pa.binary()),
    }[kind]
    path = tmp_path / "uses.parquet"
    pq.write_table(pa.table({"request_id": ["r1"], name: values}), path)
    source = sources.inspect_file(path)
    [batch] = list(sources.iter_tables(source))

    assert sources.parsed_in_arrow(source, ACCESS_LOG.columns, batch) is None


def test_at_the_end_of_a_source_chunks_no_worker_started_are_checked_here(
    db, tmp_path, monkeypatch
):
    from concurrent.futures import Future

    from vault_audit.ingest import TokenVerifier, verify

    class NeverStarted(Future):
        def result(self, timeout=None):
            if not self.done():
                raise AssertionError("waited for a chunk no worker started")
            return super().result(timeout)

    class IdlePool:
        """Workers that never take a chunk."""

        def __init__(self, **_):
            pass

        def submit(self, function, tokens):
            return NeverStarted()

        def shutdown(self, cancel_futures=False):
            pass

    monkeypatch.setattr(verify, "ProcessPoolExecutor", IdlePool)
    tokens = _one_worker_rounds_of_two(monkeypatch)
    path = write_records(
        tmp_path / "a.parquet", [use(f"r{i}", token=t) for i, t in enumerate(tokens)]
    )
    pq.write_table(pq.read_table(path), path, row_group_size=2)

    verifier = TokenVerifier.from_settings(Settings(jwt_secret_env="TEST_JWT_SECRET"))
    [result] = ingest(db, path, verifier=verifier)

    assert result.accepted == 8
    assert verifier.verified == 8
    assert rows(db, "select signature_status, count(*) from tokens group by all order by 1") == [
        ("invalid", 1),
        ("valid", 7),
    ]
