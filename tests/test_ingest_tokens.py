"""The access log's tokens, found and fingerprinted in Arrow memory (ingest/tokens.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import jwt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.inputs import SECRET, claims, hs256, write_records
from tests.test_ingest import _es256_keys, ingest, rows, use
from vault_audit import store
from vault_audit.ingest import TokenVerifier, sources, tokens
from vault_audit.ingest.tokens import SPACES, SourceTokens, fingerprint_tokens
from vault_audit.settings import Settings


@pytest.fixture
def db(tmp_path):
    connection = store.connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def batch(*records: dict[str, str | None]) -> pa.Table:
    """A parsed access-log batch: its line and the four token fields."""
    fields = ["token", "authorization", "claims", "token_sha256"]
    columns = {"line": pa.array(range(1, len(records) + 1), pa.int64())}
    for name in fields:
        columns[name] = pa.array([record.get(name) for record in records], pa.string())
    return pa.table(columns)


def staged(parsed: pa.Table, seen: SourceTokens | None = None) -> list[tuple]:
    found, _ = fingerprint_tokens(parsed, seen or SourceTokens())
    names = ["token_form", "token_sha256", "claims", "jws_shape"]
    return list(zip(*(found[name].to_pylist() for name in names), strict=True))


def test_a_field_is_trimmed_of_what_duckdb_trims_and_nothing_else():
    characters = [chr(code) for code in range(0x3100) if not 0xD800 <= code <= 0xDFFF]
    connection = duckdb.connect()
    connection.register("padded", pa.table({"c": characters}))
    trimmed = connection.sql("select c, trim(c || 'x' || c) = 'x' from padded").fetchall()

    duckdb_trims = {c for c, trims in trimmed if trims}

    assert duckdb_trims == set(SPACES)
    assert "\t" not in SPACES and "\n" not in SPACES


def test_each_token_form_is_found_as_the_contract_gives_it():
    jws = hs256()
    found = staged(
        batch(
            {"token": f" \u00a0{jws}\u3000"},
            {"token": "   ", "authorization": f"\tbearer  {jws}\n"},
            {"authorization": "Bearer "},
            {"authorization": "Basic abc"},
            {"authorization": "  ", "claims": '{"sub": "u"}', "token_sha256": " ABC "},
            {"token_sha256": "DEF"},
            {"token": "\tnot-a-jws"},
            {"authorization": " "},
            {},
        )
    )

    assert found == [
        ("jwt", sha(jws), None, True),
        ("jwt", sha(jws), None, True),
        ("bad_authorization", None, None, False),
        ("bad_authorization", None, None, False),
        ("claims", "abc", '{"sub": "u"}', False),
        ("claims", "def", None, False),
        ("jwt", sha("\tnot-a-jws"), None, False),
        (None, None, None, False),
        (None, None, None, False),
    ]


def test_claims_given_beside_a_token_are_set_aside_for_the_token():
    jws = hs256()

    found = staged(batch({"token": jws, "claims": '{"sub": "u"}', "token_sha256": "abc"}))

    assert found == [("jwt", sha(jws), None, True)]


def test_an_empty_batch_stages_no_rows_and_no_tokens():
    found, token_map = fingerprint_tokens(batch(), SourceTokens())

    assert found.num_rows == 0 and token_map.num_rows == 0
    assert "token" not in found.column_names and "authorization" not in found.column_names


def test_a_token_is_fingerprinted_once_per_source_in_every_form(monkeypatch):
    jws = hs256()
    other = hs256(sub="user-2")
    calls: list[str] = []
    fingerprint = tokens._fingerprint
    monkeypatch.setattr(tokens, "_fingerprint", lambda t: calls.append(t) or fingerprint(t))
    seen = SourceTokens()

    first, first_map = fingerprint_tokens(
        batch({"token": jws}, {"token": f" {jws} "}, {"authorization": f"Bearer {jws}"}), seen
    )
    second, second_map = fingerprint_tokens(
        batch({"token": f" {jws} "}, {"authorization": f"Bearer {jws}"}, {"token": other}), seen
    )

    assert first["token_sha256"].to_pylist() == [sha(jws)] * 3
    assert second["token_sha256"].to_pylist() == [sha(jws), sha(jws), sha(other)]
    assert first_map["tok"].to_pylist() == [jws]
    assert second_map["tok"].to_pylist() == [other]
    assert calls == [jws, other]


def test_only_the_last_batch_is_remembered_and_a_token_that_skips_one_is_read_again(
    monkeypatch,
):
    jws, other = hs256(), hs256(sub="user-2")
    calls: list[str] = []
    fingerprint = tokens._fingerprint
    monkeypatch.setattr(tokens, "_fingerprint", lambda t: calls.append(t) or fingerprint(t))
    seen = SourceTokens()

    maps = []
    for values in ([jws, jws], [other], [jws, other]):
        found, token_map = fingerprint_tokens(batch(*({"token": v} for v in values)), seen)
        assert found["token_sha256"].to_pylist() == [sha(v) for v in values]
        assert found["token_form"].to_pylist() == ["jwt"] * len(values)
        assert sorted(seen.token.values.to_pylist()) == sorted(set(values))
        maps.append(token_map["tok"].to_pylist())

    assert maps == [[jws], [other], [jws]]
    assert calls == [jws, other, jws]


def test_a_token_that_comes_back_after_other_batches_is_stored_once(db, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", 2)
    jws, other = hs256(), hs256(sub="user-2")
    order = [jws, jws, other, other, other, other, jws, f" {jws}"]
    records = [use(f"r{index}", token=token) for index, token in enumerate(order)]
    path = write_records(tmp_path / "a.parquet", records)
    pq.write_table(pq.read_table(path), path, row_group_size=2)

    [result] = ingest(db, path)

    assert (result.accepted, result.quarantined) == (8, 0)
    assert rows(db, "select token_sha256, count(*) from token_uses group by all order by 1") == (
        sorted([(sha(jws), 4), (sha(other), 4)])
    )
    assert rows(db, "select count(*), count(distinct token_sha256) from tokens") == [(2, 2)]


@pytest.mark.parametrize("row_group", [2, 4, 1000])
def test_one_token_in_three_forms_across_batches_is_one_token(db, tmp_path, monkeypatch, row_group):
    monkeypatch.setattr(sources, "_TABLE_BYTES", 1)
    monkeypatch.setattr(sources, "_ROW_GROUP", row_group)
    jws = hs256()
    forms = [
        {"token": f" {jws}"},
        {"token": jws},
        {"token": None, "authorization": f"Bearer {jws}"},
    ]
    records = [use(f"r{index}", **forms[index % 3]) for index in range(12)]
    path = write_records(tmp_path / "a.parquet", records)
    pq.write_table(pq.read_table(path), path, row_group_size=row_group)

    [result] = ingest(db, path)

    assert (result.accepted, result.quarantined) == (12, 0)
    assert rows(db, "select token_sha256, count(*) from token_uses group by all") == [
        (sha(jws), 12)
    ]
    assert rows(db, "select token_sha256 from tokens") == [(sha(jws),)]


@pytest.mark.parametrize("token_type", [pa.string(), pa.large_string(), pa.binary()])
def test_a_parquet_token_column_of_any_text_type_gives_the_same_rows(db, tmp_path, token_type):
    jws = hs256()
    table = pa.table(
        {
            "request_id": ["r1", "r2", "r3", "r4"],
            "at": ["2026-01-01T12:05:00Z"] * 4,
            "decision": ["allow"] * 4,
            "Token": pa.array([f" {jws} ", None, "", None], token_type),
            "AUTHORIZATION": [None, f"Bearer {jws}", f"bearer {jws}", "Basic abc"],
        }
    )
    path = tmp_path / "a.parquet"
    pq.write_table(table, path)

    [result] = ingest(db, path)

    assert (result.accepted, result.quarantined) == (3, 1)
    assert rows(db, "select request_id, token_sha256 from token_uses order by 1") == [
        ("r1", sha(jws)),
        ("r2", sha(jws)),
        ("r3", sha(jws)),
    ]
    assert rows(db, "select reason from quarantine") == [("authorization is not a Bearer token",)]


def jwks_settings(path: Path, *public: dict) -> Settings:
    path.write_text(json.dumps({"keys": list(public)}))
    return Settings(jwks=str(path))


def status_of(db, token: str) -> list[tuple]:
    return db.execute(
        "select signature_status, verified_with from tokens where token_sha256 = ?", [sha(token)]
    ).fetchall()


def ingest_token(db, tmp_path: Path, token: str, settings: Settings, name: str) -> None:
    """Ingest the token in a new request of a new file."""
    [result] = ingest(
        db, write_records(tmp_path / name, [use(name, token=token)]), settings=settings
    )
    assert (result.accepted, result.quarantined) == (1, 0)


@pytest.mark.parametrize("decided", ["valid", "invalid"])
def test_a_decided_status_stays_when_later_keys_have_none_that_fits(
    db, tmp_path, monkeypatch, decided
):
    monkeypatch.setenv("TEST_JWT_SECRET", SECRET)
    signing, public = _es256_keys("ec1")
    if decided == "invalid":
        signing, _ = _es256_keys("ec1")  # a forger's key under the same kid
    token = jwt.encode(claims(sub=decided), signing, "ES256", headers={"kid": "ec1"})
    jwks = jwks_settings(tmp_path / "jwks.json", public)
    ingest_token(db, tmp_path, token, jwks, "a.jsonl")
    before = status_of(db, token)

    ingest_token(db, tmp_path, token, Settings(jwt_secret_env="TEST_JWT_SECRET"), "b.jsonl")

    assert before == [(decided, TokenVerifier.from_settings(jwks).fingerprint)]
    assert status_of(db, token) == before


def test_an_unverified_status_becomes_valid_when_later_keys_verify_it(db, tmp_path):
    signing, public = _es256_keys("ec1")
    good = jwt.encode(claims(sub="good"), signing, "ES256", headers={"kid": "ec1"})
    jwks = jwks_settings(tmp_path / "jwks.json", public)
    ingest_token(db, tmp_path, good, Settings(), "a.jsonl")
    unverified = status_of(db, good)

    ingest_token(db, tmp_path, good, jwks, "b.jsonl")

    assert unverified == [("unverified", None)]
    assert status_of(db, good) == [("valid", TokenVerifier.from_settings(jwks).fingerprint)]


def test_an_invalid_status_becomes_valid_under_later_keys_that_verify_it(db, tmp_path):
    signing, public = _es256_keys("ec1")
    _, stranger = _es256_keys("ec1")
    token = jwt.encode(claims(sub="rotated"), signing, "ES256", headers={"kid": "ec1"})
    wrong = jwks_settings(tmp_path / "wrong.json", stranger)
    right = jwks_settings(tmp_path / "right.json", public)
    ingest_token(db, tmp_path, token, wrong, "a.jsonl")
    invalid = status_of(db, token)

    ingest_token(db, tmp_path, token, right, "b.jsonl")

    assert invalid == [("invalid", TokenVerifier.from_settings(wrong).fingerprint)]
    assert status_of(db, token) == [("valid", TokenVerifier.from_settings(right).fingerprint)]


def test_signature_workers_leave_one_core_to_the_reader():
    from vault_audit.ingest.verify import _workers

    assert [_workers(cores) for cores in (2, 3, 4, 16)] == [1, 2, 3, 8]
