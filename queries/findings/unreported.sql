-- Findings that no earlier check has reported (for --new-only): a finding_id already in
-- reported_findings is not new, however many more uses it has gathered since.
select findings.finding_id
from findings
left join reported_findings on reported_findings.finding_id = findings.finding_id
where reported_findings.finding_id is null
