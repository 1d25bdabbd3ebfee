-- Move the watermark of one Postgres event table past the rows just ingested; never back.
insert into postgres_watermarks (source, last_at, last_id, rows_read, updated_at)
values ($source, $last_at, $last_id, $rows_read, now())
on conflict (source) do update set
    last_at = greatest(postgres_watermarks.last_at, excluded.last_at),
    last_id = case
        when excluded.last_at > postgres_watermarks.last_at then excluded.last_id
        when excluded.last_at < postgres_watermarks.last_at then postgres_watermarks.last_id
        else greatest(postgres_watermarks.last_id, excluded.last_id)
    end,
    rows_read = postgres_watermarks.rows_read + excluded.rows_read,
    updated_at = excluded.updated_at
