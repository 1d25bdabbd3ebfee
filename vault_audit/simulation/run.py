"""Play a planned world through Vault's backend, in time order, hour by hour.

Device-session records are registered and revoked by ``DeviceSessionRegistry``,
every request's ``decision`` comes from ``AuthorizationState.decide``, tokens are
signed by ``sign_access_token`` (once per token, not per request), and the ground
truth of each access-log row is decided as the row is written (``truth.py``).
Rows are generated one hour at a time and written as they go, so memory stays
bounded by an hour of traffic.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any, cast

from vault_audit.backend.authorization import AuthorizationState
from vault_audit.backend.registry import DeviceSessionRegistry, VaultEvent, seeded_id_factory
from vault_audit.backend.tokens import TokenPolicy, generate_es256_keypair, sign_access_token
from vault_audit.simulation.facts import (
    HOUR,
    IdpSession,
    Item,
    PlannedEvent,
    Record,
    Token,
    as_datetime,
    new_uuid,
    stamp_ms,
    stamp_seconds,
)
from vault_audit.simulation.output import COLUMNS, JsonlSink, Sink, open_sink
from vault_audit.simulation.plan import DEFAULT_START, Plan, build_plan, session_present
from vault_audit.simulation.truth import REASONS, GroundTruth

# The policy of `vault-audit check` with its default settings.
DEFAULT_POLICY = TokenPolicy()

logger = logging.getLogger(__name__)

SECRET_ENV = "VAULT_AUDIT_SIM_SECRET"
KINDS = ("vault-events", "access-log", "supabase-audit", "supabase-sessions", "device-sessions")
_MEMBERSHIP_TYPES = frozenset(
    {"workspace.member.add", "workspace.member.remove", "grant.create", "grant.revoke",
     "secret.create", "secret.delete"}
)  # fmt: skip


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote, and how to check it against its ground truth.

    The ground truth assumes ``vault-audit check`` with the default policy (leeway 0,
    maximum token lifetime 3600 s) and with the signing keys given at ingest: ES256
    worlds ``--jwks jwks.json``; HS256 worlds ``--jwt-secret-env VAULT_AUDIT_SIM_SECRET``
    (the secret is in ``jwt_secret`` and, for this process, in that variable). Without
    keys every signature is ``unverified`` and rule 2 cannot fire.
    """

    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    reasons: dict[str, int]
    seed: int
    users: int
    days: int
    algorithm: str
    start: datetime
    end: datetime
    seconds: float
    jwks_path: Path | None = None
    jwt_secret_env: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)

    @property
    def access_rows(self) -> int:
        return self.rows.get("access-log", 0)


@dataclass
class _Keys:
    algorithm: str
    kid: str | None
    signing: Any
    forging: Any
    service: Any
    jwks: dict[str, Any] | None
    secret: str | None


def signing_keys(algorithm: str, seed: int) -> _Keys:
    """The world's keys, derived from its seed: signing, forging (same kid, other key),
    and the legacy secret of the service-role key."""
    legacy = hashlib.sha256(f"vault-audit simulated legacy secret {seed}".encode()).hexdigest()
    if algorithm == "ES256":
        kid = hashlib.sha256(f"kid {seed}".encode()).hexdigest()[:8] + "-sim"
        private, jwks = generate_es256_keypair(kid, seed=seed)
        forging, _ = generate_es256_keypair(kid, seed=seed + 7_919_000_001)
        return _Keys("ES256", kid, private, forging, legacy[:40], jwks, None)
    if algorithm == "HS256":
        secret = (
            os.environ.get(SECRET_ENV)
            or hashlib.sha256(f"vault-audit simulated project secret {seed}".encode()).hexdigest()[
                :40
            ]
        )
        forged = hashlib.sha256(f"vault-audit attacker secret {seed}".encode()).hexdigest()[:40]
        return _Keys("HS256", None, secret, forged, secret, None, secret)
    raise ValueError(f"algorithm must be ES256 or HS256, not {algorithm!r}")


