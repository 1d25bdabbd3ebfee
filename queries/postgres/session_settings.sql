-- Settings of the snapshot transaction only (so nothing lingers on a pooled server
-- connection): a statement timeout in milliseconds, and times in UTC.
select
    set_config('statement_timeout', $1, true) as statement_timeout,
    set_config('TimeZone', 'UTC', true) as time_zone
