-- The findings of a report's scope, the most severe first: those of the users,
-- device-session records or Supabase sessions named, or every one when $all;
-- overlapping [$start, $end). `total` counts before the limit.
select
    finding_id,
    verdict,
    reason,
    severity,
    user_id,
    device_session_id,
    supabase_session_id,
    first_at,
    last_at,
    uses,
    explanation,
    count(*) over () as total
from findings
where (
        $all
        or list_contains($users::varchar[], user_id)
        or list_contains($device_sessions::varchar[], device_session_id)
        or list_contains($sessions::varchar[], supabase_session_id)
    )
    and ($start::timestamptz is null or last_at >= $start::timestamptz)
    and ($end::timestamptz is null or first_at < $end::timestamptz)
order by
    case verdict when 'anomalous' then 0 when 'needs_review' then 1 else 2 end,
    first_at,
    finding_id
limit $limit
