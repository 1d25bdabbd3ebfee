-- token_uses without its primary-key index. DuckDB keeps a primary key's ART index
-- in memory and grows it with the table: at a 3 GB memory_limit a store held about
-- 35M uses and then could not take another file, and the index made each insert
-- 2.9x slower (measured, benchmarks/README.md). request_id stays unique: the loader
-- removes a file's repeats in one pass at the end of its transaction
-- (vault_audit/ingest/load.py, _drop_repeated_uses), whose hash tables DuckDB can
-- spill to disk.

-- Renamed, not copied: the rows are written once, into the new table.
alter table token_uses rename to token_uses_keyed;

create table token_uses (
    request_id varchar not null,
    used_at timestamptz not null,
    method varchar,
    path varchar,
    status integer,
    decision varchar not null,           -- allow | deny
    ip varchar,
    user_agent varchar,
    workspace_id varchar,
    resource varchar,
    token_sha256 varchar not null,
    ingest_run_id bigint not null
);

insert into token_uses select * from token_uses_keyed;
drop table token_uses_keyed;
