-- The device-session inventory as a user sees it: each device-session record of the
-- user ($user_id), whether it is revoked, active, or current (the active record seen
-- most recently), and when it was last seen: the later of a snapshot's last_seen_at
-- and the last token use of its Supabase session while it was the latest record there.
-- The user's records, and the other records of their Supabase sessions, which decide
-- when each of the user's stopped being the latest there. A record that names no
-- Supabase session is the user's all the same.
with records as (
    select *
    from device_sessions
    where user_id = $user_id
       or supabase_session_id in (
           select supabase_session_id from device_sessions where user_id = $user_id
       )
),

last_uses as (
    select records.device_session_id, max(uses.used_at) as last_used_at
    from records
    join tokens on tokens.session_id = records.supabase_session_id
    join token_uses as uses on uses.token_sha256 = tokens.token_sha256
    where uses.used_at >= records.registered_from
      and (records.superseded_at is null or uses.used_at < records.superseded_at)
    group by records.device_session_id
),

seen as (
    select
        records.*,
        greatest(records.last_seen_at, last_uses.last_used_at) as last_seen
    from records
    left join last_uses on last_uses.device_session_id = records.device_session_id
    where records.user_id = $user_id
),

ranked as (
    select
        seen.*,
        row_number() over (
            order by case when revoked_at is null then 0 else 1 end,
                last_seen desc nulls last,
                registered_from desc nulls last,
                device_session_id
        ) as recency
    from seen
)

select
    device_session_id,
    case
        when revoked_at is not null then 'revoked'
        when recency = 1 then 'current'
        else 'active'
    end as status,
    label,
    user_agent,
    ip,
    supabase_session_id,
    registered_at,
    last_seen,
    revoked_at,
    revoked_by
from ranked
order by registered_from desc nulls last, device_session_id
