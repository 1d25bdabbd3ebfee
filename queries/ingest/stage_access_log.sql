-- Access-log records of one batch as text fields, with the compact token pulled out
-- of `token` or `Authorization: Bearer`. The result stays in process memory: the
-- loader keeps only the token's SHA-256 in the stage (vault_audit/ingest/tokens.py).
-- The source placeholder below is the batch's parse query (vault_audit.ingest.sources).
select
    line, parse_error, raw_text,
    request_id, "at", method, path, status, decision, ip, user_agent, workspace_id, resource,
    case
        when tok is not null then 'jwt'
        when not va_blank("authorization") then 'bad_authorization'
        when not va_blank(claims) or not va_blank(token_sha256) then 'claims'
    end as token_form,
    tok,
    case when tok is null then lower(trim(token_sha256)) end as given_sha256,
    case when tok is null then claims end as claims
from (
    select *, coalesce(nullif(trim(token), ''), va_bearer("authorization")) as tok
    from ({source})
)
