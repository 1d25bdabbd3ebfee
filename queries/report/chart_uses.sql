-- The report's token uses for the timeline chart: per listed token, verdict and time
-- bucket of $bucket_seconds, the number of uses, so a chart stays small at any volume.
select
    token_sha256,
    coalesce(verdict, 'not judged') as verdict,
    to_timestamp(floor(epoch(used_at) / $bucket_seconds) * $bucket_seconds) as bucket_at,
    min(used_at) as first_at,
    max(used_at) as last_at,
    count(*) as uses
from report_uses
where list_contains($tokens::varchar[], token_sha256)
group by token_sha256, coalesce(verdict, 'not judged'), bucket_at
order by bucket_at, token_sha256
