-- The server's time at the start of the snapshot transaction: the snapshot_at of the
-- sessions and device-session snapshots read in it.
select now() as snapshot_at