def simulate_world(
    out_dir: str | Path,
    *,
    users: int = 20,
    days: int = 2,
    seed: int = 0,
    fmt: str = "jsonl",
    algorithm: str = "ES256",
    rates: Mapping[str, float] | None = None,
    requests_per_hour: float = 40.0,
    bearer_share: float = 0.0,
    policy: TokenPolicy = DEFAULT_POLICY,
    start: datetime = DEFAULT_START,
) -> SimulationSummary:
    """Write a seeded world's five input kinds, its ground truth and its key.

    The same arguments give the same bytes. ``rates`` override ``DEFAULT_RATES`` per
    anomaly (0 turns one off); ``bearer_share`` is the share of access-log rows that
    carry ``authorization: Bearer <jwt>`` instead of ``token``. The ground truth
    judges tokens by ``policy``, the same ``TokenPolicy`` the backend verifies with and
    ``vault-audit check`` binds into its queries (leeway, maximum lifetime).

    An HS256 world is signed with ``VAULT_AUDIT_SIM_SECRET`` when that variable is set,
    else with a secret derived from the seed, which is then put in the variable for
    this process (so an ingest in the same process can verify) and returned in the
    summary. No secret is written to a file.
    """
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    began = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = signing_keys(algorithm, seed)
    plan = build_plan(
        users=users, days=days, seed=seed, rates=rates, requests_per_hour=requests_per_hour,
        start=start,
    )  # fmt: skip

    files: dict[str, Path] = {}
    jwks_path = None
    if keys.jwks is not None:
        jwks_path = out / "jwks.json"
        jwks_path.write_text(json.dumps(keys.jwks, indent=2) + "\n", encoding="utf-8")
        files["jwks"] = jwks_path
    else:
        os.environ.setdefault(SECRET_ENV, keys.secret or "")

    access_columns = COLUMNS["access-log"]
    if bearer_share > 0:
        access_columns = (*access_columns, "authorization")
    sinks = {kind: open_sink(out, kind, fmt) for kind in KINDS if kind != "access-log"}
    sinks["access-log"] = open_sink(out, "access-log", fmt, access_columns)
    sinks["ground_truth"] = open_sink(out, "ground_truth", fmt)
    try:
        sweep = _Sweep(plan, keys, sinks, seed, bearer_share, policy)
        sweep.run()
    finally:
        for sink in sinks.values():
            sink.close()
    files.update({kind: sink.path for kind, sink in sinks.items()})

    summary = SimulationSummary(
        out_dir=out,
        files=files,
        rows={kind: sink.rows for kind, sink in sinks.items()},
        reasons=dict(sorted(sweep.reasons.items())),
        seed=seed,
        users=users,
        days=days,
        algorithm=keys.algorithm,
        start=as_datetime(plan.start),
        end=as_datetime(plan.end),
        seconds=time.perf_counter() - began,
        jwks_path=jwks_path,
        jwt_secret_env=SECRET_ENV if keys.secret else None,
        jwt_secret=keys.secret,
    )
    logger.info(
        "simulated %d users over %d days: %d access-log rows, %d with a verdict, %.1f s",
        users, days, summary.access_rows, summary.rows["ground_truth"], summary.seconds,
    )  # fmt: skip
    return summary


