-- Users whose authorization history could prove that Vault's rules would deny a request
-- (rule 6): someone removed from a workspace, holding a viewer role, or whose grant was
-- revoked. Without such history nothing is proven, so only these users' token uses
-- are replayed (authorization/replay.sql).
select distinct target_user_id as user_id
from vault_events
where target_user_id is not null
  and (
      type in ('workspace.member.remove', 'grant.revoke')
      or (type = 'workspace.member.add' and role = 'viewer')
  )
