-- Rule 8 facts: for each in-scope token whose token was issued after the revocation
-- (iat > r), the earliest `logout` or `user_updated_password` audit entry whose
-- actor_id is the token's user (sub) and that lies between r and iat, both ends
-- included (r <= created_at <= iat): an entry at the very instant of the revocation or
-- of the token's issue is still "between" them for an investigator.
-- One row per (device-session record, token); a token without sub gets none.
with issued_after_revocation as (
    select distinct
        in_scope.device_session_id,
        in_scope.revoked_at,
        tokens.token_sha256,
        tokens.sub,
        tokens.issued_at
    from uses_in_scope as in_scope
    join tokens on tokens.token_sha256 = in_scope.token_sha256
    where tokens.issued_at > in_scope.revoked_at and tokens.sub is not null
),

sign_outs as (
    select
        issued.device_session_id,
        issued.token_sha256,
        audit.action,
        audit.created_at,
        row_number() over (
            partition by issued.device_session_id, issued.token_sha256
            order by audit.created_at, audit.id
        ) as nth
    from issued_after_revocation as issued
    join idp_audit as audit
      on audit.actor_id = issued.sub
     and audit.action in ('logout', 'user_updated_password')
     and audit.created_at >= issued.revoked_at
     and audit.created_at <= issued.issued_at
)

select device_session_id, token_sha256, action as sign_out_action, created_at as sign_out_at
from sign_outs
where nth = 1
