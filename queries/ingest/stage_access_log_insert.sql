-- The batch's records for the stage: the token already replaced by its SHA-256
-- (vault_audit/ingest/tokens.py), or the SHA-256 given beside claims.
select
    * exclude (jwt_sha256, given_sha256, jws_shape),
    case when token_form = 'jwt' then jwt_sha256 else given_sha256 end as token_sha256,
    coalesce(jws_shape, false) as jws_shape
from va_parsed
