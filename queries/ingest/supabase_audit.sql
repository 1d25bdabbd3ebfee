-- Rows of Supabase Auth's auth.audit_log_entries, typed, payload keys flattened.
-- The payload never names a session; `traits.user_id` names the user an admin's
-- user_deleted or user_modified acted on.
select
    line,
    case
        when parse_error is not null then parse_error
        when va_blank(id) then 'missing key field: id'
        when va_blank(created_at) then 'missing key field: created_at'
        when va_time(created_at) is null then 'unparsable time in created_at'
        when va_blank(payload) then 'missing key field: payload'
        when not va_is_object(payload) then 'payload is not a JSON object'
    end as reason,
    trim(id) as id,
    nullif(trim(instance_id), '') as instance_id,
    va_time(created_at) as created_at,
    coalesce(trim(ip_address), '') as ip_address,
    case when va_is_object(payload) then payload::json end as payload,
    case when va_is_object(payload) then nullif(payload ->> 'action', '') end as action,
    case when va_is_object(payload) then nullif(payload ->> 'actor_id', '') end as actor_id,
    case when va_is_object(payload) then payload ->> 'actor_username' end as actor_username,
    case when va_is_object(payload) then payload ->> 'log_type' end as log_type,
    case when va_is_object(payload) then nullif(payload -> 'traits' ->> 'user_id', '') end
        as traits_user_id
from stage
