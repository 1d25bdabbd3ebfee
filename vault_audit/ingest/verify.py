"""Each distinct token of an access log, decoded and verified once per store.

The store remembers every token's signature status and the fingerprint of the key
set that decided it, so a later run with the same keys checks nothing again, and a
run with new keys checks only what those keys have not yet decided. Raw tokens live
only in this process's memory, for as long as the check takes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from vault_audit.backend.tokens import VerificationKeys, signature_status
from vault_audit.errors import UsageError
from vault_audit.resources import read_query
from vault_audit.settings import Settings

log = logging.getLogger(__name__)

# Below this many tokens a process pool costs more than it saves.
_PARALLEL_FROM = 4000


class TokenVerifier:
    """Decodes new tokens into `tokens` and settles their signature status."""

    def __init__(self, secret: bytes | None = None, jwks: Mapping[str, Any] | None = None):
        self._secret = secret
        self._jwks = dict(jwks) if jwks is not None else None
        self.keys = VerificationKeys(secret=secret, jwks=jwks) if secret or jwks else None
        self.verified = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Keys from ``--jwks FILE`` and the variable named by ``--jwt-secret-env``."""
        secret = _secret_from_env(settings.jwt_secret_env) if settings.jwt_secret_env else None
        jwks = _read_jwks(Path(settings.jwks)) if settings.jwks else None
        return cls(secret=secret, jwks=jwks)

    @property
    def fingerprint(self) -> str | None:
        return self.keys.fingerprint if self.keys else None

    def load_tokens(
        self, connection: duckdb.DuckDBPyConnection, subquery: str, parameter: Sequence[str]
    ) -> None:
        """Fill `token_map`, `token_checks` and new rows of `tokens` for one source."""
        query = read_query("ingest/distinct_tokens.sql").replace("{source}", subquery)
        query = query.replace("{token_column}", "t" if self.keys else "null::varchar")
        found = connection.sql(query, params=list(parameter)).to_arrow_table()
        raw = found.column("token") if self.keys else None
        found = found.drop_columns(["token"])

        connection.register("va_found", found)
        try:
            connection.execute(
                "create or replace temp table token_map as "
                "select token_key, token_key2, token_sha256 from va_found"
            )
            connection.execute(
                "create or replace temp table token_segments as "
                "select token_sha256, header_segment, payload_segment from va_found "
                "where token_sha256 not in (select token_sha256 from tokens)"
            )
        finally:
            connection.unregister("va_found")
        connection.execute(
            "create or replace temp table token_checks as " + read_query("ingest/decode_tokens.sql")
        )

        statuses = self._statuses(connection, found, raw)
        del raw
        connection.register("va_statuses", statuses)
        try:
            connection.execute(
                """
                create or replace temp table new_tokens as
                select c.token_sha256, c.header_json, c.payload_json,
                    s.signature_status, s.verified_with
                from token_checks as c
                left join va_statuses as s using (token_sha256)
                where c.error is null
                """
            )
            connection.execute(read_query("ingest/insert_tokens.sql"))
            connection.execute(
                """
                update tokens set signature_status = s.signature_status,
                    verified_with = s.verified_with
                from va_statuses as s
                where tokens.token_sha256 = s.token_sha256
                    and coalesce(lower(tokens.alg), '') <> 'none'
                """
            )
        finally:
            connection.unregister("va_statuses")
        connection.execute("drop table new_tokens")
        connection.execute("drop table token_segments")

    def _statuses(
        self,
        connection: duckdb.DuckDBPyConnection,
        found: pa.Table,
        raw: pa.ChunkedArray | None,
    ) -> pa.Table:
        empty = pa.table(
            {
                "token_sha256": pa.array([], pa.string()),
                "signature_status": pa.array([], pa.string()),
                "verified_with": pa.array([], pa.string()),
            }
        )
        if raw is None or self.keys is None:
            return empty

        # Tokens this key set has not decided yet, and that decode at all.
        pending = connection.sql(
            """
            select token_sha256 from token_map
            where token_sha256 not in (select token_sha256 from tokens where verified_with = ?)
                and token_sha256 not in (
                    select token_sha256 from token_checks where error is not null
                )
            """,
            params=[self.fingerprint],
        ).to_arrow_table()
        if pending.num_rows == 0:
            return empty

        mask = pc.is_in(found.column("token_sha256"), value_set=pending.column("token_sha256"))
        shas = found.column("token_sha256").filter(mask).to_pylist()
        tokens = raw.filter(mask).to_pylist()
        results = self._verify_all(tokens)
        self.verified += len(results)
        log.info("verified %d distinct tokens", len(results))
        return pa.table(
            {
                "token_sha256": pa.array(shas, pa.string()),
                "signature_status": pa.array(results, pa.string()),
                "verified_with": pa.array([self.fingerprint] * len(shas), pa.string()),
            }
        )

    def _verify_all(self, tokens: list[str]) -> list[str]:
        workers = min(os.cpu_count() or 1, 8)
        if len(tokens) < _PARALLEL_FROM or workers < 2:
            assert self.keys is not None
            return [signature_status(token, self.keys) for token in tokens]
        size = -(-len(tokens) // (workers * 4))
        chunks = [tokens[start : start + size] for start in range(0, len(tokens), size)]
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(self._secret, self._jwks)
        ) as pool:
            return [status for chunk in pool.map(_verify_chunk, chunks) for status in chunk]


_worker_keys: VerificationKeys | None = None


def _init_worker(secret: bytes | None, jwks: Mapping[str, Any] | None) -> None:
    global _worker_keys
    _worker_keys = VerificationKeys(secret=secret, jwks=jwks)


def _verify_chunk(tokens: list[str]) -> list[str]:
    assert _worker_keys is not None
    return [signature_status(token, _worker_keys) for token in tokens]


def _secret_from_env(name: str) -> bytes:
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"the environment variable {name} named by --jwt-secret-env is not set")
    return value.encode("utf-8")


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read the JWKS file {path}: {error.strerror}") from None
    except ValueError:
        raise UsageError(f"the JWKS file {path} is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise UsageError(f'the JWKS file {path} has no "keys" list')
    return document
