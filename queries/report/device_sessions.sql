-- The device-session records in a report's scope: those named, or every record
-- registered, seen or revoked within [$start, $end) when $all.
select
    device_session_id,
    user_id,
    supabase_session_id,
    label,
    user_agent,
    ip,
    registered_at,
    revoked_at,
    revoked_by,
    last_seen_at
from device_sessions
where case
    when $all then (
        ($start::timestamptz is null or greatest(
            registered_at, revoked_at, last_seen_at) >= $start::timestamptz)
        and ($end::timestamptz is null or least(
            registered_at, revoked_at, last_seen_at) < $end::timestamptz)
    )
    else list_contains($device_sessions::varchar[], device_session_id)
        or list_contains($sessions::varchar[], supabase_session_id)
        or list_contains($users::varchar[], user_id)
    end
order by coalesce(revoked_at, registered_at, last_seen_at), device_session_id
