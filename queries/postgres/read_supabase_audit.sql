-- Rows of Supabase's auth.audit_log_entries written after the watermark, as the
-- supabase-audit input kind. The watermark comes in as the settings
-- vault_audit.after_at and vault_audit.after_id (bound with set_config), because the
-- driver streams a query over COPY only when it has no bind parameters. A row without
-- created_at is read once, on the first read, and goes to quarantine.
select
    instance_id::text as instance_id,
    id::text as id,
    payload::text as payload,
    created_at,
    ip_address::text as ip_address
from auth.audit_log_entries
where coalesce(created_at, '-infinity') >= current_setting('vault_audit.after_at')::timestamptz
    and (
        coalesce(created_at, '-infinity') > current_setting('vault_audit.after_at')::timestamptz
        or id::text collate "C" > current_setting('vault_audit.after_id')
    )
