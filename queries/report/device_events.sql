-- The device-session events of Vault's audit log (session.register, session.revoke)
-- in a report's scope: every one when $all, else those of the records, Supabase
-- sessions or users named; within [$start, $end). `total` counts before the limit.
select
    occurred_at,
    type,
    actor_id,
    target_user_id,
    device_session_id,
    supabase_session_id,
    label,
    ip,
    user_agent,
    count(*) over () as total
from vault_events
where type in ('session.register', 'session.revoke')
    and (
        $all
        or list_contains($device_sessions::varchar[], device_session_id)
        or list_contains($sessions::varchar[], supabase_session_id)
        or list_contains($users::varchar[], target_user_id)
    )
    and ($start::timestamptz is null or occurred_at >= $start::timestamptz)
    and ($end::timestamptz is null or occurred_at < $end::timestamptz)
order by occurred_at, id
limit $limit
