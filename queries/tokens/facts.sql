-- Per distinct token: the facts rules 1, 3 and 5 need, computed once per token rather
-- than once per use. A missing claim leaves its fact null, and a rule that needs it
-- does not apply.
--
-- scope_from: the earliest revocation of a device-session record of the token's
--   Supabase session; no use before it can be in scope (null: none can).
-- replay_watched_from: the first event of the token's user's authorization history that
--   could prove a denial; only a use after it may be one (authorization/watched_users.sql).
-- expired_from (rule 1): exp + leeway; a use at or after it is past expiry.
-- exceeds_lifetime (rule 3): exp - iat > max_token_lifetime.
-- session_end_at, session_end_evidence (rule 5): the earliest evidence, before iat, that
--   the Supabase session had ended: a user_deleted audit entry whose traits.user_id is
--   the token's user (sub), created before iat; or a supabase-sessions snapshot taken
--   before iat that lacks the session (supabase_sessions/end_evidence.sql).
with user_deletions as (
    select traits_user_id as user_id, created_at
    from idp_audit
    where action = 'user_deleted' and traits_user_id is not null
),

deleted_before_issue as (
    select tokens.token_sha256, min(user_deletions.created_at) as deleted_at
    from tokens
    join user_deletions
      on user_deletions.user_id = tokens.sub
     and user_deletions.created_at < tokens.issued_at
    group by tokens.token_sha256
),

earliest_revocations as (
    select supabase_session_id, min(revoked_at) as scope_from
    from device_sessions
    where revoked_at is not null and supabase_session_id is not null
    group by supabase_session_id
),

ended_before_issue as (
    select tokens.token_sha256, ends.ended_by
    from tokens
    join supabase_session_ends as ends
      on ends.session_id = tokens.session_id
     and ends.ended_by < tokens.issued_at
)

select
    tokens.token_sha256,
    tokens.sub,
    tokens.session_id,
    tokens.issued_at,
    tokens.expires_at,
    tokens.lifetime_seconds,
    tokens.signature_status,
    tokens.alg,
    revocations.scope_from,
    watched.watched_from as replay_watched_from,
    -- DuckDB-specific (DESIGN.md "Past one machine"): an interval from bound seconds.
    -- Spark: tokens.expires_at + make_interval(0, 0, 0, 0, 0, 0, $leeway).
    tokens.expires_at + to_seconds(cast($leeway as bigint)) as expired_from,
    tokens.lifetime_seconds > cast($max_token_lifetime as bigint) as exceeds_lifetime,
    case
        when deleted.deleted_at is not null
            and (ended.ended_by is null or deleted.deleted_at <= ended.ended_by)
            then deleted.deleted_at
        else ended.ended_by
    end as session_end_at,
    case
        when deleted.deleted_at is not null
            and (ended.ended_by is null or deleted.deleted_at <= ended.ended_by)
            then 'user_deleted'
        when ended.ended_by is not null then 'missing_from_snapshot'
    end as session_end_evidence
from tokens
left join deleted_before_issue as deleted on deleted.token_sha256 = tokens.token_sha256
left join ended_before_issue as ended on ended.token_sha256 = tokens.token_sha256
left join earliest_revocations as revocations
  on revocations.supabase_session_id = tokens.session_id
left join watched_users as watched on watched.user_id = tokens.sub
