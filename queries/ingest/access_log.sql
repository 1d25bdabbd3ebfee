-- API requests that presented a JWT, typed, with the reason a record cannot be used.
-- `stage` holds no raw token: only its SHA-256 and whether it had the shape of a JWS;
-- `token_checks` says why a distinct token of this source could not be decoded.
-- The fields trimmed of spaces are trimmed already, in Arrow (load.py, _ACCESS_LOG_TRIMMED):
-- a blank one is the empty string here.
select
    s.line,
    case
        when s.parse_error is not null then s.parse_error
        when coalesce(s.request_id, '') = '' then 'missing key field: request_id'
        when coalesce(s.at, '') = '' then 'missing key field: at'
        when va_trimmed_time(s.at) is null then 'unparsable time in at'
        when coalesce(s.decision, '') = '' then 'missing key field: decision'
        when lower(s.decision) not in ('allow', 'deny') then 'unknown decision value'
        when s.status <> '' and try_cast(s.status as integer) is null
            then 'status is not an integer'
        when s.token_form is null
            then 'missing token: give token, authorization, or claims with token_sha256'
        when s.token_form = 'bad_authorization' then 'authorization is not a Bearer token'
        when s.token_form = 'jwt' and not s.jws_shape then 'token is not a JWT'
        when s.token_form = 'jwt' and c.error is not null then c.error
        when s.token_form = 'claims' and not va_is_object(s.claims)
            then 'claims is not a JSON object'
        when s.token_form = 'claims' and va_blank(s.token_sha256)
            then 'missing key field: token_sha256'
        when s.token_form = 'claims' and not regexp_full_match(s.token_sha256, '[0-9a-f]{64}')
            then 'token_sha256 is not a SHA-256 hex digest'
    end as reason,
    s.request_id,
    va_trimmed_time(s.at) as used_at,
    upper(nullif(s.method, '')) as method,
    va_redact_jwts(s.path) as path,
    try_cast(s.status as integer) as status,
    lower(s.decision) as decision,
    nullif(s.ip, '') as ip,
    va_redact_jwts(s.user_agent) as user_agent,
    nullif(s.workspace_id, '') as workspace_id,
    nullif(s.resource, '') as resource,
    s.token_sha256,
    case when s.token_form = 'claims' then s.claims end as claims
from stage as s
left join token_checks as c on c.token_sha256 = s.token_sha256 and s.token_form = 'jwt'
