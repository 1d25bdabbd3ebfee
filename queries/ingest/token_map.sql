-- Each distinct token of one batch, once: its SHA-256, whether it has the shape of a
-- JWS, and the header and payload segments to decode. Hashing per distinct token,
-- not per request, is what keeps ingestion fast: one token serves an hour of calls.
select
    tok,
    sha256(tok) as token_sha256,
    va_jws_shape(tok) as jws_shape,
    split_part(tok, '.', 1) as header_segment,
    split_part(tok, '.', 2) as payload_segment
from va_parsed
where tok is not null
group by tok
