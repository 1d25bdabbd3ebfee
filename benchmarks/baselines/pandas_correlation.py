"""The notebook approach: pandas over the same Parquet files, claims decoded in Python.

What it implements of CONTRACT.md section 3:

- the scope: device-session records merged by ``device_session_id`` from
  ``session.register``/``session.revoke`` events and ``device-sessions`` snapshots
  (earliest registration, earliest revocation; a record never seen registered counts as
  registered at its revocation); for each use, R is the latest record of its Supabase
  session registered at or before the use (``merge_asof`` by ``session_id``), and the use
  is in scope when R was revoked at or before it;
- rules 1 (``expired_token_accepted``), 3 (``lifetime_exceeds_policy``), 4
  (``subject_mismatch``), 7 (``denied_by_backend``), 10 (``residual_token_validity``)
  and 11 (``idp_session_still_active``) in scope, first rule wins, and rule 1 outside
  the scope.

Not implemented, so a use vault-audit gives one of these reasons gets a later rule's
reason here: 2 (needs signature verification), 5 (needs the audit log and session
snapshots), 6 (needs the authorization replay), 8 (needs logout and password-change
entries) and 9 (needs each Supabase session's client history).

Claims are decoded once per distinct token (``pd.factorize``), which is kinder to
pandas than the ``.apply`` per row that many notebooks use. By default every file is
read whole, as a notebook usually starts; ``used_columns_only`` reads only the four
access-log columns the rules use (``ACCESS_COLUMNS``), as a careful notebook would.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SESSION_EVENTS = ("session.register", "session.revoke")
# The access-log columns the rules here use: the path, user agent and the rest are
# most of a row's bytes after the token.
ACCESS_COLUMNS = ["request_id", "at", "decision", "token"]


def decode_claims(token: Any) -> dict[str, Any]:
    """The JWT payload as a dict, without verifying anything; {} when it is not one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AttributeError, IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def correlate(
    data_dir: Path,
    *,
    leeway: int = 0,
    max_token_lifetime: int = 3600,
    used_columns_only: bool = False,
) -> dict:
    """Read, decode, correlate and classify; return counts and the seconds of each phase."""
    phases: dict[str, float] = {}
    started = time.perf_counter()

    columns = ACCESS_COLUMNS if used_columns_only else None
    access = pd.read_parquet(data_dir / "access-log.parquet", columns=columns)
    events = pd.read_parquet(data_dir / "vault-events.parquet")
    snapshots = pd.read_parquet(data_dir / "device-sessions.parquet")
    # The identity provider's files are read as a notebook would, though the rules
    # implemented here do not look at them.
    pd.read_parquet(data_dir / "supabase-audit.parquet")
    pd.read_parquet(data_dir / "supabase-sessions.parquet")
    phases["read"] = time.perf_counter() - started

    mark = time.perf_counter()
    uses = with_claims(access)
    phases["decode"] = time.perf_counter() - mark

    mark = time.perf_counter()
    records = device_session_records(events, snapshots)
    scoped = uses_in_scope(uses, records)
    phases["correlate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    reasons = classify(uses, scoped, leeway=leeway, max_token_lifetime=max_token_lifetime)
    phases["rules"] = time.perf_counter() - mark

    return {
        "uses": len(uses),
        "in_scope": len(scoped),
        "reasons": reasons,
        "phases": phases,
    }


def with_claims(access: pd.DataFrame) -> pd.DataFrame:
    """The access log with sub, session_id, iat and exp instead of the token."""
    codes, tokens = pd.factorize(access["token"])
    claims = pd.DataFrame.from_records([decode_claims(token) for token in tokens])
    for name in ("sub", "session_id", "iat", "exp"):
        if name not in claims:
            claims[name] = None
    uses = access.drop(columns=["token"])
    for name in ("sub", "session_id"):
        uses[name] = claims[name].to_numpy()[codes]
    for name in ("iat", "exp"):
        uses[name] = pd.to_numeric(claims[name], errors="coerce").to_numpy()[codes]
    uses["at"] = pd.to_datetime(uses["at"], utc=True, format="ISO8601")
    uses["at_seconds"] = (uses["at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return uses


def device_session_records(events: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """One row per device-session record: user, Supabase session, registered, revoked."""
    session_events = events[events["type"].isin(SESSION_EVENTS)].copy()
    targets = pd.DataFrame.from_records(
        [json.loads(text) for text in session_events["target"]], index=session_events.index
    )
    session_events = session_events.join(
        targets[["device_session_id", "user_id", "supabase_session_id"]]
    )
    session_events["occurred_at"] = pd.to_datetime(
        session_events["occurred_at"], utc=True, format="ISO8601"
    )
    registered = (
        session_events[session_events["type"] == "session.register"]
        .groupby("device_session_id")["occurred_at"]
        .min()
        .rename("registered_event")
    )
    revoked = (
        session_events[session_events["type"] == "session.revoke"]
        .groupby("device_session_id")["occurred_at"]
        .min()
        .rename("revoked_event")
    )
    event_facts = (
        session_events.sort_values("occurred_at")
        .groupby("device_session_id")[["user_id", "supabase_session_id"]]
        .first()
    )

    snapshots = snapshots.rename(columns={"id": "device_session_id"})
    for name in ("created_at", "revoked_at"):
        snapshots[name] = pd.to_datetime(snapshots[name], utc=True, format="ISO8601")
    snapshot_facts = snapshots.groupby("device_session_id").agg(
        snapshot_user_id=("user_id", "first"),
        snapshot_session_id=("supabase_session_id", "first"),
        created_at=("created_at", "min"),
        revoked_snapshot=("revoked_at", "min"),
    )

    records = pd.concat([event_facts, registered, revoked, snapshot_facts], axis=1)
    records["user_id"] = records["user_id"].fillna(records["snapshot_user_id"])
    records["supabase_session_id"] = records["supabase_session_id"].fillna(
        records["snapshot_session_id"]
    )
    records["registered_at"] = records[["registered_event", "created_at"]].min(axis=1)
    records["revoked_at"] = records[["revoked_event", "revoked_snapshot"]].min(axis=1)
    records["registered_from"] = records["registered_at"].fillna(records["revoked_at"])
    records = records.reset_index(names="device_session_id")
    return records.dropna(subset=["supabase_session_id", "registered_from"])[
        ["device_session_id", "user_id", "supabase_session_id", "registered_from", "revoked_at"]
    ]


def uses_in_scope(uses: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Uses whose latest record of their Supabase session was revoked at or before them."""
    candidates = uses[uses["session_id"].notna()].sort_values("at")
    latest = records.rename(columns={"supabase_session_id": "session_id"}).sort_values(
        ["registered_from", "device_session_id"], kind="stable"
    )
    latest["registered_from"] = latest["registered_from"].astype(candidates["at"].dtype)
    joined = pd.merge_asof(
        candidates,
        latest.rename(columns={"user_id": "record_user_id"}),
        left_on="at",
        right_on="registered_from",
        by="session_id",
        direction="backward",
        allow_exact_matches=True,
    )
    scoped = joined[joined["revoked_at"].notna() & (joined["revoked_at"] <= joined["at"])].copy()
    scoped["revoked_seconds"] = (
        scoped["revoked_at"] - pd.Timestamp(0, tz="UTC")
    ).dt.total_seconds()
    return scoped


def classify(
    uses: pd.DataFrame, scoped: pd.DataFrame, *, leeway: int, max_token_lifetime: int
) -> dict[str, int]:
    """Counts per reason: rules 1, 3, 4, 7, 10, 11 in scope, rule 1 outside."""
    allowed = scoped["decision"] == "allow"
    reason = np.select(
        [
            allowed & (scoped["at_seconds"] >= scoped["exp"] + leeway),
            (scoped["exp"] - scoped["iat"]) > max_token_lifetime,
            scoped["sub"].notna()
            & scoped["record_user_id"].notna()
            & (scoped["sub"] != scoped["record_user_id"]),
            scoped["decision"] == "deny",
            scoped["iat"] <= scoped["revoked_seconds"],
            scoped["iat"] > scoped["revoked_seconds"],
        ],
        [
            "expired_token_accepted",
            "lifetime_exceeds_policy",
            "subject_mismatch",
            "denied_by_backend",
            "residual_token_validity",
            "idp_session_still_active",
        ],
        default="token_issue_time_unknown",
    )
    counts = pd.Series(reason).value_counts().to_dict()

    outside = uses[~uses["request_id"].isin(scoped["request_id"])]
    expired = (outside["decision"] == "allow") & (outside["at_seconds"] >= outside["exp"] + leeway)
    outside_expired = int(expired.sum())
    if outside_expired:
        counts["expired_token_accepted"] = counts.get("expired_token_accepted", 0) + outside_expired
    return {str(name): int(count) for name, count in sorted(counts.items())}
