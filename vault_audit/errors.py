"""The errors a user can act on.

Every expected failure is a ``VaultAuditError`` with a message that says what went
wrong in the user's terms; the CLI prints it as one line on standard error and exits 2.

    VaultAuditError
    ├── UsageError        a flag, setting or argument that cannot work together
    ├── InputError        a file that cannot be read at all, or is not the kind it claims
    ├── StoreError        the store file is not a vault-audit store, or is too new
    │   └── StoreBusyError  another process is writing to the store
    └── PostgresError     a Postgres source refused or failed the read
"""

from __future__ import annotations


class VaultAuditError(Exception):
    """A failure with a message fit to show the user as it is."""


class UsageError(VaultAuditError):
    """Options or arguments that cannot work together."""


class InputError(VaultAuditError):
    """An input file that cannot be read at all."""


class StoreError(VaultAuditError):
    """The store file cannot be used."""


class StoreBusyError(StoreError):
    """Another vault-audit process holds the store for writing."""


class PostgresError(VaultAuditError):
    """A Postgres source could not be read."""
