-- Where the last `ingest --from-postgres` stopped reading an event table (Supabase's
-- auth.audit_log_entries, Vault's audit events): the latest created_at (or occurred_at)
-- and id already ingested. The next read starts after it. Snapshots have no watermark:
-- each read takes a whole new snapshot.
create table postgres_watermarks (
    -- postgres://host:port/database/schema.table, never with credentials
    source varchar primary key,
    last_at timestamptz not null,
    last_id varchar not null,
    rows_read bigint not null,           -- rows read from the source so far
    updated_at timestamptz not null
);