class _Sweep:
    """One pass over the world's hours, events and requests in time order."""

    def __init__(
        self,
        plan: Plan,
        keys: _Keys,
        sinks: dict[str, Sink],
        seed: int,
        bearer_share: float,
        policy: TokenPolicy,
    ) -> None:
        self.plan = plan
        self.keys = keys
        self.sinks = sinks
        self.rng = Random(f"vault-audit sweep {seed}")
        self.bearer_share = bearer_share
        self.registry = DeviceSessionRegistry(id_factory=seeded_id_factory(seed + 1))
        self.state = AuthorizationState()
        self.truth = GroundTruth.for_plan(plan.people, plan.sessions, plan.sign_outs, policy)
        self.decisions: dict[tuple[str, str, str, str], bool] = {}
        self.facts: dict[int, Any] = {}  # id(Record) -> RecordFact
        self.compact: dict[int, str] = {}  # id(Token) -> compact JWT, while in use
        self.remaining: dict[int, int] = {}
        self.pending_rows: dict[int, list[tuple]] = {}
        self.pending_events: list[VaultEvent] = []
        self.last_seen: dict[str, int] = {}
        self.registry_written = 0
        self.reasons: dict[str, int] = {}
        self.seq = 0
        self.vault_records: list[tuple[int, int, dict[str, Any]]] = []
        self.flip_rate = plan.rates["authorization_replay_mismatch"]
        self.issuer = f"https://{plan.project_ref}.supabase.co/auth/v1"
        self.ua_json: dict[str, str] = {}
        self.item_json: dict[int, tuple[str, str]] = {}  # items live as long as the plan
        self.idp_iats = {s.id: [t.iat for t in s.tokens if t.minted_by_idp] for s in plan.sessions}

    # --- the pass ---------------------------------------------------------------------

    def run(self) -> None:
        plan = self.plan
        for event in plan.prelog_authz:
            self.state.apply(event)
        events = plan.events
        position = 0
        while position < len(events) and events[position].at < plan.start:
            self.apply_event(events[position])
            position += 1
        self.registry_written = len(self.registry.events)

        tokens = [t for s in plan.sessions for t in s.tokens] + [plan.service_token]
        tokens.sort(key=_first_moment)
        idp_tokens = sorted(
            (t for t in tokens if t.minted_by_idp), key=lambda t: (t.iat, t.session_id or "")
        )
        token_at = refresh_at = audit_at = 0

        for hour_start in range(plan.start, plan.end, HOUR):
            hour_end = hour_start + HOUR
            while token_at < len(tokens) and _first_moment(tokens[token_at]) < hour_end:
                self.generate_rows(tokens[token_at])
                token_at += 1
            rows = self.pending_rows.pop(hour_start // HOUR, [])
            rows.sort(key=lambda row: (row[0], row[1]))

            self.vault_records = []
            for row in rows:
                while position < len(events) and events[position].at * 1000 < row[0]:
                    self.apply_event(events[position])
                    position += 1
                self.flush_row_events(row[0])
                self.write_row(row)
            while position < len(events) and events[position].at < hour_end:
                self.apply_event(events[position])
                position += 1
            self.flush_row_events(hour_end * 1000)
            self.write_vault_events()

            audit: list[dict[str, Any]] = []
            while audit_at < len(plan.audit):
                entry_at = cast(int, plan.audit[audit_at]["_at"])
                if entry_at >= hour_end:
                    break
                audit.append(plan.audit[audit_at])
                audit_at += 1
            while refresh_at < len(idp_tokens) and idp_tokens[refresh_at].iat < hour_end:
                audit.extend(self.refresh_entries(idp_tokens[refresh_at]))
                refresh_at += 1
            audit.sort(key=lambda entry: (entry["_at"], entry["id"]))
            for entry in audit:
                self.sinks["supabase-audit"].record(_audit_record(entry))

    # --- events -----------------------------------------------------------------------

    def apply_event(self, event: PlannedEvent) -> None:
        logged = event.at >= self.plan.start
        if event.kind == "register":
            self.register(event.subject, event.at, logged)  # type: ignore[arg-type]
        elif event.kind == "revoke":
            self.revoke(event.subject, event.at, logged)  # type: ignore[arg-type]
        elif event.kind == "authz":
            self.apply_authorization(event.subject, logged)  # type: ignore[arg-type]
        elif event.kind == "snapshot":
            self.take_snapshots(event.at)

    def register(self, record: Record, at: int, logged: bool) -> None:
        session = record.session
        device = self.registry.register(
            user_id=record.user_id,
            supabase_session_id=session.id,
            label=record.label,
            user_agent=record.user_agent,
            ip=record.ip,
            at=as_datetime(at),
        )
        record.id = device.id
        self.facts[id(record)] = self.truth.registered(
            session.id, at * 1000, record.user_id, record.user_agent, device.id
        )
        if logged:
            self.truth.sighted(session.id, record.ip, at * 1000)

    def revoke(self, record: Record, at: int, logged: bool) -> None:
        assert record.id is not None and record.revoked_by is not None
        self.registry.revoke(
            record.id,
            actor_id=record.revoked_by,
            at=as_datetime(at),
            ip=record.revoker_ip,
            user_agent=record.revoker_agent,
        )
        self.facts[id(record)].revoked_ms = at * 1000
        if logged:
            self.truth.sighted(record.session.id, record.revoker_ip, at * 1000)

    def apply_authorization(self, event: VaultEvent, logged: bool) -> None:
        self.flush_row_events(int(event.occurred_at.timestamp() * 1000))
        self.apply_to(self.state, event, self.decisions.clear)
        if logged:
            self.apply_to(self.truth.replay, event, self.truth.replay_changed)
            self.vault_records.append(_event_row(event, self.next_seq()))

    @staticmethod
    def apply_to(state: AuthorizationState, event: VaultEvent, changed: Any) -> None:
        secret_id = str(event.target.get("secret_id"))
        before = state.visibility_of(secret_id) if event.type == "secret.update" else None
        state.apply(event)
        revealed = event.type == "secret.update" and state.visibility_of(secret_id) != before
        if event.type in _MEMBERSHIP_TYPES or revealed:
            changed()

    def flush_row_events(self, before_ms: int) -> None:
        """Apply the events written by requests earlier than ``before_ms``."""
        pending = self.pending_events
        while pending and pending[0].occurred_at.timestamp() * 1000 < before_ms:
            event = pending.pop(0)
            if event.type == "secret.update":
                self.apply_to(self.state, event, self.decisions.clear)
                self.apply_to(self.truth.replay, event, self.truth.replay_changed)

    def write_vault_events(self) -> None:
        new = self.registry.events[self.registry_written :]
        self.registry_written += len(new)
        rows = self.vault_records + [(_ms(e), 0, e.to_record()) for e in new]
        rows.sort(key=lambda row: (row[0], row[1]))
        for _, _, record in rows:
            self.sinks["vault-events"].record(record)

    def take_snapshots(self, at: int) -> None:
        moment = as_datetime(at)
        for record_id, seen in sorted(self.last_seen.items()):
            self.registry.touch(record_id, as_datetime(seen / 1000))
        self.last_seen.clear()
        for row in self.registry.snapshot(moment):
            self.sinks["device-sessions"].record(row)
        for session in self.plan.sessions:
            if session_present(session, at):
                self.sinks["supabase-sessions"].record(self.session_row(session, at))

    def session_row(self, session: IdpSession, at: int) -> dict[str, Any]:
        iats = self.idp_iats[session.id]
        index = bisect.bisect_right(iats, at)
        refreshed = iats[index - 1] if index else None
        if refreshed is not None and refreshed < session.created_at:
            refreshed = None
        return {
            "id": session.id,
            "user_id": session.user.id,
            "created_at": stamp_seconds(session.created_at),
            "updated_at": stamp_seconds(refreshed or session.created_at),
            "refreshed_at": stamp_seconds(refreshed) if refreshed else None,
            "not_after": None,
            "aal": "aal1",
            "user_agent": session.user_agent,
            "ip": session.ip,
            "snapshot_at": stamp_seconds(at),
        }

    def refresh_entries(self, token: Token) -> list[dict[str, Any]]:
        session = token.session
        assert session is not None
        if session.logged_login and token.iat == session.created_at:
            return []  # the sign-in itself, written as `login`
        person = session.user
        entries = []
        for action in ("token_refreshed", "token_revoked"):
            entries.append(
                {
                    "_at": token.iat,
                    "instance_id": "00000000-0000-0000-0000-000000000000",
                    "id": new_uuid(self.rng),
                    "payload": {
                        "actor_id": person.id,
                        "actor_username": person.email,
                        "actor_via_sso": False,
                        "action": action,
                        "log_type": "token",
                    },
                    "ip_address": "",
                }
            )
        return entries

    # --- requests ---------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def generate_rows(self, token: Token) -> None:
        rng = self.rng
        rows: list[tuple] = []
        if token.session is None:
            listings = [
                Item("GET", f"/api/v1/workspaces/{w.id}/secrets", w.id, f"workspace:{w.id}")
                for w in self.plan.workspaces
            ]
        else:
            person = token.session.user
            pool = self.plan.pools[person.id]
            late = self.plan.late_pools.get(person.id)
        random = rng.random
        ip, agent = token.ip, token.user_agent
        for begin, end, count in token.segments:
            span = (end - begin) * 1000
            for _ in range(count):
                at_ms = begin * 1000 + int(random() * span)
                if at_ms % 1000 == 0:
                    at_ms += 1
                self.seq += 1
                if token.session is None:
                    item, decision = rng.choice(listings), "allow"
                else:
                    chosen = late[1] if late and at_ms >= late[0] * 1000 else pool
                    item, decision = chosen.draw(rng), None
                rows.append((at_ms, self.seq, token, item, ip, agent, decision, False))
        for extra in token.extras:
            rows.append((extra.at_ms, self.next_seq(), token, extra.item, extra.ip,
                         extra.user_agent, extra.decision, True))  # fmt: skip
        rows = [row for row in rows if self.plan.start * 1000 <= row[0] < self.plan.end * 1000]
        if not rows:
            return
        self.compact[id(token)] = self.sign(token)
        self.remaining[id(token)] = len(rows)
        for row in rows:
            self.pending_rows.setdefault(row[0] // (HOUR * 1000), []).append(row)

    def sign(self, token: Token) -> str:
        keys = self.keys
        if token.claims is not None:
            return sign_access_token(token.claims, keys.service, algorithm="HS256")
        session = token.session
        assert session is not None
        claims = {
            "iss": self.issuer,
            "sub": token.sub,
            "aud": "authenticated",
            "exp": token.exp,
            "iat": token.iat,
            "email": token.email,
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "role": token.role,
            "aal": "aal1",
            "amr": [{"method": session.amr_method, "timestamp": session.created_at}],
            "session_id": token.session_id,
            "is_anonymous": False,
        }
        key = keys.forging if token.forged else keys.signing
        return sign_access_token(claims, key, algorithm=keys.algorithm, kid=keys.kid)

    def decide(self, user_id: str, item: Item) -> bool:
        key = (user_id, item.workspace_id, item.resource, item.method)
        allowed = self.decisions.get(key)
        if allowed is None:
            decision = self.state.decide(user_id, item.workspace_id, item.resource, item.method)
            allowed = self.decisions[key] = decision.allowed
        return allowed

    def write_row(self, row: tuple) -> None:
        at_ms, _, token, item, ip, agent, forced, is_extra = row
        if forced is not None:
            allowed = forced == "allow"
        else:
            assert token.sub is not None
            allowed = self.decide(token.sub, item)
            if (
                not allowed
                and not is_extra
                and self.flip_rate > 0
                and self.truth.proven_denial(token.sub, item)
                and self.rng.random() < self.flip_rate
            ):
                allowed = True  # Vault allowed what its own rules deny: injected

        record = self.truth.scope_record(token)
        reason = self.truth.verdict(token, at_ms, allowed, ip, agent, item, record)
        request_id = f"req_{self.rng.getrandbits(96):024x}"
        compact = self.compact[id(token)]
        bearer = self.bearer_share > 0 and self.rng.random() < self.bearer_share
        self.write_access(request_id, at_ms, item, allowed, ip, agent, compact, bearer)
        if reason is not None:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            self.sinks["ground_truth"].record(
                {"request_id": request_id, "verdict": REASONS[reason], "reason": reason}
            )

        if token.session_id is not None:
            self.truth.sighted(token.session_id, ip, at_ms)
            if record is not None and record.revoked_ms is None:
                self.last_seen[record.id] = at_ms  # rows come in time order
        secret = item.secret
        audited = secret is not None and (item.method != "GET" or secret.visibility == "restricted")
        if allowed and audited and token.sub is not None:
            self.secret_event(token, at_ms, item, ip, agent)

        self.remaining[id(token)] -= 1
        if not self.remaining[id(token)]:
            del self.remaining[id(token)], self.compact[id(token)]

    def write_access(
        self,
        request_id: str,
        at_ms: int,
        item: Item,
        allowed: bool,
        ip: str,
        agent: str,
        compact: str,
        bearer: bool,
    ) -> None:
        status = (200 if item.method != "DELETE" else 204) if allowed else 403
        decision = "allow" if allowed else "deny"
        sink = self.sinks["access-log"]
        if isinstance(sink, JsonlSink):
            agent_json = self.ua_json.get(agent)
            if agent_json is None:
                agent_json = self.ua_json[agent] = json.dumps(agent)
            parts = self.item_json.get(id(item))
            if parts is None:
                parts = self.item_json[id(item)] = (
                    f'"method":"{item.method}","path":"{item.path}","status":',
                    f'"workspace_id":"{item.workspace_id}","resource":"{item.resource}",',
                )
            credential = f'"authorization":"Bearer {compact}"' if bearer else f'"token":"{compact}"'
            sink.line(
                f'{{"request_id":"{request_id}","at":"{stamp_ms(at_ms)}",{parts[0]}{status},'
                f'"decision":"{decision}","ip":"{ip}","user_agent":{agent_json},{parts[1]}'
                f"{credential}}}\n"
            )
            return
        sink.record(
            {
                "request_id": request_id,
                "at": stamp_ms(at_ms),
                "method": item.method,
                "path": item.path,
                "status": status,
                "decision": decision,
                "ip": ip,
                "user_agent": agent,
                "workspace_id": item.workspace_id,
                "resource": item.resource,
                "token": None if bearer else compact,
                "authorization": f"Bearer {compact}" if bearer else None,
            }
        )

    def secret_event(self, token: Token, at_ms: int, item: Item, ip: str, agent: str) -> None:
        """Vault's audit of a secret use: reads of restricted secrets, every write."""
        secret = item.secret
        assert secret is not None and token.sub is not None
        writes = item.method not in ("GET", "HEAD")
        if not writes and secret.visibility != "restricted":
            return
        target: dict[str, Any] = {"secret_id": secret.id}
        if writes:
            target["visibility"] = self.state.visibility_of(secret.id) or secret.visibility
        event = VaultEvent(
            id=new_uuid(self.rng),
            type="secret.update" if writes else "secret.read",
            occurred_at=as_datetime(at_ms / 1000),
            actor_id=token.sub,
            workspace_id=item.workspace_id,
            ip=ip,
            user_agent=agent,
            target=target,
        )
        self.vault_records.append((at_ms, self.next_seq(), event.to_record()))
        if writes:
            self.pending_events.append(event)


def _first_moment(token: Token) -> int:
    moments = [begin for begin, _, _ in token.segments]
    moments += [extra.at_ms // 1000 for extra in token.extras]
    return min(moments) if moments else token.iat


def _ms(event: VaultEvent) -> int:
    return round(event.occurred_at.timestamp() * 1000)


def _event_row(event: VaultEvent, seq: int) -> tuple[int, int, dict[str, Any]]:
    return (_ms(event), seq, event.to_record())


def _audit_record(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance_id": entry["instance_id"],
        "id": entry["id"],
        "payload": entry["payload"],
        "created_at": stamp_seconds(entry["_at"]),
        "ip_address": entry["ip_address"],
    }
