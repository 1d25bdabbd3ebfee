-- The raw facts of the five input kinds, the quarantine and the ingest run log.
-- Every time is TIMESTAMPTZ in UTC. Raw bearer tokens are never stored: a token use
-- keeps token_sha256, and the claims of each distinct token live once in `tokens`.

create table ingest_runs (
    id bigint primary key,
    kind varchar not null,
    source varchar not null,            -- file path, or postgres:<table>
    source_sha256 varchar,              -- SHA-256 of the file's bytes
    records_read bigint not null,
    accepted bigint not null,
    duplicates bigint not null,
    quarantined bigint not null,
    seconds double not null,
    started_at timestamptz not null
);

create table quarantine (
    ingest_run_id bigint not null,
    kind varchar not null,
    source varchar not null,
    line bigint,                         -- line of a JSON Lines file, row of CSV/Parquet
    reason varchar not null,
    record varchar                       -- the offending text, any token in it masked
);

-- One row per Vault audit event; target fields flattened beside the raw object.
create table vault_events (
    id varchar primary key,
    type varchar not null,
    occurred_at timestamptz not null,
    actor_id varchar,
    workspace_id varchar,
    ip varchar,
    user_agent varchar,
    target json,
    device_session_id varchar,
    target_user_id varchar,
    supabase_session_id varchar,
    label varchar,
    secret_id varchar,
    visibility varchar,
    role varchar,
    permission varchar,
    ingest_run_id bigint not null
);

-- One row per API request that presented a JWT. The stored column is used_at,
-- not `at`, which DuckDB reads as a keyword.
create table token_uses (
    request_id varchar primary key,
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

-- One row per distinct token: its claims and signature status, verified once.
create table tokens (
    token_sha256 varchar primary key,    -- lowercase hex SHA-256 of the compact token
    alg varchar,
    kid varchar,
    sub varchar,
    session_id varchar,
    role varchar,
    aud varchar,
    iss varchar,
    aal varchar,
    is_anonymous boolean,
    issued_at timestamptz,               -- iat
    expires_at timestamptz,              -- exp
    lifetime_seconds bigint,             -- exp - iat
    claims json,
    signature_status varchar not null,   -- valid | invalid | unverified
    verified_with varchar                -- fingerprint of the key set that decided it
);

-- One row per auth.audit_log_entries row, payload keys flattened.
create table idp_audit (
    id varchar primary key,
    instance_id varchar,
    created_at timestamptz not null,
    ip_address varchar,
    payload json,
    action varchar,
    actor_id varchar,
    actor_username varchar,
    log_type varchar,
    traits_user_id varchar,
    ingest_run_id bigint not null
);

-- Each snapshot taken, even an empty one: absence from a snapshot is evidence.
create table snapshots (
    kind varchar not null,               -- supabase-sessions | device-sessions
    snapshot_at timestamptz not null,
    primary key (kind, snapshot_at)
);

create table idp_session_snapshots (
    id varchar not null,
    snapshot_at timestamptz not null,
    user_id varchar,
    created_at timestamptz,
    updated_at timestamptz,
    refreshed_at timestamptz,
    not_after timestamptz,
    aal varchar,
    user_agent varchar,
    ip varchar,
    ingest_run_id bigint not null,
    primary key (id, snapshot_at)
);

create table device_session_snapshots (
    id varchar not null,
    snapshot_at timestamptz not null,
    user_id varchar,
    supabase_session_id varchar,
    label varchar,
    user_agent varchar,
    ip varchar,
    created_at timestamptz,
    last_seen_at timestamptz,
    revoked_at timestamptz,
    revoked_by varchar,
    ingest_run_id bigint not null,
    primary key (id, snapshot_at)
);

-- Every check run, and the first run that reported each finding (for --new-only).
create table check_runs (
    id bigint primary key,
    started_at timestamptz not null,
    settings json,
    findings bigint not null,
    new_findings bigint not null
);

create table reported_findings (
    finding_id varchar primary key,
    first_check_run_id bigint not null,
    first_reported_at timestamptz not null
);
