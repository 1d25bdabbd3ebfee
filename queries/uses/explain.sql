-- Classified token uses with their explanation: one sentence built from the facts of
-- the verdict, with the times (UTC; HH:MM:SS, with the date when it is not the use's
-- date). Explanations say what happened to Vault's own device-session record, never
-- that a token or a Supabase session was revoked by it. No verdict is decided here.
--
-- DuckDB-specific (DESIGN.md "Past one machine"): this file formats times with
-- strftime over epoch_us and make_timestamp (UTC wall-clock time without a time zone
-- lookup, several times faster than strftime on TIMESTAMPTZ); the verdict queries use
-- none of these.
with utc as (
    select
        verdicts.*,
        epoch_us(used_at) // 86400000000 as use_day
    from verdicts
),

-- Each time is formatted only for the reasons whose sentence shows it.
texts as (
    select
        utc.*,
        strftime(make_timestamp(epoch_us(used_at)), '%H:%M:%S') as at_text,
        case when reason in (
            'lifetime_exceeds_policy', 'token_minted_after_idp_session_end',
            'token_minted_after_logout_scope_unknown', 'residual_token_validity',
            'idp_session_still_active'
        ) then
            case
                when epoch_us(issued_at) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(issued_at)), '%H:%M:%S')
                else strftime(make_timestamp(epoch_us(issued_at)), '%Y-%m-%d %H:%M:%S')
            end
        end as issued_text,
        case when reason in (
            'expired_token_accepted', 'lifetime_exceeds_policy', 'residual_token_validity'
        ) then
            case
                when epoch_us(expires_at) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(expires_at)), '%H:%M:%S')
                else strftime(make_timestamp(epoch_us(expires_at)), '%Y-%m-%d %H:%M:%S')
            end
        end as expires_text,
        case when in_scope then
            case
                when epoch_us(revoked_at) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(revoked_at)), '%H:%M:%S')
                else strftime(make_timestamp(epoch_us(revoked_at)), '%Y-%m-%d %H:%M:%S')
            end
        end as revoked_text,
        case when reason = 'token_minted_after_idp_session_end' then
            case
                when epoch_us(session_end_at) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(session_end_at)), '%H:%M:%S')
                else strftime(make_timestamp(epoch_us(session_end_at)), '%Y-%m-%d %H:%M:%S')
            end
        end as session_end_text,
        case when reason = 'token_minted_after_logout_scope_unknown' then
            case
                when epoch_us(sign_out_at) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(sign_out_at)), '%H:%M:%S')
                else strftime(make_timestamp(epoch_us(sign_out_at)), '%Y-%m-%d %H:%M:%S')
            end
        end as sign_out_text,
        case when reason = 'authorization_replay_mismatch' then
            case
                when epoch_us(replay_denial_since) // 86400000000 = use_day
                    then strftime(make_timestamp(epoch_us(replay_denial_since)), '%H:%M:%S')
                else strftime(
                    make_timestamp(epoch_us(replay_denial_since)), '%Y-%m-%d %H:%M:%S'
                )
            end
        end as denial_since_text,
        abs(epoch_us(expires_at) - epoch_us(used_at)) // 1000000 as expiry_gap_seconds
    from utc
),

