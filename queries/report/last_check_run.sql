-- The latest check run: when the verdicts a report shows were computed.
select id, started_at, findings, new_findings
from check_runs
order by id desc
limit 1
