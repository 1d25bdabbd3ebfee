"""The distinct tokens of one batch, fingerprinted in Arrow memory.

The compact tokens never enter a DuckDB table or operator that could spill to disk:
Arrow finds the distinct ones and where each row's token stands among them, and
Python hashes each distinct token once per source, remembering it for the source's
later batches. One token serves an hour of requests, so that is a few thousand hashes
per batch, not one per request.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pyarrow.compute as pc

# The shape of a JWS in compact form: three base64url parts.
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


# A token's fingerprint and the two parts the decoder needs: (token_sha256, jws_shape,
# header_segment, payload_segment); the parts are None for a string that is no JWS.
Fingerprint = tuple[str, bool, str | None, str | None]

# Known limitation: a source with more distinct tokens than this hashes those past it
# again in each later batch they recur in, because remembering every token of a log of
# tens of millions would cost about 1 KB of memory each.
_REMEMBERED_TOKENS = 500_000


def fingerprint_tokens(
    parsed: pa.Table, known: dict[str, Fingerprint] | None = None
) -> tuple[pa.Table, pa.Table]:
    """Split a parsed batch into its rows without the ``tok`` column (each with the
    token's ``jwt_sha256`` and ``jws_shape``) and a table of its distinct tokens:
    ``tok``, ``token_sha256``, ``jws_shape``, ``header_segment``, ``payload_segment``.

    ``known`` remembers the fingerprints of one source's earlier batches, so a token
    that recurs is hashed once per source, not once per batch.
    """
    known = {} if known is None else known
    tokens = parsed.column("tok")
    distinct = pc.drop_null(pc.unique(tokens))

    fingerprints = []
    for token in distinct.to_pylist():
        fingerprint = known.get(token)
        if fingerprint is None:
            fingerprint = _fingerprint(token)
            if len(known) >= _REMEMBERED_TOKENS:
                known.clear()
            known[token] = fingerprint
        fingerprints.append(fingerprint)
    shas, shapes, headers, payloads = zip(*fingerprints, strict=True) if fingerprints else ((),) * 4

    token_map = pa.table(
        {
            "tok": distinct,
            "token_sha256": pa.array(shas, pa.string()),
            "jws_shape": pa.array(shapes, pa.bool_()),
            "header_segment": pa.array(headers, pa.string()),
            "payload_segment": pa.array(payloads, pa.string()),
        }
    )
    positions = pc.index_in(tokens, value_set=distinct)
    rows = parsed.drop_columns(["tok"])
    rows = rows.append_column("jwt_sha256", pc.take(token_map.column("token_sha256"), positions))
    rows = rows.append_column("jws_shape", pc.take(token_map.column("jws_shape"), positions))
    return rows, token_map


def _fingerprint(token: str) -> Fingerprint:
    sha = hashlib.sha256(token.encode("utf-8")).hexdigest()
    if _JWS.fullmatch(token) is None:
        return sha, False, None, None
    header, payload, _ = token.split(".", 2)
    return sha, True, header, payload
