-- New tokens into `tokens`: claims pulled out of the payload once per token.
-- Claims of the wrong JSON type, and an iat or exp outside va_in_range, count as
-- missing (null), so rules that need them do not apply. `alg: none` is invalid
-- whatever keys were given.
insert into tokens by name
select
    token_sha256,
    header_json ->> 'alg' as alg,
    header_json ->> 'kid' as kid,
    case when json_type(payload_json, '$.sub') = 'VARCHAR' then payload_json ->> 'sub' end as sub,
    case when json_type(payload_json, '$.session_id') = 'VARCHAR'
        then payload_json ->> 'session_id' end as session_id,
    case when json_type(payload_json, '$.role') = 'VARCHAR'
        then payload_json ->> 'role' end as role,
    case
        when json_type(payload_json, '$.aud') = 'VARCHAR' then payload_json ->> 'aud'
        when json_type(payload_json, '$.aud') = 'ARRAY' then (payload_json -> 'aud')::varchar
    end as aud,
    case when json_type(payload_json, '$.iss') = 'VARCHAR' then payload_json ->> 'iss' end as iss,
    case when json_type(payload_json, '$.aal') = 'VARCHAR' then payload_json ->> 'aal' end as aal,
    case when json_type(payload_json, '$.is_anonymous') = 'BOOLEAN'
        then (payload_json ->> 'is_anonymous')::boolean end as is_anonymous,
    va_in_range(try(to_timestamp(iat))) as issued_at,
    va_in_range(try(to_timestamp(exp))) as expires_at,
    -- Whole seconds, rounded up: rule 3's `lifetime_seconds > max_token_lifetime` (a
    -- whole number) is then exactly `exp - iat > max_token_lifetime` (3600.4 exceeds 3600).
    -- Known limitation: a token stored by an earlier version kept floor(exp - iat), and
    -- ingesting it again does not replace it; only fractional claims are affected.
    try_cast(ceil(exp - iat) as bigint) as lifetime_seconds,
    payload_json::json as claims,
    case
        when lower(coalesce(header_json ->> 'alg', '')) = 'none' then 'invalid'
        else coalesce(signature_status, 'unverified')
    end as signature_status,
    verified_with
from (
    select
        *,
        case when json_type(payload_json, '$.iat') in ('UBIGINT', 'BIGINT', 'DOUBLE')
            then (payload_json ->> 'iat')::double end as iat,
        case when json_type(payload_json, '$.exp') in ('UBIGINT', 'BIGINT', 'DOUBLE')
            then (payload_json ->> 'exp')::double end as exp
    from new_tokens
)
where token_sha256 not in (select token_sha256 from tokens)
