-- The identity provider's audit entries (auth.audit_log_entries) of a report's
-- scope: those whose actor or traits name a user named; every one when $all; within
-- [$start, $end). `total` counts before the limit.
select
    created_at,
    action,
    actor_id,
    actor_username,
    traits_user_id,
    log_type,
    ip_address,
    count(*) over () as total
from idp_audit
where (
        $all
        or list_contains($users::varchar[], actor_id)
        or list_contains($users::varchar[], traits_user_id)
    )
    and ($start::timestamptz is null or created_at >= $start::timestamptz)
    and ($end::timestamptz is null or created_at < $end::timestamptz)
order by created_at, id
limit $limit
