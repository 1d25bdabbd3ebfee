-- Rule 9 facts: in-scope token uses from a new client. A use is from a new client when
-- its user agent differs from R's (the merged record's user_agent) and its IP appears
-- in no access-log row (a use of a token with the same session_id) and no
-- device-session event (session.register or session.revoke naming the Supabase
-- session) of that Supabase session before r. A use or record without a user agent, or
-- a use without an IP, lacks a fact the rule needs, and the rule does not apply.
with candidates as (
    select in_scope.request_id, in_scope.supabase_session_id, in_scope.ip, in_scope.revoked_at
    from uses_in_scope as in_scope
    join device_sessions as records on records.device_session_id = in_scope.device_session_id
    where in_scope.user_agent is not null
      and records.user_agent is not null
      and in_scope.user_agent <> records.user_agent
      and in_scope.ip is not null
),

-- Only the Supabase sessions and IPs of candidates are looked up in the access log.
candidate_tokens as (
    select token_sha256, session_id
    from tokens
    where session_id in (select supabase_session_id from candidates)
),

ip_sightings as (
    select candidate_tokens.session_id, uses.ip, uses.used_at as seen_at
    from token_uses as uses
    join candidate_tokens on candidate_tokens.token_sha256 = uses.token_sha256
    where uses.ip in (select ip from candidates)
    union all
    -- Known limitation: an event is tied to the Supabase session by the session its
    -- own target names, so an event whose target names none is not counted here, even
    -- where a snapshot ties its record to the session. CONTRACT.md's event targets
    -- always name it.
    select supabase_session_id, ip, occurred_at
    from vault_events
    where type in ('session.register', 'session.revoke')
      and supabase_session_id in (select supabase_session_id from candidates)
      and ip is not null
),

first_sightings as (
    select session_id, ip, min(seen_at) as first_seen_at
    from ip_sightings
    group by session_id, ip
)

select candidates.request_id
from candidates
left join first_sightings as seen
  on seen.session_id = candidates.supabase_session_id
 and seen.ip = candidates.ip
where seen.first_seen_at is null or seen.first_seen_at >= candidates.revoked_at
