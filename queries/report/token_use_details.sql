-- The single uses shown under each listed token: up to $per_token per token, the
-- most severe first, then the earliest.
with ranked as (
    select
        *,
        row_number() over (
            partition by token_sha256 order by verdict_rank, used_at, request_id
        ) as position
    from report_uses
    where list_contains($tokens::varchar[], token_sha256)
)
select
    token_sha256,
    request_id,
    used_at,
    method,
    path,
    status,
    decision,
    ip,
    user_agent,
    resource,
    verdict,
    reason,
    explanation
from ranked
where position <= $per_token
order by token_sha256, used_at, request_id
