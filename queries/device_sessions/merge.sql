-- Device-session records: merged by device_session_id from session.register and
-- session.revoke events and from device-sessions snapshots.
--
-- registered_at: the earliest registration seen (a register event, or created_at in a
--   snapshot); null when the registration was never seen. Such a record counts as
--   registered before its revocation (uses/in_scope.sql places it at revoked_at).
-- revoked_at: the earliest revocation seen, from a revoke event or a snapshot's
--   revoked_at; revoked_by comes from the same source.
-- user_agent and ip: the register event's, else the newest snapshot's.
-- last_seen_at: the latest last_seen_at any snapshot recorded.
with session_events as (
    select
        device_session_id,
        type,
        occurred_at,
        actor_id,
        ip,
        user_agent,
        target_user_id as user_id,
        supabase_session_id,
        label,
        row_number() over (
            partition by device_session_id, type order by occurred_at, id
        ) as nth
    from vault_events
    where type in ('session.register', 'session.revoke')
      and device_session_id is not null
),

first_registration as (
    select * from session_events where type = 'session.register' and nth = 1
),

first_revocation as (
    select * from session_events where type = 'session.revoke' and nth = 1
),

snapshot_rows as (
    select
        id as device_session_id,
        user_id,
        supabase_session_id,
        label,
        user_agent,
        ip,
        created_at,
        last_seen_at,
        revoked_at,
        revoked_by,
        row_number() over (partition by id order by snapshot_at desc) as newest,
        row_number() over (
            partition by id order by revoked_at nulls last, snapshot_at
        ) as earliest_revocation
    from device_session_snapshots
),

snapshot_summary as (
    select
        device_session_id,
        min(created_at) as created_at,
        max(last_seen_at) as last_seen_at
    from snapshot_rows
    group by device_session_id
),

newest_snapshot as (
    select * from snapshot_rows where newest = 1
),

snapshot_revocation as (
    select device_session_id, revoked_at, revoked_by
    from snapshot_rows
    where earliest_revocation = 1 and revoked_at is not null
),

record_ids as (
    select device_session_id from session_events
    union
    select device_session_id from snapshot_rows
)

select
    ids.device_session_id,
    coalesce(reg.user_id, rev.user_id, snap.user_id) as user_id,
    coalesce(
        reg.supabase_session_id, rev.supabase_session_id, snap.supabase_session_id
    ) as supabase_session_id,
    coalesce(reg.label, snap.label, rev.label) as label,
    coalesce(reg.user_agent, snap.user_agent) as user_agent,
    coalesce(reg.ip, snap.ip) as ip,
    least(reg.occurred_at, summary.created_at) as registered_at,
    least(rev.occurred_at, snap_rev.revoked_at) as revoked_at,
    case
        when rev.occurred_at is not null
            and (snap_rev.revoked_at is null or rev.occurred_at <= snap_rev.revoked_at)
            then coalesce(rev.actor_id, snap_rev.revoked_by)
        else coalesce(snap_rev.revoked_by, rev.actor_id)
    end as revoked_by,
    summary.last_seen_at,
    case
        when (reg.device_session_id is not null or rev.device_session_id is not null)
            and snap.device_session_id is not null then 'events+snapshots'
        when snap.device_session_id is not null then 'snapshots'
        else 'events'
    end as source
from record_ids as ids
left join first_registration as reg on reg.device_session_id = ids.device_session_id
left join first_revocation as rev on rev.device_session_id = ids.device_session_id
left join newest_snapshot as snap on snap.device_session_id = ids.device_session_id
left join snapshot_summary as summary on summary.device_session_id = ids.device_session_id
left join snapshot_revocation as snap_rev on snap_rev.device_session_id = ids.device_session_id
