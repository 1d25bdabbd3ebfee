-- Access-log records as text fields, with the token replaced by what may be kept:
-- which form it came in, a pair of fast hashes naming it within the file, and
-- whether it has the shape of a JWS. The raw token is never materialized.
-- The source placeholder below is the file's subquery (vault_audit.ingest.sources).
select
    line, parse_error, raw_text,
    request_id, "at", method, path, status, decision, ip, user_agent, workspace_id, resource,
    case
        when tok is not null then 'jwt'
        when not va_blank("authorization") then 'bad_authorization'
        when not va_blank(claims) or not va_blank(token_sha256) then 'claims'
    end as token_form,
    hash(tok) as token_key,
    hash(reverse(tok)) as token_key2,
    coalesce(va_jws_shape(tok), false) as jws_shape,
    case when tok is null then lower(trim(token_sha256)) end as given_sha256,
    case when tok is null then claims end as claims
from (
    select *, coalesce(nullif(trim(token), ''), va_bearer("authorization")) as tok
    from ({source})
)