spans as (
    select
        texts.*,
        case
            when expiry_gap_seconds = 1 then '1 second'
            when expiry_gap_seconds < 120 then expiry_gap_seconds || ' seconds'
            when expiry_gap_seconds < 7200 then (expiry_gap_seconds // 60) || ' minutes'
            when expiry_gap_seconds < 172800 then (expiry_gap_seconds // 3600) || ' hours'
            else (expiry_gap_seconds // 86400) || ' days'
        end as expiry_gap_text,
        coalesce(method, 'a request') || ' ' || coalesce(resource, path, '') as request_text
    from texts
)

select
    request_id,
    used_at,
    verdict,
    reason,
    severity,
    user_id,
    session_id as supabase_session_id,
    device_session_id,
    revoked_at,
    issued_at as token_issued_at,
    expires_at as token_expires_at,
    token_sha256,
    case reason
        when 'expired_token_accepted' then
            'token expired at ' || expires_text || '; used at ' || at_text || ', '
            || expiry_gap_text || ' after it expired, and the backend allowed the request, '
            || 'which it must refuse once a JWT has expired.'
        when 'invalid_signature_accepted' then
            case
                when lower(alg) = 'none' then 'token is unsigned (alg: none); used at '
                else 'token signature does not verify against the configured keys; used at '
            end
            || at_text || ' and the backend allowed the request, which it must refuse '
            || 'for a JWT whose signature is invalid.'
        when 'lifetime_exceeds_policy' then
            'token issued ' || issued_text || ' expires at ' || expires_text
            || ', a lifetime of ' || lifetime_seconds
            || ' seconds, longer than the policy allows; used at ' || at_text || '.'
        when 'subject_mismatch' then
            'token subject ' || sub || ' is not ' || record_user_id
            || ', the user of the device-session record of this Supabase session, '
            || 'which was revoked at ' || revoked_text || '; used at ' || at_text || '.'
        when 'token_minted_after_idp_session_end' then
            'token issued ' || issued_text || ', after '
            || case session_end_evidence
                when 'user_deleted' then 'the user was deleted at ' || session_end_text
                else 'the Supabase session was missing from the sessions snapshot taken at '
                    || session_end_text
            end
            || ', and an ended Supabase session cannot mint tokens; used at ' || at_text || '.'
        when 'authorization_replay_mismatch' then
            request_text || ' at ' || at_text || ' was allowed, but '
            || case replay_denial
                when 'removed_from_workspace' then
                    'the user was removed from workspace ' || replay_workspace_id || ' at '
                    || denial_since_text || ' and not added again'
                when 'grant_revoked' then
                    'the user''s grant on restricted secret ' || replay_secret_id
                    || ' was revoked at ' || denial_since_text
                    || ' and not granted again, and their role in workspace '
                    || replay_workspace_id || ' is ' || replay_role
                else
                    'the user has been a viewer of workspace ' || replay_workspace_id
                    || ' since '
                    || denial_since_text || ' and the request writes'
            end
            || ', so Vault''s authorization rules would deny it.'
        when 'denied_by_backend' then
            'used at ' || at_text || ', after the record was revoked at ' || revoked_text
            || ', and denied by the backend, which authorizes each request from the JWT '
            || 'and Vault''s rules.'
        when 'token_minted_after_logout_scope_unknown' then
            'token issued ' || issued_text || ', after the record was revoked at '
            || revoked_text || ' and after '
            || case sign_out_action
                when 'logout' then 'a logout by the user at ' || sign_out_text
                    || '; used at ' || at_text
                    || '; the Supabase audit log does not record a logout''s scope, '
                else 'a password change by the user at ' || sign_out_text
                    || '; used at ' || at_text
                    || '; the Supabase audit log does not name the sessions a password '
                    || 'change ended, '
            end
            || 'so whether it ended this Supabase session is unknown.'
        when 'new_client_after_revocation' then
            'used at ' || at_text || ' from a user agent and IP ' || ip
            || ' not seen on this Supabase session before the record was revoked at '
            || revoked_text || '; the logs do not show whether the same person moved to a '
            || 'new client or someone else holds the session''s tokens.'
        when 'residual_token_validity' then
            'token issued ' || issued_text
            || case
                when issued_at < revoked_at then ', before the record was revoked at '
                else ', the instant the record was revoked at '
            end
            || revoked_text || '; used at ' || at_text || ', '
            || case
                when expires_at is null then 'with no exp claim'
                when used_at < expires_at then
                    expiry_gap_text || ' before it expires at ' || expires_text
                else expiry_gap_text || ' after it expired at ' || expires_text
                    || ', within the leeway'
            end
            || '; revoking a device-session record does not invalidate a JWT.'
        when 'idp_session_still_active' then
            'token issued ' || issued_text || ', after the record was revoked at '
            || revoked_text || ', so the Supabase session was still minting tokens; used at '
            || at_text || '; revoking a device-session record does not end a Supabase session.'
        when 'token_issue_time_unknown' then
            'the token has no iat claim, so whether it was issued before or after the record '
            || 'was revoked at ' || revoked_text || ' is unknown; used at ' || at_text || '.'
    end as explanation,
    method,
    path,
    resource,
    workspace_id,
    ip,
    user_agent,
    decision,
    in_scope,
    rule
from spans
