-- Each distinct well-formed token of an access-log file, once: its SHA-256 and the
-- header and payload segments to decode. The result goes to Python memory (never to
-- a table), which also takes the compact token itself when signatures are checked.
-- Placeholders: source, the file's subquery; token_column, `t` or null.
select
    token_key,
    token_key2,
    sha256(t) as token_sha256,
    split_part(t, '.', 1) as header_segment,
    split_part(t, '.', 2) as payload_segment,
    {token_column} as token
from (
    select hash(tok) as token_key, hash(reverse(tok)) as token_key2, any_value(tok) as t
    from (
        select coalesce(nullif(trim(token), ''), va_bearer("authorization")) as tok
        from ({source})
        where parse_error is null
    )
    where tok is not null and va_jws_shape(tok)
    group by all
)
