-- The report's token uses, one row per token: when it was used, how often, from
-- where, and its verdicts. The most severe tokens come first so a capped list keeps
-- them; `tokens_total` and `uses_total` count every token and use before the cap. A
-- token's device-session record is that of its most severe use, like its verdict.
select
    token_sha256,
    any_value(sub) as sub,
    any_value(supabase_session_id) as supabase_session_id,
    any_value(issued_at) as issued_at,
    any_value(expires_at) as expires_at,
    any_value(signature_status) as signature_status,
    min(used_at) as first_at,
    max(used_at) as last_at,
    count(*) as uses,
    count(*) filter (where verdict = 'anomalous') as anomalous,
    count(*) filter (where verdict = 'needs_review') as needs_review,
    count(*) filter (where verdict = 'expected_by_design') as expected_by_design,
    count(*) filter (where verdict is null) as not_judged,
    count(*) filter (where decision = 'deny') as denied,
    count(distinct ip) as ips,
    min(ip) as ip,
    count(distinct user_agent) as user_agents,
    mode(user_agent) as user_agent,
    arg_min(device_session_id, (verdict_rank, used_at, request_id))
        filter (where device_session_id is not null) as device_session_id,
    arg_min(verdict, verdict_rank) as verdict,
    arg_min(reason, verdict_rank) as reason,
    arg_min(explanation, verdict_rank) as explanation,
    count(*) over () as tokens_total,
    sum(count(*)) over () as uses_total
from report_uses
group by token_sha256
order by min(verdict_rank), min(used_at), token_sha256
limit $limit
