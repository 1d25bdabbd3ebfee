-- Evidence that a Supabase session had ended, from supabase-sessions snapshots (rule 5).
--
-- For each Supabase session named by a token or a snapshot: the earliest
-- supabase-sessions snapshot s that lacks the session although an earlier snapshot
-- (taken before s) held it, or a token of the session was issued before s. Every
-- snapshot taken is listed in `snapshots`, even an empty one. A token issued after
-- ended_by was minted after evidence that its Supabase session had ended.
with known_since as (
    select session_id, min(known_at) as known_at
    from (
        select id as session_id, snapshot_at as known_at from idp_session_snapshots
        union all
        select session_id, issued_at as known_at
        from tokens
        where session_id is not null and issued_at is not null
    ) as sightings
    group by session_id
),

later_snapshots as (
    select known_since.session_id, snapshots.snapshot_at
    from known_since
    join snapshots
      on snapshots.kind = 'supabase-sessions'
     and snapshots.snapshot_at > known_since.known_at
)

select later_snapshots.session_id, min(later_snapshots.snapshot_at) as ended_by
from later_snapshots
left join idp_session_snapshots as held
  on held.id = later_snapshots.session_id
 and held.snapshot_at = later_snapshots.snapshot_at
where held.id is null
group by later_snapshots.session_id
