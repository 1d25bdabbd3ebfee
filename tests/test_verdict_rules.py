"""The verdicts of CONTRACT.md section 3: one test per rule and per boundary.

Every scene starts from the same facts: device-session record ds-1 of user u-1 on
Supabase session s-1, registered at 11:00 and revoked at 12:00 (r) on 2026-03-01.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.worldbuilder import BROWSER, World

DAY = "2026-03-01"
R = f"{DAY}T12:00:00Z"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path / "store.duckdb")
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke("ds-1", at=R, user_id="u-1", supabase_session_id="s-1")
    yield world
    world.close()


def residual_token(world: World, **claims: object) -> str:
    values: dict = {"sub": "u-1", "session_id": "s-1", "iat": at("11:42:10")}
    values.update(claims)
    return world.token(**values)


# Scope.


def test_a_use_after_the_revocation_is_in_scope_and_residual(world: World) -> None:
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    row = world.classified(request)
    assert row["in_scope"] is True
    assert row["device_session_id"] == "ds-1"
    assert row["explanation"] == (
        "token issued 11:42:10, before the record was revoked at 12:00:00; used at 12:05:31, "
        "36 minutes before it expires at 12:42:10; revoking a device-session record does not "
        "invalidate a JWT."
    )


def test_a_use_at_the_instant_of_the_revocation_is_in_scope(world: World) -> None:
    request = world.use(residual_token(world), at=R)

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_a_use_before_the_revocation_gets_no_verdict(world: World) -> None:
    request = world.use(residual_token(world), at=at("11:59:59"))

    assert world.verdict_of(request) is None


def test_equal_times_with_different_offsets_are_the_same_instant(tmp_path: Path) -> None:
    world = World(tmp_path / "offsets.duckdb")
    world.register("ds-1", user_id="u-1", supabase_session_id="s-1", at=at("11:00:00"))
    world.revoke("ds-1", at=f"{DAY}T13:00:00+01:00", user_id="u-1", supabase_session_id="s-1")
    token = residual_token(world)
    same_instant = world.use(token, at=f"{DAY}T07:00:00-05:00")
    one_second_before = world.use(token, at=f"{DAY}T06:59:59-05:00")

    assert world.verdict_of(same_instant) == ("expected_by_design", "residual_token_validity")
    assert world.verdict_of(one_second_before) is None


def test_a_newer_registration_of_the_supabase_session_ends_the_scope(world: World) -> None:
    world.register("ds-2", user_id="u-1", supabase_session_id="s-1", at=at("12:30:00"))
    token = world.token(sub="u-1", session_id="s-1", iat=at("12:10:00"))
    before_it = world.use(token, at=at("12:29:59"))
    at_it = world.use(token, at=at("12:30:00"))
    after_it = world.use(token, at=at("12:45:00"))

    assert world.verdict_of(before_it) == ("expected_by_design", "idp_session_still_active")
    assert world.verdict_of(at_it) is None
    assert world.verdict_of(after_it) is None


def test_a_revoked_newer_registration_is_the_record_a_use_is_judged_against(
    world: World,
) -> None:
    world.register("ds-2", user_id="u-1", supabase_session_id="s-1", at=at("12:30:00"))
    world.revoke("ds-2", at=at("13:00:00"), user_id="u-1", supabase_session_id="s-1")
    token = world.token(sub="u-1", session_id="s-1", iat=at("12:40:00"))
    request = world.use(token, at=at("13:10:00"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    assert world.classified(request)["device_session_id"] == "ds-2"


def test_a_revocation_known_only_from_a_snapshot_puts_uses_in_scope(tmp_path: Path) -> None:
    world = World(tmp_path / "snapshot.duckdb")
    world.device_snapshot(
        at("18:00:00"),
        [
            {
                "id": "ds-9",
                "user_id": "u-1",
                "supabase_session_id": "s-1",
                "user_agent": BROWSER,
                "created_at": at("11:00:00"),
                "revoked_at": R,
                "revoked_by": "admin-1",
            }
        ],
    )
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    record = world.connection.execute(
        "select registered_at is not null, revoked_by, source from device_sessions"
    ).fetchone()
    assert record == (True, "admin-1", "snapshots")


def test_a_record_whose_registration_was_never_seen_counts_as_registered_before_its_revocation(
    tmp_path: Path,
) -> None:
    world = World(tmp_path / "unregistered.duckdb")
    world.revoke("ds-1", at=R, user_id="u-1", supabase_session_id="s-1")
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    registered = world.connection.execute("select registered_at from device_sessions").fetchone()
    assert registered == (None,)


def test_the_earliest_revocation_seen_wins(world: World) -> None:
    world.device_snapshot(
        at("18:00:00"),
        [
            {
                "id": "ds-1",
                "user_id": "u-1",
                "supabase_session_id": "s-1",
                "revoked_at": at("11:30:00"),
            }
        ],
    )
    request = world.use(residual_token(world, iat=at("11:20:00")), at=at("11:45:00"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    assert world.classified(request)["revoked_at"].strftime("%H:%M") == "11:30"


def test_a_token_without_session_id_is_never_in_scope(world: World) -> None:
    token = world.token(sub="u-1", session_id=None, iat=at("11:42:10"))
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) is None


# Rule 1.


def test_rule_1_an_expired_token_accepted_is_anomalous(world: World) -> None:
    token = residual_token(world, iat=at("11:00:00"))
    request = world.use(token, at=at("12:05:00"))

    assert world.verdict_of(request) == ("anomalous", "expired_token_accepted")
    assert world.classified(request)["severity"] == "high"


def test_rule_1_applies_from_the_instant_of_exp(world: World) -> None:
    token = residual_token(world, iat=at("11:00:00"))
    at_exp = world.use(token, at=at("12:00:00"))
    just_before = world.use(token, at=at("11:59:59"))

    assert world.verdict_of(at_exp) == ("anomalous", "expired_token_accepted")
    assert world.verdict_of(just_before) is None


def test_rule_1_applies_at_exp_plus_leeway_exactly(world: World) -> None:
    token = residual_token(world, iat=at("11:05:00"))
    inside_leeway = world.use(token, at=at("12:05:29"))
    at_leeway_end = world.use(token, at=at("12:05:30"))

    assert world.verdict_of(inside_leeway, leeway=30) == (
        "expected_by_design",
        "residual_token_validity",
    )
    assert (
        "after it expired at 12:05:00, within the leeway"
        in (world.classified(inside_leeway)["explanation"])
    )
    assert world.verdict_of(at_leeway_end, leeway=30) == ("anomalous", "expired_token_accepted")
    assert world.verdict_of(inside_leeway, leeway=0) == ("anomalous", "expired_token_accepted")


def test_an_expired_token_that_was_denied_is_expected(world: World) -> None:
    token = residual_token(world, iat=at("11:00:00"))
    request = world.use(token, at=at("12:05:00"), decision="deny")

    assert world.verdict_of(request) == ("expected_by_design", "denied_by_backend")


# Rule 2.


def test_rule_2_an_invalid_signature_accepted_is_anomalous(world: World) -> None:
    request = world.use(residual_token(world, signature_status="invalid"), at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "invalid_signature_accepted")


def test_rule_2_an_unsigned_token_is_said_to_be_unsigned(world: World) -> None:
    token = residual_token(world, signature_status="invalid", alg="none")
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "invalid_signature_accepted")
    explanation = world.classified(request)["explanation"]
    assert explanation.startswith("token is unsigned (alg: none); used at 12:05:31")


def test_an_unverified_signature_proves_nothing(world: World) -> None:
    request = world.use(residual_token(world, signature_status="unverified"), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


# Rule 3.


def test_rule_3_a_lifetime_over_policy_is_anomalous(world: World) -> None:
    token = residual_token(world, lifetime=7200)
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "lifetime_exceeds_policy")
    assert "a lifetime of 7200 seconds" in world.classified(request)["explanation"]


def test_rule_3_the_policy_limit_itself_is_allowed(world: World) -> None:
    request = world.use(residual_token(world, lifetime=3600), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_rule_3_follows_the_max_token_lifetime_setting(world: World) -> None:
    request = world.use(residual_token(world, lifetime=7200), at=at("12:05:31"))

    assert world.verdict_of(request, max_token_lifetime=7200) == (
        "expected_by_design",
        "residual_token_validity",
    )
    assert world.verdict_of(request, max_token_lifetime=600) == (
        "anomalous",
        "lifetime_exceeds_policy",
    )


# Rule 4.


def test_rule_4_a_token_of_another_user_is_a_subject_mismatch(world: World) -> None:
    request = world.use(residual_token(world, sub="u-2"), at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "subject_mismatch")


def test_rule_4_does_not_apply_to_a_token_without_sub(world: World) -> None:
    request = world.use(residual_token(world, sub=None), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


# Rule 5.


def test_rule_5_a_token_minted_after_the_user_was_deleted_is_anomalous(world: World) -> None:
    world.audit("user_deleted", at=at("12:10:00"), actor_id="admin", traits_user_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("anomalous", "token_minted_after_idp_session_end")
    assert "after the user was deleted at 12:10:00" in world.classified(request)["explanation"]


def test_rule_5_a_deletion_at_the_instant_of_issue_is_not_before_it(world: World) -> None:
    world.audit("user_deleted", at=at("12:20:00"), actor_id="admin", traits_user_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")


def test_rule_5_a_snapshot_that_lost_the_session_is_evidence_it_ended(world: World) -> None:
    world.supabase_snapshot(at("11:30:00"), {"s-1": "u-1"})
    world.supabase_snapshot(at("12:10:00"), {})
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("anomalous", "token_minted_after_idp_session_end")
    assert (
        "missing from the sessions snapshot taken at 12:10:00"
        in (world.classified(request)["explanation"])
    )


def test_rule_5_a_token_issued_before_the_snapshot_makes_its_absence_evidence(
    world: World,
) -> None:
    world.supabase_snapshot(at("12:10:00"), {"s-other": "u-2"})
    world.use(residual_token(world, iat=at("11:42:10")), at=at("11:50:00"))
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("anomalous", "token_minted_after_idp_session_end")


def test_rule_5_absence_from_a_snapshot_proves_nothing_without_earlier_sight(
    world: World,
) -> None:
    world.supabase_snapshot(at("12:10:00"), {})
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")


def test_rule_5_a_snapshot_that_holds_the_session_is_no_evidence(world: World) -> None:
    world.supabase_snapshot(at("11:30:00"), {"s-1": "u-1"})
    world.supabase_snapshot(at("12:10:00"), {"s-1": "u-1"})
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")


# Rule 6.


def test_rule_6_a_user_removed_from_the_workspace_is_a_replay_mismatch(world: World) -> None:
    world.event(
        "workspace.member.add", at=at("09:00:00"), workspace_id="ws-1", user_id="u-1", role="member"
    )
    world.event("workspace.member.remove", at=at("11:30:00"), workspace_id="ws-1", user_id="u-1")
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "authorization_replay_mismatch")
    assert "removed from workspace ws-1 at 11:30:00" in world.classified(request)["explanation"]


def test_rule_6_a_user_added_again_is_allowed(world: World) -> None:
    world.event("workspace.member.remove", at=at("11:30:00"), workspace_id="ws-1", user_id="u-1")
    world.event(
        "workspace.member.add", at=at("11:40:00"), workspace_id="ws-1", user_id="u-1", role="member"
    )
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_rule_6_a_removal_at_the_instant_of_the_request_proves_nothing(world: World) -> None:
    world.event("workspace.member.remove", at=at("12:05:31"), workspace_id="ws-1", user_id="u-1")
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_rule_6_a_revoked_grant_on_a_restricted_secret_is_a_replay_mismatch(
    world: World,
) -> None:
    world.event(
        "workspace.member.add", at=at("09:00:00"), workspace_id="ws-1", user_id="u-1", role="member"
    )
    world.event(
        "secret.create",
        at=at("09:10:00"),
        workspace_id="ws-1",
        secret_id="sec-1",
        visibility="restricted",
    )
    world.event(
        "grant.create",
        at=at("09:20:00"),
        workspace_id="ws-1",
        user_id="u-1",
        secret_id="sec-1",
        permission="read",
    )
    world.event(
        "grant.revoke",
        at=at("11:00:00"),
        workspace_id="ws-1",
        user_id="u-1",
        secret_id="sec-1",
        permission="read",
    )
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "authorization_replay_mismatch")
    assert (
        "grant on restricted secret sec-1 was revoked at 11:00:00"
        in (world.classified(request)["explanation"])
    )


def test_rule_6_an_admin_needs_no_grant(world: World) -> None:
    world.event(
        "workspace.member.add", at=at("09:00:00"), workspace_id="ws-1", user_id="u-1", role="admin"
    )
    world.event(
        "secret.create",
        at=at("09:10:00"),
        workspace_id="ws-1",
        secret_id="sec-1",
        visibility="restricted",
    )
    world.event(
        "grant.create",
        at=at("09:20:00"),
        workspace_id="ws-1",
        user_id="u-1",
        secret_id="sec-1",
        permission="read",
    )
    world.event(
        "grant.revoke",
        at=at("11:00:00"),
        workspace_id="ws-1",
        user_id="u-1",
        secret_id="sec-1",
        permission="read",
    )
    request = world.use(residual_token(world), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_rule_6_a_viewer_who_wrote_is_a_replay_mismatch(world: World) -> None:
    world.event(
        "workspace.member.add", at=at("09:00:00"), workspace_id="ws-1", user_id="u-1", role="viewer"
    )
    write = world.use(residual_token(world), at=at("12:05:31"), method="PUT")
    read = world.use(residual_token(world), at=at("12:06:00"), method="GET")

    assert world.verdict_of(write) == ("anomalous", "authorization_replay_mismatch")
    assert world.verdict_of(read) == ("expected_by_design", "residual_token_validity")


def test_rule_6_missing_history_proves_nothing(world: World) -> None:
    request = world.use(residual_token(world), at=at("12:05:31"), method="DELETE")

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


# Rule 7.


def test_rule_7_a_denied_use_is_expected_by_design(world: World) -> None:
    request = world.use(residual_token(world), at=at("12:05:31"), decision="deny")

    assert world.verdict_of(request) == ("expected_by_design", "denied_by_backend")


def test_rule_7_comes_after_the_token_rules(world: World) -> None:
    request = world.use(residual_token(world, lifetime=9000), at=at("12:05:31"), decision="deny")

    assert world.verdict_of(request) == ("anomalous", "lifetime_exceeds_policy")


# Rule 8.


def test_rule_8_a_token_minted_after_a_logout_needs_review(world: World) -> None:
    world.audit("logout", at=at("12:10:00"), actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("needs_review", "token_minted_after_logout_scope_unknown")
    assert "does not record a logout's scope" in world.classified(request)["explanation"]


def test_rule_8_counts_a_password_change(world: World) -> None:
    world.audit("user_updated_password", at=at("12:10:00"), actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("needs_review", "token_minted_after_logout_scope_unknown")


def test_rule_8_includes_a_logout_at_the_instant_of_the_revocation(world: World) -> None:
    world.audit("logout", at=R, actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("needs_review", "token_minted_after_logout_scope_unknown")


def test_rule_8_includes_a_logout_at_the_instant_of_issue(world: World) -> None:
    world.audit("logout", at=at("12:20:00"), actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("needs_review", "token_minted_after_logout_scope_unknown")


def test_rule_8_does_not_apply_to_a_logout_before_the_revocation(world: World) -> None:
    world.audit("logout", at=at("11:50:00"), actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")


def test_rule_8_ignores_token_revoked_which_is_refresh_rotation(world: World) -> None:
    world.audit("token_revoked", at=at("12:10:00"), actor_id="u-1")
    request = world.use(residual_token(world, iat=at("12:20:00")), at=at("12:25:00"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")


# Rule 9.


def test_rule_9_a_new_client_after_the_revocation_needs_review(world: World) -> None:
    request = world.use(
        residual_token(world), at=at("12:05:31"), user_agent="curl/8.5.0", ip="203.0.113.9"
    )

    assert world.verdict_of(request) == ("needs_review", "new_client_after_revocation")


def test_rule_9_an_ip_seen_on_the_session_before_r_is_not_a_new_client(world: World) -> None:
    token = residual_token(world)
    world.use(token, at=at("11:50:00"), ip="203.0.113.9")
    request = world.use(token, at=at("12:05:31"), user_agent="curl/8.5.0", ip="203.0.113.9")

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


def test_rule_9_an_ip_first_seen_after_r_is_still_new(world: World) -> None:
    token = residual_token(world)
    world.use(token, at=at("12:01:00"), ip="203.0.113.9")
    request = world.use(token, at=at("12:05:31"), user_agent="curl/8.5.0", ip="203.0.113.9")

    assert world.verdict_of(request) == ("needs_review", "new_client_after_revocation")


def test_rule_9_the_same_user_agent_from_a_new_ip_is_not_a_new_client(world: World) -> None:
    request = world.use(residual_token(world), at=at("12:05:31"), ip="203.0.113.9")

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")


# Rules 10 and 11.


def test_rule_10_a_token_issued_at_the_instant_of_the_revocation_is_residual(
    world: World,
) -> None:
    request = world.use(residual_token(world, iat=R), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "residual_token_validity")
    explanation = world.classified(request)["explanation"]
    assert explanation.startswith("token issued 12:00:00, the instant the record was revoked")


def test_rule_11_a_token_issued_after_the_revocation_means_the_idp_session_lives(
    world: World,
) -> None:
    request = world.use(residual_token(world, iat=at("12:00:01")), at=at("12:05:31"))

    assert world.verdict_of(request) == ("expected_by_design", "idp_session_still_active")
    explanation = world.classified(request)["explanation"]
    assert "does not end a Supabase session" in explanation


def test_a_token_without_iat_in_scope_needs_review(world: World) -> None:
    token = world.token(sub="u-1", session_id="s-1", iat=None, exp=at("13:00:00"))
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) == ("needs_review", "token_issue_time_unknown")


# Precedence and the rules outside the scope.


def test_the_first_rule_that_applies_wins(world: World) -> None:
    token = residual_token(world, iat=at("11:30:00"), lifetime=7000, sub="u-2")
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "lifetime_exceeds_policy")


def test_expiry_comes_before_an_invalid_signature(world: World) -> None:
    token = residual_token(world, iat=at("11:00:00"), signature_status="invalid")
    request = world.use(token, at=at("12:05:31"))

    assert world.verdict_of(request) == ("anomalous", "expired_token_accepted")


@pytest.mark.parametrize(
    ("claims", "use", "reason"),
    [
        ({"iat": at("08:00:00")}, {}, "expired_token_accepted"),
        ({"signature_status": "invalid"}, {}, "invalid_signature_accepted"),
        ({"iat": at("08:00:00"), "signature_status": "invalid"}, {}, "expired_token_accepted"),
    ],
)
def test_outside_the_scope_rules_1_and_2_still_apply(
    tmp_path: Path, claims: dict, use: dict, reason: str
) -> None:
    world = World(tmp_path / "no-revocation.duckdb")
    values: dict = {"sub": "u-1", "session_id": "s-1", "iat": at("09:00:00")}
    values.update(claims)
    request = world.use(world.token(**values), at=at("09:30:00"), **use)

    assert world.verdict_of(request) == ("anomalous", reason)
    assert world.classified(request)["in_scope"] is False


def test_outside_the_scope_rule_6_applies(tmp_path: Path) -> None:
    world = World(tmp_path / "replay.duckdb")
    world.event("workspace.member.remove", at=at("08:00:00"), workspace_id="ws-1", user_id="u-1")
    token = world.token(sub="u-1", session_id=None, iat=at("09:00:00"))
    request = world.use(token, at=at("09:30:00"))

    assert world.verdict_of(request) == ("anomalous", "authorization_replay_mismatch")


def test_outside_the_scope_other_rules_give_no_verdict(tmp_path: Path) -> None:
    world = World(tmp_path / "quiet.duckdb")
    token = world.token(sub="u-1", session_id="s-1", iat=at("09:00:00"), lifetime=90000)
    denied = world.use(token, at=at("09:30:00"), decision="deny")
    long_lived = world.use(token, at=at("09:31:00"))

    assert world.verdict_of(denied) is None
    assert world.verdict_of(long_lived) is None


# Findings.


def test_a_finding_groups_uses_of_one_token_and_keeps_its_id_across_runs(world: World) -> None:
    token = residual_token(world)
    world.use(token, at=at("12:05:31"))
    world.check()
    first = world.connection.execute("select finding_id, uses from findings").fetchall()
    world.use(token, at=at("12:06:00"))
    world.check()
    second = world.connection.execute(
        "select finding_id, uses, explanation from findings"
    ).fetchall()

    assert len(first) == 1 and len(second) == 1
    assert first[0][0] == second[0][0]
    assert (first[0][1], second[0][1]) == (1, 2)
    assert second[0][2].endswith("; 2 uses in all, the last at 12:06:00.")


def test_since_and_until_limit_the_uses_judged(world: World) -> None:
    token = residual_token(world)
    early = world.use(token, at=at("12:05:00"))
    late = world.use(token, at=at("12:20:00"))
    import datetime as dt

    from vault_audit import correlate
    from vault_audit.settings import Settings

    correlate.run_check(
        world.connection,
        Settings(),
        since=dt.datetime(2026, 3, 1, 12, 10, tzinfo=dt.timezone.utc),
    )
    judged = {
        row[0]
        for row in world.connection.execute("select request_id from classified_uses").fetchall()
    }

    assert judged == {late}
    assert early not in judged
