"""Ground truth: the contract's verdict table (CONTRACT.md section 3) applied to what the
simulator knows, request by request, in time order.

The facts are the simulator's own (the tokens it minted and when, the records it
revoked, the addresses each Supabase session used, the authorization history it
wrote), restricted to what the written logs show: only logged vault events feed the
replay of rule 6, only access-log rows and logged device-session events count as
sightings for rule 9, and only snapshots that were written count for rule 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vault_audit.backend.authorization import AuthorizationState
from vault_audit.backend.tokens import TokenPolicy
from vault_audit.simulation.facts import IdpSession, Item, Person, Token

ANOMALOUS = "anomalous"
EXPECTED = "expected_by_design"
REVIEW = "needs_review"

REASONS = {
    "expired_token_accepted": ANOMALOUS,
    "invalid_signature_accepted": ANOMALOUS,
    "lifetime_exceeds_policy": ANOMALOUS,
    "subject_mismatch": ANOMALOUS,
    "token_minted_after_idp_session_end": ANOMALOUS,
    "authorization_replay_mismatch": ANOMALOUS,
    "denied_by_backend": EXPECTED,
    "token_minted_after_logout_scope_unknown": REVIEW,
    "new_client_after_revocation": REVIEW,
    "residual_token_validity": EXPECTED,
    "idp_session_still_active": EXPECTED,
}


@dataclass
class RecordFact:
    """A device-session record as the logs show it."""

    registered_ms: int
    user_id: str
    user_agent: str
    id: str
    revoked_ms: int | None = None


@dataclass
class GroundTruth:
    """Facts gathered during the sweep, and the verdict of each access-log row."""

    policy: TokenPolicy = field(default_factory=TokenPolicy)
    replay: AuthorizationState = field(default_factory=AuthorizationState)
    records: dict[str, list[RecordFact]] = field(default_factory=dict)
    first_seen: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted_at: dict[str, int] = field(default_factory=dict)
    sign_outs: dict[str, list[int]] = field(default_factory=dict)
    end_evidence: dict[str, int] = field(default_factory=dict)
    _proofs: dict[tuple[str, str, str, str], bool] = field(default_factory=dict)

    @classmethod
    def for_plan(
        cls,
        people: list[Person],
        sessions: list[IdpSession],
        sign_outs: dict[str, list[int]],
        policy: TokenPolicy,
    ) -> GroundTruth:
        truth = cls(policy=policy, sign_outs=sign_outs)
        truth.deleted_at = {p.id: p.deleted_at for p in people if p.deleted_at is not None}
        truth.end_evidence = {s.id: s.end_evidence for s in sessions if s.end_evidence is not None}
        return truth

    # --- facts, as the sweep writes them ----------------------------------------------

    def registered(
        self, session_id: str, at_ms: int, user_id: str, user_agent: str, record_id: str
    ) -> RecordFact:
        fact = RecordFact(at_ms, user_id, user_agent, record_id)
        self.records.setdefault(session_id, []).append(fact)
        return fact

    def sighted(self, session_id: str, ip: str | None, at_ms: int) -> None:
        """An address seen in a logged row or device-session event of the session."""
        if ip is None:
            return
        seen = self.first_seen.setdefault(session_id, {})
        if ip not in seen or at_ms < seen[ip]:
            seen[ip] = at_ms

    def replay_changed(self) -> None:
        self._proofs.clear()

    # --- the table --------------------------------------------------------------------

    def verdict(
        self,
        token: Token,
        at_ms: int,
        allowed: bool,
        ip: str,
        user_agent: str,
        item: Item,
        record: RecordFact | None,
    ) -> str | None:
        """The reason of this use's verdict (``REASONS`` gives the verdict), or None.
        ``record`` is ``scope_record(token)``, the latest record of its Supabase session."""
        in_scope = record is not None and record.revoked_ms is not None

        if allowed and at_ms >= (token.exp + self.policy.leeway) * 1000:
            return "expired_token_accepted"
        if allowed and token.forged:
            return "invalid_signature_accepted"
        if in_scope:
            assert record is not None
            if token.exp - token.iat > self.policy.max_lifetime:
                return "lifetime_exceeds_policy"
            if token.sub != record.user_id:
                return "subject_mismatch"
            if self._minted_after_end(token):
                return "token_minted_after_idp_session_end"
        if allowed and token.sub is not None and self.proven_denial(token.sub, item):
            return "authorization_replay_mismatch"
        if not in_scope:
            return None

        assert record is not None and record.revoked_ms is not None
        revoked_ms = record.revoked_ms
        iat_ms = token.iat * 1000
        if not allowed:
            return "denied_by_backend"
        if iat_ms > revoked_ms and self._signed_out_between(record.user_id, revoked_ms, iat_ms):
            return "token_minted_after_logout_scope_unknown"
        if user_agent != record.user_agent and self._new_address(token, ip, revoked_ms):
            return "new_client_after_revocation"
        if iat_ms <= revoked_ms:
            return "residual_token_validity"
        return "idp_session_still_active"

    def scope_record(self, token: Token) -> RecordFact | None:
        # Records are added as their registrations are played, in time order, so the
        # last one is the latest registered at or before this use.
        if token.session_id is None:
            return None
        records = self.records.get(token.session_id)
        return records[-1] if records else None

    def _minted_after_end(self, token: Token) -> bool:
        ended = self.end_evidence.get(token.session_id or "")
        if ended is not None and token.iat > ended:
            return True
        deleted = self.deleted_at.get(token.sub or "")
        return deleted is not None and token.iat > deleted

    def proven_denial(self, user_id: str, item: Item) -> bool:
        key = (user_id, item.workspace_id, item.resource, item.method)
        proof = self._proofs.get(key)
        if proof is None:
            found = self.replay.proven_denial(
                user_id, item.workspace_id, item.resource, item.method
            )
            proof = self._proofs[key] = found is not None
        return proof

    def _signed_out_between(self, user_id: str, revoked_ms: int, iat_ms: int) -> bool:
        return any(revoked_ms <= t * 1000 <= iat_ms for t in self.sign_outs.get(user_id, ()))

    def _new_address(self, token: Token, ip: str, revoked_ms: int) -> bool:
        first = self.first_seen.get(token.session_id or "", {}).get(ip)
        return first is None or first >= revoked_ms
