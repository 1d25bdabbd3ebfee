-- The watermark of one Postgres event table: the latest (time, id) already ingested.
select last_at, last_id
from postgres_watermarks
where source = $source
