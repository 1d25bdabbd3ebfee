-- The user whose findings are the most anomalous: most anomalous findings, then most
-- findings that need review, then most uses in them.
select user_id
from findings
where user_id is not null
group by user_id
order by
    count(*) filter (where verdict = 'anomalous') desc,
    count(*) filter (where verdict = 'needs_review') desc,
    sum(uses) desc,
    user_id
limit 1
