-- Users whose authorization history could prove that Vault's rules would deny a request
-- (rule 6): someone removed from a workspace, holding a viewer role, or whose grant was
-- revoked, with the time of the first such event. Without such history nothing is
-- proven, and every proof needs an event strictly before the request, so only these
-- users' token uses after watched_from are replayed (authorization/replay.sql).
select target_user_id as user_id, min(occurred_at) as watched_from
from vault_events
where target_user_id is not null
  and (
      type in ('workspace.member.remove', 'grant.revoke')
      or (type = 'workspace.member.add' and role = 'viewer')
  )
group by target_user_id
