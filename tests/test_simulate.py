"""The simulator: reproducible worlds, every verdict reason, files that load cleanly,
and ground truth that the check agrees with."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vault_audit import correlate, ingest, store
from vault_audit.cli import main
from vault_audit.settings import Settings
from vault_audit.simulate import DEFAULT_RATES, REASONS, SimulationSummary, simulate_world

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
KINDS = ("vault-events", "device-sessions", "supabase-audit", "supabase-sessions", "access-log")
SMALL = {"users": 5, "days": 1, "requests_per_hour": 8.0}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    return simulate_world(tmp_path_factory.mktemp("world"), seed=3, **SMALL)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def ground_truth(folder: Path) -> dict[str, tuple[str, str]]:
    return {
        row["request_id"]: (row["verdict"], row["reason"])
        for row in read_jsonl(folder / "ground_truth.jsonl")
    }


def ingest_and_check(folder: Path, tmp_path: Path, ext: str = "jsonl", **settings_kw: object):
    """Ingest a world with its key, run the check; return (results, verdicts)."""
    jwks = folder / "jwks.json"
    settings = Settings(
        db=str(tmp_path / "store.duckdb"),
        jwks=str(jwks) if jwks.exists() else None,
        **settings_kw,  # type: ignore[arg-type]
    )
    paths = [folder / f"{kind}.{ext}" for kind in KINDS]
    with store.opened(settings.db) as connection:
        results = ingest.ingest_files(connection, paths, settings=settings)
        correlate.run_check(connection, settings)
        rows = connection.execute(
            "select request_id, verdict, reason from classified_uses where verdict is not null"
        ).fetchall()
    return results, {request_id: (verdict, reason) for request_id, verdict, reason in rows}


def load_fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first = simulate_world(tmp_path / "a", seed=11, **SMALL)
    second = simulate_world(tmp_path / "b", seed=11, **SMALL)

    names = sorted(path.name for path in first.files.values())
    assert names == sorted(path.name for path in second.files.values())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_another_seed_writes_another_world(tmp_path: Path) -> None:
    simulate_world(tmp_path / "a", seed=11, **SMALL)
    simulate_world(tmp_path / "b", seed=12, **SMALL)

    for name in ("access-log.jsonl", "vault-events.jsonl", "jwks.json"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_a_world_of_five_users_shows_every_reason(small_world: SimulationSummary) -> None:
    truth = ground_truth(small_world.out_dir)

    assert set(REASONS) == {reason for _, reason in truth.values()}
    assert all(REASONS[reason] == verdict for verdict, reason in truth.values())
    assert small_world.reasons == {
        reason: sum(1 for _, found in truth.values() if found == reason) for reason in REASONS
    }


def test_ground_truth_names_only_requests_of_the_access_log(
    small_world: SimulationSummary,
) -> None:
    requests = [row["request_id"] for row in read_jsonl(small_world.files["access-log"])]

    assert len(requests) == len(set(requests))
    assert set(ground_truth(small_world.out_dir)) <= set(requests)


def test_tokens_look_like_supabase_access_tokens(small_world: SimulationSummary) -> None:
    rows = read_jsonl(small_world.files["access-log"])
    token = next(row["token"] for row in rows if "session_id" in _payload(row["token"]))
    header, claims = _header(token), _payload(token)

    assert header["alg"] == "ES256" and header["kid"] in small_world.jwks_path.read_text()
    assert claims["aud"] == "authenticated" and claims["role"] == "authenticated"
    assert claims["iss"].startswith("https://") and claims["iss"].endswith(".supabase.co/auth/v1")
    assert claims["exp"] - claims["iat"] == 3600
    assert {"sub", "session_id", "email", "amr", "aal", "is_anonymous"} <= set(claims)


def test_a_refresh_is_not_written_as_a_sign_out(small_world: SimulationSummary) -> None:
    entries = read_jsonl(small_world.files["supabase-audit"])
    actions = [entry["payload"]["action"] for entry in entries]
    deletion = next(e["payload"] for e in entries if e["payload"]["action"] == "user_deleted")

    assert actions.count("token_revoked") == actions.count("token_refreshed") > 0
    assert actions.count("logout") < actions.count("token_revoked")
    assert deletion["actor_id"] == "00000000-0000-0000-0000-000000000000"
    assert deletion["actor_username"] == "service_role"
    assert set(deletion["traits"]) == {"user_id", "user_email", "user_phone"}


def test_sessions_ended_by_sign_out_leave_later_snapshots(small_world: SimulationSummary) -> None:
    entries = read_jsonl(small_world.files["supabase-audit"])
    deleted_user = next(
        e["payload"]["traits"]["user_id"]
        for e in entries
        if e["payload"]["action"] == "user_deleted"
    )
    deleted_at = next(e["created_at"] for e in entries if e["payload"]["action"] == "user_deleted")
    snapshots = read_jsonl(small_world.files["supabase-sessions"])

    assert any(row["user_id"] == deleted_user for row in snapshots)
    assert not [
        row
        for row in snapshots
        if row["user_id"] == deleted_user and row["snapshot_at"] > deleted_at
    ]


def test_a_world_loads_with_nothing_quarantined_and_the_check_agrees(
    small_world: SimulationSummary, tmp_path: Path
) -> None:
    results, found = ingest_and_check(small_world.out_dir, tmp_path)

    assert all(result.quarantined == 0 for result in results)
    assert sum(result.accepted for result in results) == sum(
        small_world.rows[kind] for kind in KINDS
    )
    assert found == ground_truth(small_world.out_dir)


def test_an_hs256_parquet_world_loads_and_the_check_agrees(tmp_path: Path) -> None:
    summary = simulate_world(tmp_path / "w", seed=5, fmt="parquet", algorithm="HS256", **SMALL)

    results, found = ingest_and_check(
        summary.out_dir, tmp_path, ext="parquet", jwt_secret_env=summary.jwt_secret_env
    )

    truth = {
        row["request_id"]: (row["verdict"], row["reason"])
        for row in pq.read_table(summary.files["ground_truth"]).to_pylist()
    }
    assert summary.jwks_path is None and summary.jwt_secret
    assert all(result.quarantined == 0 for result in results)
    assert found == truth
    assert {reason for _, reason in truth.values()} == set(REASONS)


def test_with_every_rate_at_zero_no_use_is_anomalous(tmp_path: Path) -> None:
    rates = {name: 0.0 for name in DEFAULT_RATES}

    summary = simulate_world(tmp_path / "w", seed=3, rates=rates, **SMALL)

    anomalous = {reason for reason, verdict in REASONS.items() if verdict == "anomalous"}
    assert summary.reasons and not anomalous & set(summary.reasons)
    assert "residual_token_validity" in summary.reasons


def test_an_unknown_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown anomaly rate"):
        simulate_world(tmp_path, rates={"stolen_cookie": 0.1}, **SMALL)


def test_the_simulate_command_writes_a_world(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--out", str(tmp_path / "w"), "--users", "5", "--days", "1"]
    )

    assert result.exit_code == 0, result.output
    assert "ground_truth" in result.output and "--jwks" in result.output
    assert (tmp_path / "w" / "access-log.jsonl").stat().st_size > 0


def test_the_simulate_command_sets_anomaly_rates(tmp_path: Path) -> None:
    def reasons(*rates: str) -> set[str]:
        out = tmp_path / f"w{len(rates)}"
        arguments = ["simulate", "--out", str(out), "--users", "5", "--days", "1"]
        result = CliRunner().invoke(main, [*arguments, *rates])
        assert result.exit_code == 0, result.output
        lines = (out / "ground_truth.jsonl").read_text().splitlines()
        return {json.loads(line)["reason"] for line in lines}

    off = ("--rate", "subject_mismatch=0", "--rate", "new_client_after_revocation=0")

    assert {"subject_mismatch", "new_client_after_revocation"} <= reasons()
    assert not {"subject_mismatch", "new_client_after_revocation"} & reasons(*off)


@pytest.mark.parametrize("rate", ["bogus=0.1", "subject_mismatch=1.5", "subject_mismatch"])
def test_the_simulate_command_refuses_a_bad_rate(tmp_path: Path, rate: str) -> None:
    result = CliRunner().invoke(main, ["simulate", "--out", str(tmp_path), "--rate", rate])

    assert result.exit_code == 2 and "--rate" in result.output


def test_the_fixture_world_is_reproducible_from_its_script(tmp_path: Path) -> None:
    script = load_fixture_script()

    script.build_fixtures(tmp_path / "world")

    committed = FIXTURES / "world"
    names = sorted(path.name for path in committed.iterdir())
    assert names == sorted(path.name for path in (tmp_path / "world").iterdir())
    for name in names:
        assert (committed / name).read_bytes() == (tmp_path / "world" / name).read_bytes(), name


def test_the_fixture_world_quarantines_exactly_its_bad_lines(tmp_path: Path) -> None:
    manifest = json.loads((FIXTURES / "world" / "manifest.json").read_text())

    results, found = ingest_and_check(FIXTURES / "world", tmp_path)

    by_kind = {result.kind: result for result in results}
    assert by_kind["access-log"].quarantined == len(manifest["quarantined"])
    assert by_kind["access-log"].duplicates == 1 and by_kind["vault-events"].duplicates == 1
    assert all(r.quarantined == 0 for kind, r in by_kind.items() if kind != "access-log")
    assert found == ground_truth(FIXTURES / "world")


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _header(token: str) -> dict:
    return _segment(token, 0)


def _payload(token: str) -> dict:
    return _segment(token, 1)
