-- Token uses in scope of a revocation.
--
-- For each token use U whose token carries a session_id claim: take the device-session
-- records of U's Supabase session registered at or before U.at, and R the latest of
-- them. U is in scope when R was revoked at r <= U.at. A record whose registration was
-- never seen counts as registered before its revocation: it is placed at revoked_at,
-- the latest time its registration is known to precede.
--
-- Each record is the latest of its Supabase session within its span
-- (device_sessions/merge.sql: registered_from until superseded_at), so a use joins at
-- most one record: the one whose span holds U.at. Only revoked records can put a use
-- in scope, so only their spans are joined. Use times are limited to [$since, $until)
-- when those are given.
with revoked_spans as (
    select device_session_id, supabase_session_id, registered_from, superseded_at, revoked_at
    from device_sessions
    where supabase_session_id is not null
      and registered_from is not null
      and revoked_at is not null
)

select
    uses.request_id,
    uses.used_at,
    uses.token_sha256,
    spans.device_session_id,
    spans.supabase_session_id,
    spans.revoked_at,
    uses.decision,
    uses.method,
    uses.path,
    uses.resource,
    uses.workspace_id,
    uses.ip,
    uses.user_agent
from relevant_uses as uses
join revoked_spans as spans
  on spans.supabase_session_id = uses.session_id
 and spans.registered_from <= uses.used_at
 and spans.revoked_at <= uses.used_at
 and (spans.superseded_at is null or uses.used_at < spans.superseded_at)
where uses.may_be_in_scope
  and (cast($since as timestamptz) is null or uses.used_at >= cast($since as timestamptz))
  and (cast($until as timestamptz) is null or uses.used_at < cast($until as timestamptz))
