-- Revocations with their exposure windows, newest first; only $user_id's when given.
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
where cast($user_id as varchar) is null or user_id = cast($user_id as varchar)
order by revoked_at desc, device_session_id
