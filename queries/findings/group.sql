-- Findings: one record per device session, reason and token, over the classified uses.
-- A use outside the scope has no device session; its finding is keyed by its Supabase
-- session (when the token names one) and its token.
--
-- finding_id is stable across runs: the first 32 hex digits of the SHA-256 of
-- verdict|reason|device_session_id|supabase_session_id|token_sha256 (a missing part is
-- empty). More uses of the same finding keep its id; a new reason or device session
-- gives a new one. The explanation is the first use's (uses/explain.sql), with the
-- count and the last use when there are several.
--
-- DuckDB-specific (DESIGN.md "Past one machine"): sha256(), arg_min over a struct (with
-- a count, the first ten request ids in time order, a top-N that needs no sort of every
-- use), and strftime. Spark: sha2(..., 256), min_by, and slice of sort_array over
-- collect_list of (used_at, request_id) structs.
with keyed as (
    select
        facts.*,
        coalesce(device_session_id, '') as device_key,
        coalesce(supabase_session_id, '') as session_key
    from classified_use_facts as facts
),

grouped as (
    select
        verdict,
        reason,
        severity,
        device_key,
        session_key,
        token_sha256,
        min(device_session_id) as device_session_id,
        min(supabase_session_id) as supabase_session_id,
        arg_min(user_id, (used_at, request_id)) as user_id,
        arg_min(request_id, (used_at, request_id)) as first_request_id,
        min(used_at) as first_at,
        max(used_at) as last_at,
        count(*) as uses,
        arg_min(request_id, (used_at, request_id), 10) as request_ids
    from keyed
    group by verdict, reason, severity, device_key, session_key, token_sha256
)

select
    substr(
        sha256(
            grouped.verdict || '|' || grouped.reason || '|' || grouped.device_key
            || '|' || grouped.session_key || '|' || grouped.token_sha256
        ),
        1,
        32
    ) as finding_id,
    grouped.verdict,
    grouped.reason,
    grouped.severity,
    grouped.user_id,
    grouped.device_session_id,
    grouped.supabase_session_id,
    grouped.first_at,
    grouped.last_at,
    grouped.uses,
    grouped.request_ids,
    case
        when grouped.uses = 1 then va_use_explanation(first_use)
        else rtrim(va_use_explanation(first_use), '.') || '; ' || grouped.uses
            || ' uses in all, the last at '
            || case
                when cast(grouped.last_at as date) = cast(grouped.first_at as date)
                    then strftime(grouped.last_at, '%H:%M:%S')
                else strftime(grouped.last_at, '%Y-%m-%d %H:%M:%S')
            end
            || '.'
    end as explanation,
    grouped.token_sha256
from grouped
join classified_use_facts as first_use on first_use.request_id = grouped.first_request_id
