-- The token uses in a report's scope, each with its token's claims and its verdict
-- (null when no rule applied): every use when $all, else the uses of the Supabase
-- sessions, device-session records or users named, within [$start, $end). Later
-- report queries read this temporary table, so the scope is decided once.
create or replace temp table report_uses as
select
    u.request_id,
    u.used_at,
    u.method,
    u.path,
    u.status,
    u.decision,
    u.ip,
    u.user_agent,
    u.resource,
    u.token_sha256,
    t.sub,
    t.session_id as supabase_session_id,
    t.issued_at,
    t.expires_at,
    t.signature_status,
    c.verdict,
    c.reason,
    c.explanation,
    c.user_id as record_user_id,
    c.device_session_id,
    coalesce(c.in_scope, false) as in_scope,
    case c.verdict
        when 'anomalous' then 0
        when 'needs_review' then 1
        when 'expected_by_design' then 2
        else 3
    end as verdict_rank
from token_uses as u
left join tokens as t on t.token_sha256 = u.token_sha256
left join classified_uses as c on c.request_id = u.request_id
where (
        $all
        or list_contains($sessions::varchar[], t.session_id)
        or list_contains($users::varchar[], t.sub)
        or list_contains($users::varchar[], c.user_id)
        or list_contains($device_sessions::varchar[], c.device_session_id)
    )
    and ($start::timestamptz is null or u.used_at >= $start::timestamptz)
    and ($end::timestamptz is null or u.used_at < $end::timestamptz)
