"""vault-audit: what happened to Vault's device sessions and the tokens used after
their revocation, from Vault's and Supabase's own logs.

The public names live here, in ``__all__``: ``open`` a store and ask its
``AuditStore`` handle questions; every expected failure is a ``VaultAuditError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault_audit.errors import StoreBusyError, StoreError, UsageError, VaultAuditError

__version__ = "0.1.0"

__all__ = [
    "AuditStore",
    "StoreBusyError",
    "StoreError",
    "UsageError",
    "VaultAuditError",
    "__version__",
    "open",
]

if TYPE_CHECKING:
    from vault_audit.api import AuditStore, open

# The notebook surface imports polars, DuckDB and Altair; the command line imports this
# package on every run and needs none of them until a command does, so it loads late.
_LATE = {"AuditStore", "open"}


def __getattr__(name: str) -> Any:
    if name in _LATE:
        from vault_audit import api

        return getattr(api, name)
    raise AttributeError(f"module 'vault_audit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LATE})
