"""Vault's own backend logic as a library: token checks, the device-session registry,
and the authorization rules. The simulator writes its world with it; the replay
(verdict rule 6) asks it what Vault would have decided.

Revoking a device-session record (``DeviceSessionRegistry.revoke``) marks Vault's
record revoked and nothing else: the Supabase session and any JWT already issued are
untouched, and authorization never reads the registry.
"""

from __future__ import annotations

from vault_audit.backend.authorization import AuthorizationState, Decision
from vault_audit.backend.registry import (
    DeviceSession,
    DeviceSessionRegistry,
    RegistryError,
    UnknownDeviceSession,
    VaultEvent,
    seeded_id_factory,
)
from vault_audit.backend.tokens import (
    TokenPolicy,
    TokenRejected,
    VerificationKeys,
    decode_unverified,
    generate_es256_keypair,
    public_jwk,
    sign_access_token,
    signature_status,
    verify_access_token,
)

__all__ = [
    "AuthorizationState",
    "Decision",
    "DeviceSession",
    "DeviceSessionRegistry",
    "RegistryError",
    "TokenPolicy",
    "TokenRejected",
    "UnknownDeviceSession",
    "VaultEvent",
    "VerificationKeys",
    "decode_unverified",
    "generate_es256_keypair",
    "public_jwk",
    "seeded_id_factory",
    "sign_access_token",
    "signature_status",
    "verify_access_token",
]
