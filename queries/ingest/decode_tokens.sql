-- The header and claims of each distinct token of a batch (va_token_map) that neither
-- this source nor the store has seen, decoded once per token, with the reason a token
-- is not a usable JWT. Only a string that is not a JWS, or whose payload is not a JSON
-- object, is refused; missing claims are fine.
select
    token_sha256,
    header_json,
    payload_json,
    case
        when not va_is_object(header_json)
            then 'token is not a JWT: its header is not a JSON object'
        when not va_is_object(payload_json) then 'token payload is not a JSON object'
    end as error
from (
    select
        token_sha256,
        va_b64url_text(header_segment) as header_json,
        va_b64url_text(payload_segment) as payload_json
    from va_token_map
    where jws_shape
      and token_sha256 not in (select token_sha256 from token_checks)
      and token_sha256 not in (select token_sha256 from tokens)
)
