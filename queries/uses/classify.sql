-- The verdict of each token use (CONTRACT.md section 3).
--
-- In scope (uses/in_scope.sql), the first rule that applies wins; each `when` below is
-- one rule of the contract's table, numbered as there, and `rules` maps the number to
-- its verdict and reason. Outside the scope only rules 1, 2 and 6 apply, in that order;
-- a use none of them fits gets no verdict and no row here. A rule that needs a missing
-- claim or fact does not apply (a comparison with null is not true).
--
-- Rule 12 is not in the contract's table: an in-scope use whose token has no iat, so
-- neither rule 10 nor 11 can be decided, still gets exactly one verdict.
with rules (rule, verdict, reason, severity) as (
    values
        (1, 'anomalous', 'expired_token_accepted', 'high'),
        (2, 'anomalous', 'invalid_signature_accepted', 'high'),
        (3, 'anomalous', 'lifetime_exceeds_policy', 'high'),
        (4, 'anomalous', 'subject_mismatch', 'high'),
        (5, 'anomalous', 'token_minted_after_idp_session_end', 'high'),
        (6, 'anomalous', 'authorization_replay_mismatch', 'high'),
        (7, 'expected_by_design', 'denied_by_backend', 'info'),
        (8, 'needs_review', 'token_minted_after_logout_scope_unknown', 'medium'),
        (9, 'needs_review', 'new_client_after_revocation', 'medium'),
        (10, 'expected_by_design', 'residual_token_validity', 'info'),
        (11, 'expected_by_design', 'idp_session_still_active', 'info'),
        (12, 'needs_review', 'token_issue_time_unknown', 'medium')
),

-- In-scope uses come with their columns from uses/in_scope.sql. Outside the scope only
-- allowed uses that rule 1, 2 or 6 may fit are looked at.
scoped as (
    select
        request_id, used_at, method, path, resource, workspace_id, ip, user_agent,
        decision, token_sha256, true as in_scope, device_session_id, revoked_at
    from uses_in_scope
),

unscoped as (
    select
        request_id, used_at, method, path, resource, workspace_id, ip, user_agent,
        decision, token_sha256, false as in_scope,
        cast(null as varchar) as device_session_id,
        cast(null as timestamptz) as revoked_at
    from (
        select
            uses.request_id, uses.used_at, uses.method, uses.path, uses.resource,
            uses.workspace_id, uses.ip, uses.user_agent, uses.decision, uses.token_sha256
        from relevant_uses as uses
        join token_facts as token on token.token_sha256 = uses.token_sha256
        cross join check_window as judged
        where uses.decision = 'allow'
          and (uses.used_at >= token.expired_from or token.signature_status = 'invalid')
          and (judged.since is null or uses.used_at >= judged.since)
          and (judged.until is null or uses.used_at < judged.until)
        union
        select
            request_id, used_at, method, path, resource, workspace_id, ip, user_agent,
            decision, token_sha256
        from replay_denials
    ) as flagged
    where not exists (
        select 1 from uses_in_scope where uses_in_scope.request_id = flagged.request_id
    )
),

facts as (
    select
        uses.*,
        token.sub,
        token.session_id,
        token.issued_at,
        token.expires_at,
        token.lifetime_seconds,
        token.signature_status,
        token.alg,
        token.expired_from,
        token.exceeds_lifetime,
        token.session_end_at,
        token.session_end_evidence,
        record.user_id as record_user_id,
        replay.denial as replay_denial,
        replay.denial_since as replay_denial_since,
        replay.role as replay_role,
        replay.secret_id as replay_secret_id,
        replay.workspace_id as replay_workspace_id,
        sign_out.sign_out_action,
        sign_out.sign_out_at,
        new_client.request_id is not null as new_client
    from (select * from scoped union all select * from unscoped) as uses
    join token_facts as token on token.token_sha256 = uses.token_sha256
    left join device_sessions as record on record.device_session_id = uses.device_session_id
    left join replay_denials as replay on replay.request_id = uses.request_id
    left join logout_evidence as sign_out
      on sign_out.device_session_id = uses.device_session_id
     and sign_out.token_sha256 = uses.token_sha256
    left join new_clients as new_client on new_client.request_id = uses.request_id
),

ruled as (
    select
        facts.*,
        case
            when in_scope then
                case
                    when decision = 'allow' and used_at >= expired_from then 1
                    when decision = 'allow' and signature_status = 'invalid' then 2
                    when exceeds_lifetime then 3
                    when sub <> record_user_id then 4
                    when issued_at > session_end_at then 5
                    when decision = 'allow' and replay_denial is not null then 6
                    when decision = 'deny' then 7
                    when issued_at > revoked_at and sign_out_at is not null then 8
                    when new_client then 9
                    when issued_at <= revoked_at then 10
                    when issued_at > revoked_at then 11
                    else 12
                end
            else
                case
                    when decision = 'allow' and used_at >= expired_from then 1
                    when decision = 'allow' and signature_status = 'invalid' then 2
                    when decision = 'allow' and replay_denial is not null then 6
                end
        end as rule
    from facts
)

-- What the check stores of each classified use (classified_use_facts): the verdict, the
-- use, and the facts its explanation names (uses/explain.sql builds the sentence when
-- the use is read).
select
    ruled.request_id,
    ruled.used_at,
    rules.verdict,
    rules.reason,
    rules.severity,
    ruled.rule,
    coalesce(ruled.record_user_id, ruled.sub) as user_id,
    ruled.session_id as supabase_session_id,
    ruled.device_session_id,
    ruled.revoked_at,
    ruled.issued_at as token_issued_at,
    ruled.expires_at as token_expires_at,
    ruled.token_sha256,
    ruled.method,
    ruled.path,
    ruled.resource,
    ruled.workspace_id,
    ruled.ip,
    ruled.user_agent,
    ruled.decision,
    ruled.in_scope,
    ruled.sub,
    ruled.record_user_id,
    ruled.alg,
    ruled.lifetime_seconds,
    ruled.session_end_at,
    ruled.session_end_evidence,
    ruled.replay_denial,
    ruled.replay_denial_since,
    ruled.replay_role,
    ruled.replay_secret_id,
    ruled.replay_workspace_id,
    ruled.sign_out_action,
    ruled.sign_out_at
from ruled
join rules on rules.rule = ruled.rule
