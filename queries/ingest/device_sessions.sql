-- Rows of a snapshot of Vault's device-session table, typed. The snapshot time is
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
        when va_bad_time(last_seen_at) then 'unparsable time in last_seen_at'
        when va_bad_time(revoked_at) then 'unparsable time in revoked_at'
    end as reason,
    trim(id) as id,
    coalesce($snapshot_at::timestamptz, va_time(snapshot_at)) as snapshot_at,
    nullif(trim(user_id), '') as user_id,
    nullif(trim(supabase_session_id), '') as supabase_session_id,
    label,
    user_agent,
    nullif(trim(ip), '') as ip,
    va_time(created_at) as created_at,
    va_time(last_seen_at) as last_seen_at,
    va_time(revoked_at) as revoked_at,
    nullif(trim(revoked_by), '') as revoked_by
from stage
