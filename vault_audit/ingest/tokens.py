"""The distinct tokens of one batch, fingerprinted in Arrow memory.

The compact tokens never enter a DuckDB table or operator that could spill to disk:
Arrow finds the distinct ones and where each row's token stands among them, and
Python hashes each distinct token once. One token serves an hour of requests, so
that is a few thousand hashes per batch, not one per request.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pyarrow.compute as pc

# The shape of a JWS in compact form: three base64url parts.
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def fingerprint_tokens(parsed: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split a parsed batch into its rows without the ``tok`` column (each with the
    token's ``jwt_sha256`` and ``jws_shape``) and a table of its distinct tokens:
    ``tok``, ``token_sha256``, ``jws_shape``, ``header_segment``, ``payload_segment``."""
    tokens = parsed.column("tok")
    distinct = pc.drop_null(pc.unique(tokens))

    shas, shapes, headers, payloads = [], [], [], []
    for token in distinct.to_pylist():
        shas.append(hashlib.sha256(token.encode("utf-8")).hexdigest())
        shaped = _JWS.fullmatch(token) is not None
        shapes.append(shaped)
        parts = token.split(".")
        headers.append(parts[0] if shaped else None)
        payloads.append(parts[1] if shaped else None)

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
