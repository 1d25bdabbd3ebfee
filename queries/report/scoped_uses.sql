-- The token uses in a report's scope, each with its token's claims and its verdict
-- (null when no rule applied): every use when $all, else the uses of the Supabase
-- sessions, device-session records or users named, within [$start, $end). Later
-- report queries read this temporary table, so the scope is decided once.
--
-- Every use is attributed to a device-session record whatever its verdict: the one
-- its verdict was judged against, else the record of its Supabase session (the
-- token's session_id claim) whose span holds the use (device_sessions/merge.sql), as
-- uses/in_scope.sql picks it. So one device reads one way across the report. Each
-- verdict's explanation (uses/explain.sql) is built for the uses in scope only.
create or replace temp table report_uses as
with spans as (
    select device_session_id, supabase_session_id, registered_from, superseded_at
    from device_sessions
    where supabase_session_id is not null and registered_from is not null
),

uses as (
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
        va_use_explanation(c) as explanation,
        c.user_id as record_user_id,
        coalesce(c.device_session_id, s.device_session_id) as device_session_id,
        coalesce(c.in_scope, false) as in_scope,
        case c.verdict
            when 'anomalous' then 0
            when 'needs_review' then 1
            when 'expected_by_design' then 2
            else 3
        end as verdict_rank
    from token_uses as u
    left join tokens as t on t.token_sha256 = u.token_sha256
    left join classified_use_facts as c on c.request_id = u.request_id
    left join spans as s
      on s.supabase_session_id = t.session_id
     and s.registered_from <= u.used_at
     and (s.superseded_at is null or u.used_at < s.superseded_at)
)

select *
from uses
where (
        $all
        or list_contains($sessions::varchar[], supabase_session_id)
        or list_contains($users::varchar[], sub)
        or list_contains($users::varchar[], record_user_id)
        or list_contains($device_sessions::varchar[], device_session_id)
    )
    and ($start::timestamptz is null or used_at >= $start::timestamptz)
    and ($end::timestamptz is null or used_at < $end::timestamptz)
