-- Device-session records (device_sessions/merge.sql, as `device_records`) with the span
-- in which each is the latest record of its Supabase session: from registered_from, its
-- registration (a record whose registration was never seen counts as registered at its
-- revocation, the latest time its registration is known to precede), until
-- superseded_at, the next record's registration there (null: none followed). Records
-- are ordered by registration, then id, so of two registered at the same instant the
-- second is the latest. The scope of a use (uses/in_scope.sql), the report and the
-- inventory all read this one span.
select
    device_records.*,
    coalesce(registered_at, revoked_at) as registered_from,
    case when supabase_session_id is not null then
        lead(coalesce(registered_at, revoked_at)) over (
            partition by supabase_session_id
            order by coalesce(registered_at, revoked_at) nulls last, device_session_id
        )
    end as superseded_at
from device_records
