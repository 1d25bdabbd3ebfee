"""The tokens of one batch, found and fingerprinted in Arrow memory.

The compact tokens never enter a DuckDB table or operator that could spill to disk,
and no per-row string work is done on them: a token is about 600 bytes, and DuckDB's
`trim` alone over every row's token was half of a Parquet ingest's parse (measured:
0.43 s of 0.61 s per batch of 245,760 rows).

Instead Arrow dictionary-encodes the batch's `token` and `authorization` columns
together with the distinct values of the batch before, which gives in one pass where
each row's value stands among them, the earlier batch's first. Python reads only the
values that batch did not have: it trims a `token`, takes the token out of an
`Authorization: Bearer` value, and hashes it. One token serves an hour of requests,
and a log runs in time order, so that is a few thousand values per batch (measured:
2,249 to 2,913 in 50,000 rows of the simulated 10M-use world), not one per request.

Known limitation, by design: a value is remembered for one batch only. A token that
comes back after a batch without it is read and hashed again, and handed on again,
where the decoder and verifier skip what the source already holds. Remembering every
value of a log of tens of millions would cost about 1 KB of memory each, outside
DuckDB's memory limit, and re-encoding them all with every batch was most of the
fingerprinting time (measured: 0.15 s a batch with 100,000 remembered).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

# What DuckDB's trim() removes, and so what every field of a record is trimmed of:
# the Unicode space separators (category Zs). Tabs and newlines stay.
SPACES = "\u0020\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"

# The compact token inside an `Authorization: Bearer <jwt>` value. The whitespace is
# RE2's \s, as in the bearer pattern of the quarantine's masking (va_mask).
_WS = "\t\n\f\r "
_BEARER = re.compile(f"[{_WS}]*[Bb][Ee][Aa][Rr][Ee][Rr][{_WS}]+([^{_WS}]+)[{_WS}]*")

# The shape of a JWS in compact form: three base64url parts.
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# A token's fingerprint: its SHA-256 (lowercase hex) and whether it has a JWS's shape.
Fingerprint = tuple[str, bool]

# What a value of a column holds: a token, no token (missing or blank), or, for an
# Authorization header, something that is not a Bearer token.
_Read = tuple[str | None, bool]


@dataclass
class _Seen:
    """The distinct values one column showed in a batch, with what each holds."""

    values: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    sha256: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    jws_shape: pa.Array = field(default_factory=lambda: pa.array([], pa.bool_()))
    not_bearer: pa.Array = field(default_factory=lambda: pa.array([], pa.bool_()))


@dataclass
class SourceTokens:
    """What the source's last batch showed, so that a value that recurs from batch to
    batch is read, hashed and handed to the decoder once, not once per batch."""

    token: _Seen = field(default_factory=_Seen)
    authorization: _Seen = field(default_factory=_Seen)


def fingerprint_tokens(parsed: pa.Table, seen: SourceTokens) -> tuple[pa.Table, pa.Table]:
    """Split a parsed access-log batch into its rows without the raw `token` and
    `authorization` columns, and a table of the distinct tokens the source had not
    shown before: ``tok``, ``token_sha256``, ``jws_shape``, ``header_segment``,
    ``payload_segment``.

    Each row gets ``token_form`` (``jwt``, ``bad_authorization``, ``claims``, or null
    when it gave none), ``token_sha256`` (its token's, or the one given beside claims,
    trimmed and lowercased), ``claims`` (only beside no token) and ``jws_shape``. A
    `token` that is blank leaves the row to its `authorization` header, as in the
    contract's three token forms.
    """
    new: dict[str, Fingerprint] = {}
    sha256, jws_shape, _, seen.token = _read_column(parsed["token"], seen.token, _from_token, new)
    not_bearer = pa.nulls(parsed.num_rows, pa.bool_())
    if sha256.null_count and parsed["authorization"].null_count < parsed.num_rows:
        *from_header, seen.authorization = _read_column(
            parsed["authorization"], seen.authorization, _from_authorization, new
        )
        sha256 = pc.coalesce(sha256, from_header[0])
        jws_shape = pc.coalesce(jws_shape, from_header[1])
        not_bearer = from_header[2]

    is_jwt = pc.is_valid(sha256)
    bad_header = pc.and_(pc.invert(is_jwt), pc.fill_null(not_bearer, False))
    claims = parsed["claims"].combine_chunks()
    given_sha256 = pc.utf8_lower(pc.utf8_trim(parsed["token_sha256"].combine_chunks(), SPACES))
    gave_claims = pc.or_(_present(claims), _present(given_sha256))
    form = pc.case_when(
        pc.make_struct(is_jwt, bad_header, gave_claims),
        pa.scalar("jwt"),
        pa.scalar("bad_authorization"),
        pa.scalar("claims"),
    )
    rows = parsed.drop_columns(["token", "authorization", "claims", "token_sha256"])
    rows = rows.append_column("token_form", form)
    rows = rows.append_column("claims", pc.if_else(is_jwt, pa.scalar(None, pa.string()), claims))
    rows = rows.append_column("token_sha256", pc.if_else(is_jwt, sha256, given_sha256))
    rows = rows.append_column("jws_shape", pc.fill_null(pc.and_(is_jwt, jws_shape), False))
    return rows, _token_map(new)


def _read_column(
    column: pa.ChunkedArray,
    seen: _Seen,
    read: Callable[[str], _Read],
    new: dict[str, Fingerprint],
) -> tuple[pa.Array, pa.Array, pa.Array, _Seen]:
    """Each row's token SHA-256, JWS shape and not-Bearer flag, from ``seen`` and the
    values new to the source, which are read and fingerprinted; and what the column
    has shown, these values included."""
    known = len(seen.values)
    chunks = [seen.values, *(chunk.cast(pa.string()) for chunk in column.chunks)]
    encoded = pc.dictionary_encode(pa.chunked_array(chunks, pa.string()))
    # Arrow drops empty chunks: a column of no rows and no remembered values has none.
    dictionary = encoded.chunk(0).dictionary if encoded.num_chunks else seen.values
    shas: list[str | None] = []
    shapes: list[bool | None] = []
    not_bearer: list[bool] = []
    for value in dictionary.slice(known).to_pylist():
        token, not_a_bearer = read(value)
        fingerprint = None
        if token is not None:
            fingerprint = new.get(token) or _fingerprint(token)
            new[token] = fingerprint
        shas.append(fingerprint[0] if fingerprint else None)
        shapes.append(fingerprint[1] if fingerprint else None)
        not_bearer.append(not_a_bearer)

    sha256 = pa.concat_arrays([seen.sha256, pa.array(shas, pa.string())])
    jws_shape = pa.concat_arrays([seen.jws_shape, pa.array(shapes, pa.bool_())])
    flags = pa.concat_arrays([seen.not_bearer, pa.array(not_bearer, pa.bool_())])
    # The rows' positions follow the remembered values'.
    every = pa.chunked_array([chunk.indices for chunk in encoded.chunks], pa.int32())
    indices = every.combine_chunks().slice(known)
    # The next batch starts from this batch's own distinct values (a null is none).
    used = pc.unique(indices.drop_null())
    remembered = _Seen(*(array.take(used) for array in (dictionary, sha256, jws_shape, flags)))
    return sha256.take(indices), jws_shape.take(indices), flags.take(indices), remembered


def _from_token(value: str) -> _Read:
    token = value.strip(SPACES)
    return (token or None), False


def _from_authorization(value: str) -> _Read:
    bearer = _BEARER.fullmatch(value)
    if bearer:
        return bearer.group(1), False
    return None, bool(value.strip(SPACES))


def _present(column: pa.Array) -> pa.Array:
    """True where a text field is given: not null and not only spaces."""
    return pc.fill_null(pc.not_equal(pc.utf8_trim(column, SPACES), ""), False)


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
