"""Each distinct token of an access log, decoded and verified once per store.

The store remembers every token's signature status and the fingerprint of the key
set that decided it, so a later run with the same keys checks nothing again, and a
run with new keys checks only what those keys have not yet decided. A status changes
only to one that ranks higher (valid above invalid above unverified), so a token whose
status was kept from other keys is checked again by each later run of keys that did
not decide it. Raw tokens live only in this process's memory, for as long as one
source takes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

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
# A small round also starts the workers early: with rounds of 50,000, a log of fewer
# distinct tokens (36k in the simulated 1M-use world) had every signature checked
# after its last batch, and the ingest waited 3.0 s of its 11.6 s for them.
_VERIFY_ROUND = 10_000

# A round is checked by worker processes while the source is read on. At most this
# many tokens are in their hands at once; past it, reading waits for the oldest.
_IN_FLIGHT = 100_000

# Signature statuses, lowest rank first: a signature that verifies under any key
# the investigator gave is valid, and `unverified` means nothing was checked.
_STATUS_RANK = ["unverified", "invalid", "valid"]


class TokenVerifier:
    """Collects a source's distinct tokens, decodes the new ones, and verifies them in
    rounds of ``_VERIFY_ROUND``: worker processes check a round while the source is
    read on, and only the statuses wait for the end of the source."""

    def __init__(self, keys: VerificationKeys | None = None):
        self.keys = keys if keys is not None and not keys.is_empty else None
        self.verified = 0
        self._raw: dict[str, str] = {}
        # Chunks of tokens the workers are checking, oldest first.
        self._in_flight: deque[_Chunk] = deque()
        self._pool: ProcessPoolExecutor | None = None
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
        self.close()
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
                self._verify_round(connection, wait=False)

    def _verify_round(self, connection: duckdb.DuckDBPyConnection, *, wait: bool) -> None:
        """Hand the tokens collected so far to be checked; store the statuses of the
        checks that are done, of all of them when ``wait``. Only the statuses are kept."""
        shas = self._unchecked(connection)
        tokens = [self._raw[sha] for sha in shas]
        self._raw = {}
        if tokens:
            self._check(connection, shas, tokens)
        if wait:
            self._check_unstarted()
        in_flight = sum(len(chunk.shas) for chunk in self._in_flight)
        while self._in_flight and (wait or in_flight > _IN_FLIGHT or self._in_flight[0].done()):
            chunk = self._in_flight.popleft()
            self._store_statuses(connection, chunk.shas, chunk.statuses())
            in_flight -= len(chunk.shas)

    def _check_unstarted(self) -> None:
        """At the end of a source, check here the chunks no worker has started, newest
        first, while the workers finish the oldest: this process has nothing else to
        do, so every core checks signatures to the end.

        Measured on 2 cores (one worker), the simulated 10M-use log waited 6.65 s at its
        end for the worker, and the 1M-use log 2.1 s of its 7.0 s.
        """
        keys = self.keys
        if keys is None:
            return  # nothing was handed to the workers
        for chunk in reversed(self._in_flight):
            if chunk.done():
                continue
            if not chunk.future.cancel():
                return  # a worker has it; it has all the older ones too
            chunk.checked_here = [signature_status(token, keys) for token in chunk.tokens]

    def _check(
        self, connection: duckdb.DuckDBPyConnection, shas: list[str], tokens: list[str]
    ) -> None:
        """Check a few tokens here and now; hand many to the worker processes."""
        assert self.keys is not None
        cores = os.cpu_count() or 1
        if cores < 2 or (self._pool is None and len(tokens) < _PARALLEL_FROM):
            statuses = [signature_status(token, self.keys) for token in tokens]
            self._store_statuses(connection, shas, statuses)
            return
        if self._pool is None:
            # Spawned, not forked: a forked worker would keep its own copy of every
            # page of this process's memory that changes while the source is read.
            self._pool = ProcessPoolExecutor(
                max_workers=_workers(cores),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.keys,),
            )
        size = -(-len(tokens) // (_workers(cores) * 4))
        for start in range(0, len(tokens), size):
            part = tokens[start : start + size]
            future = self._pool.submit(_verify_chunk, part)
            self._in_flight.append(_Chunk(shas[start : start + size], part, future))

    def _store_statuses(
        self, connection: duckdb.DuckDBPyConnection, shas: list[str], statuses: Sequence[str]
    ) -> None:
        self.verified += len(statuses)
        if statuses:
            log.info("verified %d distinct tokens", len(statuses))
        va_round = pa.table(  # noqa: F841 (read by the query below)
            {
                "token_sha256": pa.array(shas, pa.string()),
                "signature_status": pa.array(statuses, pa.string()),
                "verified_with": pa.array([self.fingerprint] * len(shas), pa.string()),
            }
        )
        connection.execute("insert into token_statuses select * from va_round")

    def close(self) -> None:
        """Stop the workers and forget what they were checking (an ingest that failed)."""
        self._in_flight.clear()
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def settle(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Insert the source's new tokens into `tokens` and settle their signatures."""
        self._verify_round(connection, wait=True)
        self.close()
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
        # Keys only add knowledge: a status (and the key set that decided it) gives way
        # only to a higher one, so keys that checked nothing cannot undo another's verdict.
        connection.execute(
            """
            update tokens set signature_status = s.signature_status,
                verified_with = s.verified_with
            from token_statuses as s
            where tokens.token_sha256 = s.token_sha256
                and coalesce(lower(tokens.alg), '') <> 'none'
                and list_position(?, s.signature_status)
                    > list_position(?, tokens.signature_status)
            """,
            [_STATUS_RANK, _STATUS_RANK],
        )
        connection.execute("drop table new_tokens")
        connection.execute("drop table token_checks")
        connection.execute("drop table token_statuses")

    def _unchecked(self, connection: duckdb.DuckDBPyConnection) -> list[str]:
        """The collected tokens this key set has not decided, in the store or earlier
        in this source, and that are not being checked now. A status this key set
        checked but did not raise stays with the keys that decided it: it is offered
        again, and costs a re-check."""
        if self.keys is None or not self._raw:
            return []
        # Read by replacement scan: a view registered inside the source's
        # transaction would keep every round's table until the commit.
        va_seen = pa.table({"token_sha256": list(self._raw)})  # noqa: F841
        va_in_flight = pa.table(  # noqa: F841
            {
                "token_sha256": pa.array(
                    [sha for chunk in self._in_flight for sha in chunk.shas], pa.string()
                )
            }
        )
        rows = connection.execute(
            """
            select token_sha256 from va_seen
            where token_sha256 not in (
                select token_sha256 from tokens where verified_with = ?
            )
            and token_sha256 not in (select token_sha256 from token_statuses)
            and token_sha256 not in (select token_sha256 from va_in_flight)
            and token_sha256 not in (
                select token_sha256 from token_checks where error is not null
            )
            """,
            [self.fingerprint],
        ).fetchall()
        return [row[0] for row in rows]


