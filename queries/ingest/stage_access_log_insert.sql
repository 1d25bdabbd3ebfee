-- The batch's records for the stage: the token replaced by its SHA-256.
select
    p.* exclude (tok, given_sha256),
    case when p.token_form = 'jwt' then m.token_sha256 else p.given_sha256 end as token_sha256,
    coalesce(m.jws_shape, false) as jws_shape
from va_parsed as p
left join va_token_map as m on m.tok = p.tok
