-- The exposure window of each revocation in a report's scope: from the revocation to
-- the latest expiry among the Supabase session's tokens issued by then, open-ended
-- while the session keeps minting tokens.
select
    device_session_id,
    supabase_session_id,
    user_id,
    revoked_at,
    revoked_by,
    window_end,
    open_ended,
    uses_in_window,
    last_use_at
from revocation_exposure
where (
        $all
        or list_contains($users::varchar[], user_id)
        or list_contains($device_sessions::varchar[], device_session_id)
        or list_contains($sessions::varchar[], supabase_session_id)
    )
    and ($start::timestamptz is null or revoked_at >= $start::timestamptz)
    and ($end::timestamptz is null or revoked_at < $end::timestamptz)
order by revoked_at, device_session_id
