"""Exposure windows of revocations, and the `exposure` and `sessions` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.worldbuilder import World
from vault_audit.cli import main

DAY = "2026-03-01"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("VAULT_AUDIT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path / "store.duckdb")
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke(
        "ds-1", at=at("12:00:00"), user_id="u-1", supabase_session_id="s-1", actor_id="admin-1"
    )
    return world


def exposure_of(world: World, device_session_id: str) -> dict:
    world.check()
    cursor = world.connection.execute(
        "select * from revocation_exposure where device_session_id = ?", [device_session_id]
    )
    names = [column[0] for column in cursor.description]
    row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_the_window_ends_at_the_latest_exp_of_tokens_issued_by_r(world: World) -> None:
    first = world.token(sub="u-1", session_id="s-1", iat=at("11:10:00"))
    latest = world.token(sub="u-1", session_id="s-1", iat=at("12:00:00"))
    world.use(first, at=at("12:05:00"))
    world.use(latest, at=at("12:55:00"))

    window = exposure_of(world, "ds-1")

    assert window["open_ended"] is False
    assert window["window_end"].strftime("%H:%M:%S") == "13:00:00"
    assert window["uses_in_window"] == 2
    assert window["last_use_at"].strftime("%H:%M:%S") == "12:55:00"
    assert window["revoked_by"] == "admin-1"


def test_a_use_at_the_latest_exp_is_past_the_window(world: World) -> None:
    token = world.token(sub="u-1", session_id="s-1", iat=at("12:00:00"))
    world.use(token, at=at("12:59:59"))
    world.use(token, at=at("13:00:00"))  # rule 1: expired_token_accepted

    window = exposure_of(world, "ds-1")

    assert window["window_end"].strftime("%H:%M:%S") == "13:00:00"
    assert window["uses_in_window"] == 1
    assert window["last_use_at"].strftime("%H:%M:%S") == "13:00:00"


def test_a_token_minted_after_r_makes_the_window_open_ended(world: World) -> None:
    world.token(sub="u-1", session_id="s-1", iat=at("11:10:00"))
    later = world.token(sub="u-1", session_id="s-1", iat=at("12:30:00"))
    world.use(later, at=at("12:31:00"))

    window = exposure_of(world, "ds-1")

    assert window["open_ended"] is True
    assert window["window_end"] is None
    assert window["uses_in_window"] == 1


def test_a_revocation_with_no_valid_token_has_an_empty_window(world: World) -> None:
    world.token(sub="u-1", session_id="s-1", iat=at("10:00:00"))

    window = exposure_of(world, "ds-1")

    assert window["open_ended"] is False
    assert window["window_end"].strftime("%H:%M:%S") == "12:00:00"
    assert window["uses_in_window"] == 0


def test_the_exposure_command_lists_one_row_per_revocation(world: World, tmp_path: Path) -> None:
    world.use(world.token(sub="u-1", session_id="s-1", iat=at("11:10:00")), at=at("12:05:00"))
    world.register("ds-2", user_id="u-2", supabase_session_id="s-2", at=at("11:00:00"))
    world.revoke("ds-2", at=at("12:30:00"), user_id="u-2", supabase_session_id="s-2")
    world.close()

    every = CliRunner().invoke(
        main, ["exposure", "--db", str(tmp_path / "store.duckdb"), "--format", "json"]
    )
    mine = CliRunner().invoke(
        main,
        ["exposure", "--db", str(tmp_path / "store.duckdb"), "--user", "u-1", "--format", "json"],
    )

    assert every.exit_code == 0
    assert [row["device_session_id"] for row in json.loads(every.stdout)] == ["ds-2", "ds-1"]
    rows = json.loads(mine.stdout)
    assert rows == [
        {
            "device_session_id": "ds-1",
            "supabase_session_id": "s-1",
            "user_id": "u-1",
            "revoked_at": "2026-03-01T12:00:00Z",
            "revoked_by": "admin-1",
            "window_end": "2026-03-01T12:10:00Z",
            "open_ended": False,
            "uses_in_window": 1,
            "last_use_at": "2026-03-01T12:05:00Z",
        }
    ]


def test_the_sessions_command_lists_a_record_that_names_no_supabase_session(
    world: World, tmp_path: Path
) -> None:
    world.register("ds-9", user_id="u-1", supabase_session_id=None, at=at("09:00:00"))
    world.close()

    result = CliRunner().invoke(
        main,
        ["sessions", "--db", str(tmp_path / "store.duckdb"), "--user", "u-1", "--format", "json"],
    )

    status = {row["device_session_id"]: row["status"] for row in json.loads(result.stdout)}
    assert status == {"ds-1": "revoked", "ds-9": "current"}


def test_the_sessions_command_shows_current_active_and_revoked(
    world: World, tmp_path: Path
) -> None:
    world.register("ds-2", user_id="u-1", supabase_session_id="s-2", at=at("09:00:00"))
    world.register("ds-3", user_id="u-1", supabase_session_id="s-3", at=at("10:00:00"))
    world.use(world.token(sub="u-1", session_id="s-2", iat=at("13:00:00")), at=at("13:05:00"))
    world.use(world.token(sub="u-1", session_id="s-3", iat=at("10:05:00")), at=at("10:10:00"))
    world.close()

    result = CliRunner().invoke(
        main,
        ["sessions", "--db", str(tmp_path / "store.duckdb"), "--user", "u-1", "--format", "json"],
    )

    status = {row["device_session_id"]: row["status"] for row in json.loads(result.stdout)}
    assert status == {"ds-1": "revoked", "ds-2": "current", "ds-3": "active"}
    table = CliRunner().invoke(
        main, ["sessions", "--db", str(tmp_path / "store.duckdb"), "--user", "u-1"]
    )
    assert table.exit_code == 0
    assert max(len(line) for line in table.stdout.splitlines()) <= 100
