-- Every row of Supabase's auth.sessions now, as the supabase-sessions input kind.
-- refreshed_at is a timestamp without time zone that Supabase Auth writes in UTC.
select
    id::text as id,
    user_id::text as user_id,
    created_at,
    updated_at,
    refreshed_at at time zone 'UTC' as refreshed_at,
    not_after,
    aal::text as aal,
    user_agent::text as user_agent,
    host(ip) as ip
from auth.sessions
