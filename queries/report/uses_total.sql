-- The size of the report's scope: token uses, tokens, and the first and last use.
select
    count(*) as uses,
    count(distinct token_sha256) as tokens,
    min(used_at) as first_use,
    max(used_at) as last_use
from report_uses
