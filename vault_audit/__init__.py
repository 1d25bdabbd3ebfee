"""vault-audit: what happened to Vault's device sessions and the tokens used after
their revocation, from Vault's and Supabase's own logs."""

from __future__ import annotations

__version__ = "0.1.0"
