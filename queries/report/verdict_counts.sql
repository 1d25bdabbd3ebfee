-- How many of the report's token uses got each verdict and reason, split by whether
-- the use came after a revocation of its device-session record (in scope).
select verdict, reason, in_scope, count(*) as uses, count(distinct token_sha256) as tokens
from report_uses
where verdict is not null
group by verdict, reason, in_scope
order by
    case verdict when 'anomalous' then 0 when 'needs_review' then 1 else 2 end,
    uses desc,
    reason
