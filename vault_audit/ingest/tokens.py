"""The distinct tokens of one batch, fingerprinted in Arrow memory.

The compact tokens never enter a DuckDB table or operator that could spill to disk:
Arrow dictionary-encodes the batch's token column, which gives its distinct tokens
and where each row's token stands among them in one pass, and Python hashes each
distinct token once per source, remembering it for the source's later batches. One
token serves an hour of requests, so that is a few thousand hashes per batch, not one
per request.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pyarrow.compute as pc

# The shape of a JWS in compact form: three base64url parts.
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# A token's fingerprint: its SHA-256 (lowercase hex) and whether it has a JWS's shape.
Fingerprint = tuple[str, bool]

# Known limitation: a source with more distinct tokens than this forgets them all and
# hashes each again the next time it recurs, because remembering every token of a log
# of tens of millions would cost about 1 KB of memory each, outside DuckDB's memory
# limit. 200,000 is about 200 MB, and an hour of a 5,000-user tenant is some thousands.
_REMEMBERED_TOKENS = 200_000


def fingerprint_tokens(
    parsed: pa.Table, known: dict[str, Fingerprint] | None = None
) -> tuple[pa.Table, pa.Table]:
    """Split a parsed batch into its rows without the ``tok`` column (each with the
    token's ``jwt_sha256`` and ``jws_shape``) and a table of the distinct tokens the
    source had not shown before: ``tok``, ``token_sha256``, ``jws_shape``,
    ``header_segment``, ``payload_segment``.

    ``known`` remembers the fingerprints of one source's earlier batches, so a token
    that recurs is hashed, decoded and collected for its signature check once per
    source, not once per batch.
    """
    known = {} if known is None else known
    encoded = pc.dictionary_encode(parsed.column("tok").combine_chunks())
    fingerprints: list[Fingerprint] = []
    new: dict[str, Fingerprint] = {}
    for token in encoded.dictionary.to_pylist():
        fingerprint = known.get(token)
        if fingerprint is None:
            fingerprint = new[token] = _fingerprint(token)
        fingerprints.append(fingerprint)
    if len(known) + len(new) > _REMEMBERED_TOKENS:
        known.clear()
    known.update(new)

    shas, shapes = zip(*fingerprints, strict=True) if fingerprints else ((), ())
    rows = parsed.drop_columns(["tok"])
    rows = rows.append_column("jwt_sha256", pa.array(shas, pa.string()).take(encoded.indices))
    rows = rows.append_column("jws_shape", pa.array(shapes, pa.bool_()).take(encoded.indices))
    return rows, _token_map(new)


def _token_map(fingerprints: dict[str, Fingerprint]) -> pa.Table:
    """The decoder's table of tokens: the header and payload segments of each JWS."""
    segments = [
        token.split(".", 2)[:2] if shaped else (None, None)
        for token, (_, shaped) in fingerprints.items()
    ]
    headers, payloads = zip(*segments, strict=True) if segments else ((), ())
    return pa.table(
        {
            "tok": pa.array(list(fingerprints), pa.string()),
            "token_sha256": pa.array([sha for sha, _ in fingerprints.values()], pa.string()),
            "jws_shape": pa.array([shaped for _, shaped in fingerprints.values()], pa.bool_()),
            "header_segment": pa.array(headers, pa.string()),
            "payload_segment": pa.array(payloads, pa.string()),
        }
    )


def _fingerprint(token: str) -> Fingerprint:
    sha = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return sha, _JWS.fullmatch(token) is not None
