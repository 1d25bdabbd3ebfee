-- The device-session records and Supabase sessions a report is about: those of the
-- user $user_id, or those named by $session_id (a device-session id or a Supabase
-- session id), with every record of the Supabase sessions found. A Supabase session
-- seen only in tokens counts too; its owner is then the tokens' subject.
with named_sessions as (
    select supabase_session_id as session_id
    from device_sessions
    where user_id = $user_id
       or device_session_id = $session_id
       or supabase_session_id = $session_id
    union
    select session_id
    from tokens
    where sub = $user_id or session_id = $session_id
)
select device_session_id, supabase_session_id, user_id
from device_sessions
where user_id = $user_id
   or device_session_id = $session_id
   or supabase_session_id in (select session_id from named_sessions)
union
select distinct null, session_id, sub
from tokens
where session_id in (select session_id from named_sessions)
