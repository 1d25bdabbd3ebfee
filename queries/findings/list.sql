-- Findings in the order a reader wants them: anomalous first, then needs_review, then
-- expected_by_design; within each, by first use.
select
    finding_id,
    verdict,
    reason,
    severity,
    user_id,
    device_session_id,
    supabase_session_id,
    first_at,
    last_at,
    uses,
    request_ids,
    explanation,
    token_sha256
from findings
order by
    case verdict when 'anomalous' then 0 when 'needs_review' then 1 else 2 end,
    first_at,
    finding_id
