"""The authorization replay of rule 6 is written twice: in SQL for the analysis
(queries/authorization/replay.sql) and in Python for the simulator
(``AuthorizationState.proven_denial``). These tests hold the two to each other on
random histories of memberships, visibilities and grants, so neither can drift.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from tests.worldbuilder import World
from vault_audit.backend.authorization import AuthorizationState

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
USERS = ("u-0", "u-1", "u-2")
WORKSPACES = ("ws-0", "ws-1")
SECRETS = ("sec-0", "sec-1", "sec-2")


def _random_event(rng: random.Random) -> tuple[str, str | None, dict[str, str | None]]:
    """One authorization event: (type, workspace_id, target)."""
    user, workspace, secret = rng.choice(USERS), rng.choice(WORKSPACES), rng.choice(SECRETS)
    kind = rng.choice(["add", "add", "remove", "visibility", "grant", "grant", "revoke"])
    if kind == "add":
        role = rng.choice(["owner", "admin", "member", "viewer", "member", "viewer"])
        return "workspace.member.add", workspace, {"user_id": user, "role": role}
    if kind == "remove":
        return "workspace.member.remove", workspace, {"user_id": user}
    if kind == "visibility":
        visibility = rng.choice(["workspace", "restricted"])
        return "secret.update", workspace, {"secret_id": secret, "visibility": visibility}
    if kind == "grant":
        permission = rng.choice(["read", "write"])
        return (
            "grant.create",
            workspace,
            {"user_id": user, "secret_id": secret, "permission": permission},
        )
    permission = rng.choice(["read", "write", None])
    return (
        "grant.revoke",
        workspace,
        {"user_id": user, "secret_id": secret, "permission": permission},
    )


def _random_use(rng: random.Random) -> dict[str, str | None]:
    if rng.random() < 0.2:
        workspace = rng.choice(WORKSPACES)
        resource = f"workspace:{workspace}"
        workspace_id = rng.choice([workspace, None])
    else:
        resource = f"secret:{rng.choice(SECRETS)}"
        workspace_id = rng.choice([*WORKSPACES, None])
    return {
        "user": rng.choice(USERS),
        "workspace_id": workspace_id,
        "resource": resource,
        "method": rng.choice(["GET", "HEAD", "PUT", "POST", "DELETE"]),
    }


class _History:
    """Each event written to the store and applied to the backend's state alike."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.state = AuthorizationState()

    def add(self, event_type: str, at: dt.datetime, workspace_id: str | None, **target: object):
        event_id = self.world.event(
            event_type, at=at, actor_id="u-admin", workspace_id=workspace_id, **target
        )
        self.state.apply(
            {
                "id": event_id,
                "type": event_type,
                "occurred_at": at,
                "actor_id": "u-admin",
                "workspace_id": workspace_id,
                "target": target,
            }
        )


@pytest.mark.parametrize("seed", range(12))
def test_the_sql_replay_and_the_backend_prove_the_same_denials(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    world = World(tmp_path / "store.duckdb")
    history = _History(world)
    tokens = {
        user: world.token(sub=user, session_id=None, iat=START, lifetime=86400) for user in USERS
    }
    for secret in SECRETS:
        visibility = rng.choice(["workspace", "restricted"])
        history.add("secret.create", START, "ws-0", secret_id=secret, visibility=visibility)

    # Events on whole minutes, uses half a minute later: "before the use" is never a tie.
    expected: dict[str, bool] = {}
    for minute in range(1, 120):
        at = START + dt.timedelta(minutes=minute)
        event_type, workspace_id, target = _random_event(rng)
        history.add(event_type, at, workspace_id, **target)
        for _ in range(3):
            use = _random_use(rng)
            request = world.use(
                tokens[use["user"]],
                at=at + dt.timedelta(seconds=30),
                method=use["method"],
                resource=use["resource"],
                workspace_id=use["workspace_id"],
            )
            denial = history.state.proven_denial(
                use["user"], use["workspace_id"], use["resource"], use["method"]
            )
            expected[request] = denial is not None

    world.check()
    flagged = {
        row[0]
        for row in world.connection.execute(
            "select request_id from classified_uses where reason = 'authorization_replay_mismatch'"
        ).fetchall()
    }
    world.close()

    assert any(expected.values()), "the history should prove some denial"
    assert {request for request, proven in expected.items() if proven} == flagged


def _restricted_secret(tmp_path: Path, role: str) -> World:
    """A world where u-1 holds ``role`` in ws-1 and sec-1 there is restricted."""
    world = World(tmp_path / "store.duckdb")
    world.event("workspace.member.add", at=START, workspace_id="ws-1", user_id="u-1", role=role)
    world.event(
        "secret.create", at=START, workspace_id="ws-1", secret_id="sec-1", visibility="restricted"
    )
    return world


def _grant(world: World, event_type: str, minute: int, permission: str | None) -> None:
    """A grant.create or grant.revoke of u-1 on sec-1, ``minute`` minutes after START."""
    at = START + dt.timedelta(minutes=minute)
    world.event(
        event_type, at=at, workspace_id="ws-1", user_id="u-1", secret_id="sec-1",
        permission=permission,
    )  # fmt: skip


def test_a_viewer_with_a_write_grant_still_may_not_write(tmp_path: Path) -> None:
    world = _restricted_secret(tmp_path, "viewer")
    _grant(world, "grant.create", 0, "write")
    token = world.token(sub="u-1", session_id=None, iat=START)
    request = world.use(token, at=START + dt.timedelta(minutes=5), method="PUT")

    assert world.verdict_of(request) == ("anomalous", "authorization_replay_mismatch")
    assert "viewer of workspace ws-1" in world.classified(request)["explanation"]


def test_a_read_grant_left_after_a_revoked_write_grant_does_not_permit_a_write(
    tmp_path: Path,
) -> None:
    world = _restricted_secret(tmp_path, "member")
    _grant(world, "grant.create", 0, "read")
    _grant(world, "grant.create", 0, "write")
    _grant(world, "grant.revoke", 1, "write")
    token = world.token(sub="u-1", session_id=None, iat=START)
    read = world.use(token, at=START + dt.timedelta(minutes=5), method="GET")
    write = world.use(token, at=START + dt.timedelta(minutes=6), method="PUT")

    world.check()
    assert world.verdict_of(read) is None
    assert world.verdict_of(write) == ("anomalous", "authorization_replay_mismatch")


def test_a_revoke_naming_no_permission_ends_every_grant(tmp_path: Path) -> None:
    world = _restricted_secret(tmp_path, "member")
    _grant(world, "grant.create", 0, "read")
    _grant(world, "grant.revoke", 1, None)
    token = world.token(sub="u-1", session_id=None, iat=START)
    read = world.use(token, at=START + dt.timedelta(minutes=5), method="GET")

    assert world.verdict_of(read) == ("anomalous", "authorization_replay_mismatch")
