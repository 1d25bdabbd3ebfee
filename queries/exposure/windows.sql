-- The exposure window of each revocation (CONTRACT.md section 3): from r to the latest
-- exp among tokens of that Supabase session issued at or before r, and open-ended while
-- the session keeps minting tokens after r, that is when a token of the session issued
-- after r was seen. window_end is null when open-ended; when no token issued at or
-- before r is still valid at r, the window is empty and ends at r.
--
-- The window is [r, window_end): a use at the latest exp is past it, as rule 1 judges
-- a token used at its exp expired. uses_in_window counts the in-scope uses attributed
-- to this record (R) inside the window; last_use_at is the last in-scope use
-- attributed to it, inside or not.
with revocations as (
    select device_session_id, supabase_session_id, user_id, revoked_at, revoked_by
    from device_sessions
    where revoked_at is not null
),

session_tokens as (
    select
        revocations.device_session_id,
        max(case when tokens.issued_at <= revocations.revoked_at then tokens.expires_at end)
            as latest_exp,
        coalesce(bool_or(tokens.issued_at > revocations.revoked_at), false) as minted_after
    from revocations
    join tokens on tokens.session_id = revocations.supabase_session_id
    group by revocations.device_session_id
),

windows as (
    select
        revocations.*,
        case
            when coalesce(session_tokens.minted_after, false) then null
            else greatest(
                coalesce(session_tokens.latest_exp, revocations.revoked_at),
                revocations.revoked_at
            )
        end as window_end,
        coalesce(session_tokens.minted_after, false) as open_ended
    from revocations
    left join session_tokens on session_tokens.device_session_id = revocations.device_session_id
),

attributed_uses as (
    select
        windows.device_session_id,
        count(
            case when windows.open_ended or uses.used_at < windows.window_end then 1 end
        ) as uses_in_window,
        max(uses.used_at) as last_use_at
    from windows
    join classified_use_facts as uses
      on uses.device_session_id = windows.device_session_id and uses.in_scope
    group by windows.device_session_id
)

select
    windows.device_session_id,
    windows.supabase_session_id,
    windows.user_id,
    windows.revoked_at,
    windows.revoked_by,
    windows.window_end,
    windows.open_ended,
    coalesce(attributed_uses.uses_in_window, 0) as uses_in_window,
    attributed_uses.last_use_at
from windows
left join attributed_uses on attributed_uses.device_session_id = windows.device_session_id
