-- Explanations of classified uses: one sentence built from the facts of the verdict,
-- with the times (UTC; HH:MM:SS, with the date when it is not the use's date).
-- Explanations say what happened to Vault's own device-session record, never that a
-- token or a Supabase session was revoked by it. No verdict is decided here.
--
-- The check stores each use's verdict with its facts (classified_use_facts,
-- uses/classify.sql); the view `classified_uses` at the end adds the sentence when it is
-- read. A sentence is built only for the rows a reader asks for: at 10M uses building
-- one for each of 700k classified uses at check time was half the check's time, and a
-- scheduled check reads only its findings' first uses. The macros are kept in the store
-- so that a read-only connection has them too.
--
-- DuckDB-specific (DESIGN.md "Past one machine"): macros, a table alias passed as a row
-- (`va_use_explanation(facts)` reads the columns of `facts`), and times formatted with
-- strftime over epoch_us and make_timestamp (UTC wall-clock time without a time zone
-- lookup, several times faster than strftime on TIMESTAMPTZ). The verdict queries use
-- none of these. Spark: SQL functions in place of the macros, and date_format.

-- A time as a sentence shows it: HH:MM:SS, with the date when it is not the date of
-- the use at `used_at`.
create or replace macro va_clock(moment, used_at) as
    case
        when epoch_us(moment) // 86400000000 = epoch_us(used_at) // 86400000000
            then strftime(make_timestamp(epoch_us(moment)), '%H:%M:%S')
        else strftime(make_timestamp(epoch_us(moment)), '%Y-%m-%d %H:%M:%S')
    end;

-- The time of the use itself, HH:MM:SS.
create or replace macro va_use_clock(facts) as
    strftime(make_timestamp(epoch_us(facts.used_at)), '%H:%M:%S');

