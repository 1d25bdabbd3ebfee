-- Token uses some rule can reach, with their token's claims: uses at or after the
-- earliest revocation of a device-session record of their Supabase session (they may
-- be in scope), and allowed uses that rule 1, 2 or 6 may fit outside the scope (past
-- exp + leeway, an invalid signature, or after an event of the user's authorization
-- history that could prove a denial). Every other use can get no verdict.
--
-- This is the one pass over the whole access log; later steps read this relation.
-- No time window applies here: evidence before --since still counts.
select
    uses.request_id,
    uses.used_at,
    uses.method,
    uses.path,
    uses.resource,
    uses.workspace_id,
    uses.ip,
    uses.user_agent,
    uses.decision,
    uses.token_sha256,
    token.sub,
    token.session_id,
    uses.used_at >= token.scope_from as may_be_in_scope,
    coalesce(uses.used_at > token.replay_watched_from, false) as replay_watched
from token_uses as uses
join token_facts as token on token.token_sha256 = uses.token_sha256
where uses.used_at >= token.scope_from
   or (
       uses.decision = 'allow'
       and (
           uses.used_at >= token.expired_from
           or token.signature_status = 'invalid'
           or uses.used_at > token.replay_watched_from
       )
   )
