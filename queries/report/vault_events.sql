-- The other Vault events of a report's scope: secret access by the users named, and
-- the membership and grant changes that concern them; every one when $all; within
-- [$start, $end). `total` counts before the limit.
select
    occurred_at,
    type,
    actor_id,
    target_user_id,
    workspace_id,
    secret_id,
    visibility,
    role,
    permission,
    ip,
    user_agent,
    count(*) over () as total
from vault_events
where (type like 'secret.%' or type like 'workspace.member.%' or type like 'grant.%')
    and (
        $all
        or list_contains($users::varchar[], actor_id)
        or list_contains($users::varchar[], target_user_id)
    )
    and ($start::timestamptz is null or occurred_at >= $start::timestamptz)
    and ($end::timestamptz is null or occurred_at < $end::timestamptz)
order by occurred_at, id
limit $limit
