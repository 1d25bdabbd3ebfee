-- Vault's own audit events, typed, with the reason a record cannot be used.
-- A null reason means the event is usable; `target` fields are flattened for the
-- correlation queries and kept whole beside them.
select
    line,
    case
        when parse_error is not null then parse_error
        when va_blank(id) then 'missing key field: id'
        when va_blank(type) then 'missing key field: type'
        when va_blank(occurred_at) then 'missing key field: occurred_at'
        when va_time(occurred_at) is null then 'unparsable time in occurred_at'
        when not va_blank(target) and not va_is_object(target) then 'target is not a JSON object'
        when trim(type) in ('session.register', 'session.revoke')
            and (not va_is_object(target) or va_blank(target ->> 'device_session_id'))
            then 'session event without target.device_session_id'
    end as reason,
    trim(id) as id,
    trim(type) as type,
    va_time(occurred_at) as occurred_at,
    nullif(trim(actor_id), '') as actor_id,
    nullif(trim(workspace_id), '') as workspace_id,
    nullif(trim(ip), '') as ip,
    user_agent,
    case when va_is_object(target) then target::json end as target,
    case when va_is_object(target) then nullif(target ->> 'device_session_id', '') end
        as device_session_id,
    case when va_is_object(target) then nullif(target ->> 'user_id', '') end as target_user_id,
    case when va_is_object(target) then nullif(target ->> 'supabase_session_id', '') end
        as supabase_session_id,
    case when va_is_object(target) then target ->> 'label' end as label,
    case when va_is_object(target) then nullif(target ->> 'secret_id', '') end as secret_id,
    case when va_is_object(target) then nullif(target ->> 'visibility', '') end as visibility,
    case when va_is_object(target) then nullif(target ->> 'role', '') end as role,
    case when va_is_object(target) then nullif(target ->> 'permission', '') end as permission
from stage
