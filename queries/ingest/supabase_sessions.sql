-- Rows of a snapshot of Supabase Auth's auth.sessions, typed. The snapshot time is
-- the --snapshot-at option when given, else the row's snapshot_at column.
select
    line,
    case
        when parse_error is not null then parse_error
        when va_blank(id) then 'missing key field: id'
        when $snapshot_at is null and va_blank(snapshot_at) then 'missing key field: snapshot_at'
        when $snapshot_at is null and va_time(snapshot_at) is null
            then 'unparsable time in snapshot_at'
        when va_bad_time(created_at) then 'unparsable time in created_at'
        when va_bad_time(updated_at) then 'unparsable time in updated_at'
        when va_bad_time(refreshed_at) then 'unparsable time in refreshed_at'
        when va_bad_time(not_after) then 'unparsable time in not_after'
    end as reason,
    trim(id) as id,
    coalesce($snapshot_at::timestamptz, va_time(snapshot_at)) as snapshot_at,
    nullif(trim(user_id), '') as user_id,
    va_time(created_at) as created_at,
    va_time(updated_at) as updated_at,
    va_time(refreshed_at) as refreshed_at,
    va_time(not_after) as not_after,
    nullif(trim(aal), '') as aal,
    user_agent,
    nullif(trim(ip), '') as ip
from stage
