-- The files ingested into the store, with their SHA-256, for a report's footer.
select id, kind, source, source_sha256, records_read, accepted, duplicates, quarantined, started_at
from ingest_runs
order by id
