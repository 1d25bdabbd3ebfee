"""Each distinct token of an access log, decoded and verified once per store.

The store remembers every token's signature status and the fingerprint of the key
set that decided it, so a later run with the same keys checks nothing again, and a
run with new keys checks only what those keys have not yet decided. Raw tokens live
only in this process's memory, for as long as one source takes.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pyarrow as pa

from vault_audit.backend.tokens import VerificationKeys, signature_status
from vault_audit.ingest.tokens import SourceTokens
from vault_audit.resources import read_query
from vault_audit.settings import Settings

log = logging.getLogger(__name__)

# Below this many tokens a process pool costs more than it saves.
_PARALLEL_FROM = 4000

# While a source is read with keys given, the compact form of each distinct token
# waits in memory (about 1 KB) until its signature is checked; checking them in rounds
# of this many bounds that memory. Checked once at the end of the source, the 1,737,039
# distinct tokens of the 53.5M-row simulated log would all wait together: about 1.5 GB
# at 900 bytes each (an estimate from the token size, not measured alone).
_VERIFY_ROUND = 50_000


class TokenVerifier:
    """Collects a source's distinct tokens, decodes the new ones, and verifies them in
    rounds of ``_VERIFY_ROUND`` as the source is read; only their statuses wait for
    the end of the source."""

    def __init__(self, keys: VerificationKeys | None = None):
        self.keys = keys if keys is not None and not keys.is_empty else None
        self.verified = 0
        self._raw: dict[str, str] = {}
        # Token values fingerprinted in this source's earlier batches (ingest/tokens.py).
        self.source_tokens = SourceTokens()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Keys from ``--jwks FILE`` and the variable named by ``--jwt-secret-env``."""
        return cls(VerificationKeys.from_settings(settings))

    @property
    def fingerprint(self) -> str | None:
        return self.keys.fingerprint if self.keys else None

    def begin(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Start a source: empty `token_checks` and `token_statuses` tables and no raw
        tokens."""
        self._raw = {}
        self.source_tokens = SourceTokens()
        connection.execute(
            """
            create or replace temp table token_checks (
                token_sha256 varchar, header_json varchar, payload_json varchar, error varchar
            )
            """
        )
        connection.execute(
            """
            create or replace temp table token_statuses (
                token_sha256 varchar, signature_status varchar, verified_with varchar
            )
            """
        )

    def collect(self, connection: duckdb.DuckDBPyConnection, token_map: pa.Table) -> None:
        """Decode one batch's new distinct tokens into `token_checks`; keep their compact
        form for the signature check when keys were given."""
        # The query names the batch's table as this local: DuckDB's replacement scan
        # finds it here, and a view registered inside the file's transaction would keep
        # every batch's tokens alive until the commit.
        va_token_map = token_map  # noqa: F841
        connection.execute("insert into token_checks " + read_query("ingest/decode_tokens.sql"))
        if self.keys is not None:
            shapes = token_map.column("jws_shape").to_pylist()
            for sha, token, shaped in zip(
                token_map.column("token_sha256").to_pylist(),
                token_map.column("tok").to_pylist(),
                shapes,
                strict=True,
            ):
                if shaped:
                    self._raw.setdefault(sha, token)
            if len(self._raw) >= _VERIFY_ROUND:
                self._verify_round(connection)

    def _verify_round(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Check the signatures of the tokens collected so far; keep only the statuses."""
        va_round = self._statuses(connection)  # noqa: F841 (read by the query below)
        self._raw = {}
        connection.execute("insert into token_statuses select * from va_round")

    def settle(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Insert the source's new tokens into `tokens` and settle their signatures."""
        self._verify_round(connection)
        self.source_tokens = SourceTokens()

        connection.execute(
            """
            create or replace temp table new_tokens as
            select c.token_sha256, c.header_json, c.payload_json,
                s.signature_status, s.verified_with
            from token_checks as c
            left join token_statuses as s using (token_sha256)
            where c.error is null
            """
        )
        connection.execute(read_query("ingest/insert_tokens.sql"))
        connection.execute(
            """
            update tokens set signature_status = s.signature_status,
                verified_with = s.verified_with
            from token_statuses as s
            where tokens.token_sha256 = s.token_sha256
                and coalesce(lower(tokens.alg), '') <> 'none'
            """
        )
        connection.execute("drop table new_tokens")
        connection.execute("drop table token_checks")
        connection.execute("drop table token_statuses")

    def _statuses(self, connection: duckdb.DuckDBPyConnection) -> pa.Table:
        """Signature status of every collected token this key set has not decided, in
        the store or in an earlier round of this source."""
        shas: list[str] = []
        if self.keys is not None and self._raw:
            # Read by replacement scan: a view registered inside the source's
            # transaction would keep every round's table until the commit.
            va_seen = pa.table({"token_sha256": list(self._raw)})  # noqa: F841
            rows = connection.execute(
                """
                select token_sha256 from va_seen
                where token_sha256 not in (
                    select token_sha256 from tokens where verified_with = ?
                )
                and token_sha256 not in (select token_sha256 from token_statuses)
                and token_sha256 not in (
                    select token_sha256 from token_checks where error is not null
                )
                """,
                [self.fingerprint],
            ).fetchall()
            shas = [row[0] for row in rows]

        results = self._verify_all([self._raw[sha] for sha in shas])
        self.verified += len(results)
        if results:
            log.info("verified %d distinct tokens", len(results))
        return pa.table(
            {
                "token_sha256": pa.array(shas, pa.string()),
                "signature_status": pa.array(results, pa.string()),
                "verified_with": pa.array([self.fingerprint] * len(shas), pa.string()),
            }
        )

    def _verify_all(self, tokens: list[str]) -> list[str]:
        if not tokens:
            return []
        assert self.keys is not None
        workers = min(os.cpu_count() or 1, 8)
        if len(tokens) < _PARALLEL_FROM or workers < 2:
            return [signature_status(token, self.keys) for token in tokens]
        size = -(-len(tokens) // (workers * 4))
        chunks = [tokens[start : start + size] for start in range(0, len(tokens), size)]
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(self.keys,)
        ) as pool:
            return [status for chunk in pool.map(_verify_chunk, chunks) for status in chunk]


_worker_keys: VerificationKeys | None = None


def _init_worker(keys: VerificationKeys) -> None:
    global _worker_keys
    _worker_keys = keys


def _verify_chunk(tokens: list[str]) -> list[str]:
    assert _worker_keys is not None
    return [signature_status(token, _worker_keys) for token in tokens]
