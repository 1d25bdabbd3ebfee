-- Rotation candidates: the secrets that token uses after a revocation read or wrote
-- (allowed requests on a `secret:<id>` resource), with counts and the last access.
select
    resource,
    count(*) filter (where upper(method) in ('GET', 'HEAD')) as reads,
    count(*) filter (where upper(method) not in ('GET', 'HEAD')) as writes,
    count(distinct token_sha256) as tokens,
    min(used_at) as first_at,
    max(used_at) as last_at,
    arg_min(verdict, verdict_rank) as verdict
from report_uses
where in_scope and decision = 'allow' and resource like 'secret:%'
group by resource
order by min(verdict_rank), last_at desc, resource
