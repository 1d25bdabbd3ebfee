-- Hand a watermark to the next read of an event table, for this transaction only.
select
    set_config('vault_audit.after_at', $1, true) as after_at,
    set_config('vault_audit.after_id', $2, true) as after_id