@dataclass
class _Chunk:
    """Tokens handed to the workers: their SHA-256s, the tokens themselves, kept until
    the statuses are stored (``_IN_FLIGHT`` bounds them, about 1 KB each), and the
    statuses to come."""

    shas: list[str]
    tokens: list[str]
    future: Future[list[str]]
    # The statuses, when this process checked the chunk instead (``_check_unstarted``).
    checked_here: list[str] | None = None

    def done(self) -> bool:
        return self.checked_here is not None or self.future.done()

    def statuses(self) -> list[str]:
        return self.checked_here if self.checked_here is not None else self.future.result()


def _workers(cores: int) -> int:
    """Signature workers: every core but one, which the source's reading and DuckDB's
    queries keep busy. Measured on 2 cores, the simulated 10M-use log (349,783 ES256
    tokens) ingested in 68.2 s on average with one worker, 78.0 s with two (three
    interleaved pairs, each faster with one)."""
    return max(1, min(cores - 1, 8))


_worker_keys: VerificationKeys | None = None


def _init_worker(keys: VerificationKeys) -> None:
    global _worker_keys
    _worker_keys = keys


def _verify_chunk(tokens: list[str]) -> list[str]:
    assert _worker_keys is not None
    return [signature_status(token, _worker_keys) for token in tokens]