-- A number of seconds in its largest whole unit: "1 second", "42 minutes".
create or replace macro va_duration(seconds) as
    case
        when seconds = 1 then '1 second'
        when seconds < 120 then seconds || ' seconds'
        when seconds < 7200 then (seconds // 60) || ' minutes'
        when seconds < 172800 then (seconds // 3600) || ' hours'
        else (seconds // 86400) || ' days'
    end;

-- How far the use is from its token's expiry, either way.
create or replace macro va_expiry_gap(facts) as
    va_duration(abs(epoch_us(facts.token_expires_at) - epoch_us(facts.used_at)) // 1000000);

-- The request a replayed rule would deny, as "PUT secret:abc".
create or replace macro va_request(facts) as
    coalesce(facts.method, 'a request') || ' ' || coalesce(facts.resource, facts.path, '');

create or replace macro va_use_explanation(facts) as
    case facts.reason
        when 'expired_token_accepted' then
            'token expired at ' || va_clock(facts.token_expires_at, facts.used_at)
            || '; used at ' || va_use_clock(facts) || ', ' || va_expiry_gap(facts)
            || ' after it expired, and the backend allowed the request, '
            || 'which it must refuse once a JWT has expired.'
        when 'invalid_signature_accepted' then
            case
                when lower(facts.alg) = 'none' then 'token is unsigned (alg: none); used at '
                else 'token signature does not verify against the configured keys; used at '
            end
            || va_use_clock(facts) || ' and the backend allowed the request, which it must '
            || 'refuse for a JWT whose signature is invalid.'
        when 'lifetime_exceeds_policy' then
            'token issued ' || va_clock(facts.token_issued_at, facts.used_at)
            || ' expires at ' || va_clock(facts.token_expires_at, facts.used_at)
            || ', a lifetime of ' || facts.lifetime_seconds
            || ' seconds, longer than the policy allows; used at ' || va_use_clock(facts) || '.'
        when 'subject_mismatch' then
            'token subject ' || facts.sub || ' is not ' || facts.record_user_id
            || ', the user of the device-session record revoked at '
            || va_clock(facts.revoked_at, facts.used_at) || ' for this Supabase session'
            || '; used at ' || va_use_clock(facts) || '.'
        when 'token_minted_after_idp_session_end' then
            'token issued ' || va_clock(facts.token_issued_at, facts.used_at) || ', after '
            || case facts.session_end_evidence
                when 'user_deleted' then 'the user was deleted at '
                else 'the Supabase session was missing from the sessions snapshot taken at '
            end
            || va_clock(facts.session_end_at, facts.used_at)
            || ', and an ended Supabase session cannot mint tokens; used at '
            || va_use_clock(facts) || '.'
        when 'authorization_replay_mismatch' then
            va_request(facts) || ' at ' || va_use_clock(facts) || ' was allowed, but '
            || case facts.replay_denial
                when 'removed_from_workspace' then
                    'the user was removed from workspace ' || facts.replay_workspace_id
                    || ' at ' || va_clock(facts.replay_denial_since, facts.used_at)
                    || ' and not added again'
                when 'grant_revoked' then
                    'the user''s grant on restricted secret ' || facts.replay_secret_id
                    || ' was revoked at ' || va_clock(facts.replay_denial_since, facts.used_at)
                    || ' and not granted again, and their role in workspace '
                    || facts.replay_workspace_id || ' is ' || facts.replay_role
                else
                    'the user has been a viewer of workspace ' || facts.replay_workspace_id
                    || ' since ' || va_clock(facts.replay_denial_since, facts.used_at)
                    || ' and the request writes'
            end
            || ', so Vault''s authorization rules would deny it.'
        when 'denied_by_backend' then
            'used at ' || va_use_clock(facts) || ', after the record was revoked at '
            || va_clock(facts.revoked_at, facts.used_at)
            || ', and denied by the backend, which authorizes each request from the JWT '
            || 'and Vault''s rules.'
        when 'token_minted_after_logout_scope_unknown' then
            'token issued ' || va_clock(facts.token_issued_at, facts.used_at)
            || ', after the record was revoked at ' || va_clock(facts.revoked_at, facts.used_at)
            || ' and after '
            || case facts.sign_out_action
                when 'logout' then 'a logout by the user at '
                else 'a password change by the user at '
            end
            || va_clock(facts.sign_out_at, facts.used_at) || '; used at ' || va_use_clock(facts)
            || case facts.sign_out_action
                when 'logout' then '; the Supabase audit log does not record a logout''s scope, '
                else '; the Supabase audit log does not name the sessions a password '
                    || 'change ended, '
            end
            || 'so whether it ended this Supabase session is unknown.'
        when 'new_client_after_revocation' then
            'used at ' || va_use_clock(facts) || ' from a user agent and IP ' || facts.ip
            || ' not seen on this Supabase session before the record was revoked at '
            || va_clock(facts.revoked_at, facts.used_at)
            || '; the logs do not show whether the same person moved to a '
            || 'new client or someone else holds the session''s tokens.'
        when 'residual_token_validity' then
            'token issued ' || va_clock(facts.token_issued_at, facts.used_at)
            || case
                when facts.token_issued_at < facts.revoked_at
                    then ', before the record was revoked at '
                else ', the instant the record was revoked at '
            end
            || va_clock(facts.revoked_at, facts.used_at) || '; used at ' || va_use_clock(facts)
            || ', '
            || case
                when facts.token_expires_at is null then 'with no exp claim'
                when facts.used_at < facts.token_expires_at then
                    va_expiry_gap(facts) || ' before it expires at '
                    || va_clock(facts.token_expires_at, facts.used_at)
                else va_expiry_gap(facts) || ' after it expired at '
                    || va_clock(facts.token_expires_at, facts.used_at) || ', within the leeway'
            end
            || '; revoking a device-session record does not invalidate a JWT.'
        when 'idp_session_still_active' then
            'token issued ' || va_clock(facts.token_issued_at, facts.used_at)
            || ', after the record was revoked at ' || va_clock(facts.revoked_at, facts.used_at)
            || ', so the Supabase session was still minting tokens; used at '
            || va_use_clock(facts)
            || '; revoking a device-session record does not end a Supabase session.'
        when 'token_issue_time_unknown' then
            'the token has no iat claim, so whether it was issued before or after the record '
            || 'was revoked at ' || va_clock(facts.revoked_at, facts.used_at)
            || ' is unknown; used at ' || va_use_clock(facts) || '.'
    end;

-- Classified token uses with their explanation, as the check's outputs, the report and
-- notebooks read them.
create or replace view classified_uses as
select
    facts.request_id,
    facts.used_at,
    facts.verdict,
    facts.reason,
    facts.severity,
    facts.user_id,
    facts.supabase_session_id,
    facts.device_session_id,
    facts.revoked_at,
    facts.token_issued_at,
    facts.token_expires_at,
    facts.token_sha256,
    va_use_explanation(facts) as explanation,
    facts.method,
    facts.path,
    facts.resource,
    facts.workspace_id,
    facts.ip,
    facts.user_agent,
    facts.decision,
    facts.in_scope,
    facts.rule
from classified_use_facts as facts;
